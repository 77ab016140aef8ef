"""OAuth 2.0 SMTP login (XOAUTH2, OAUTHBEARER: RFC 7628) against a real authorization server
and a real aiosmtpd server on 127.0.0.1 that checks each token by introspection (see
tests/support/oauth.py). Tokens come from the authorization code flow with PKCE, the browser's
part done by an HTTP client."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import mailcore
from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailcore.conf import settings
from mailcore.errors import (
    Kind,
    SMTPAuthNotSupportedError,
    SMTPOAuthTokenError,
    Stage,
    classify,
)
from mailcore.smtp import SMTP
from tests.support.oauth import (
    TEST_MAILBOX,
    AuthServer,
    OAuthSMTPServer,
    auth_server,  # noqa: F401 - a fixture
    browse,
    code_flow,
    oauth_smtp_server,  # noqa: F401 - a fixture
    pkce_pair,
    refresh,
)
from tests.support.servers import TEST_PASSWORD, TEST_USER

ROOT = Path(__file__).resolve().parents[2]


def message(subject: str = "s") -> EmailMessage:
    return EmailMessage(subject, "body", TEST_MAILBOX, ["bob@example.test"])


def backend_for(server, token, **kwargs) -> EmailBackend:
    lines: list[tuple[str, str]] = []
    kwargs.setdefault("transcript", lambda event, text: lines.append((event, text)))
    backend = EmailBackend(host=server.host, port=server.port, timeout=5,
                           username=TEST_MAILBOX, oauth_token=token, **kwargs)
    backend.lines = lines  # type: ignore[attr-defined]
    return backend


@pytest.mark.parametrize("offered, used", [
    (("XOAUTH2",), "XOAUTH2"),
    (("OAUTHBEARER",), "OAUTHBEARER"),
    (("XOAUTH2", "OAUTHBEARER"), "OAUTHBEARER"),  # preferred when both are offered
])
def test_first_sign_in_then_send(auth_server, offered, used):  # noqa: F811
    tokens = code_flow(auth_server)
    assert auth_server.grants == ["authorization_code"]
    with OAuthSMTPServer(auth_server, mechanisms=offered) as server:
        backend = backend_for(server, tokens["access_token"])
        assert backend.send_messages([message()]) == 1
        (record,) = server.wait_for(1)
        assert record.auth_login == TEST_MAILBOX
        (attempt,) = server.oauth_attempts
        assert (attempt.mechanism, attempt.user, attempt.ok) == (used, TEST_MAILBOX, True)
        assert ("auth", f"authenticated as {TEST_MAILBOX} ({used})") in backend.lines
        assert f"AUTH {used} ********" in [t for e, t in backend.lines if e == "client"]


def test_auth_mechanism_forces_xoauth2(auth_server, oauth_smtp_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    backend = backend_for(oauth_smtp_server, token, auth_mechanism="xoauth2")
    assert backend.send_messages([message()]) == 1
    assert [a.mechanism for a in oauth_smtp_server.oauth_attempts] == ["XOAUTH2"]


def test_token_after_an_empty_challenge(auth_server, oauth_smtp_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    client = SMTP(oauth_smtp_server.host, oauth_smtp_server.port, timeout=5)
    try:
        code, _ = client.login_oauth(TEST_MAILBOX, token, initial_response_ok=False)
    finally:
        client.quit()
    assert code == 235
    (attempt,) = oauth_smtp_server.oauth_attempts
    assert attempt.ok and attempt.initial_response is False


def test_a_callable_is_called_per_connection_on_the_sending_thread(
        auth_server, oauth_smtp_server):  # noqa: F811
    calls: list[int] = []

    def token() -> str:
        calls.append(threading.get_ident())
        return auth_server.issue()["access_token"]

    backend = backend_for(oauth_smtp_server, token)
    assert calls == []  # not when the backend is made
    sender: list[int] = []

    def send() -> None:
        sender.append(threading.get_ident())
        assert backend.send_messages([message("1")]) == 1
        assert backend.send_messages([message("2"), message("3")]) == 2

    worker = threading.Thread(target=send)
    worker.start()
    worker.join(30)
    assert len(oauth_smtp_server.wait_for(3)) == 3
    assert calls == sender * 2  # one call per connection, on the thread that sent
    assert [a.ok for a in oauth_smtp_server.oauth_attempts] == [True, True]


def test_expired_token_is_a_typed_error_with_the_servers_json(
        auth_server, oauth_smtp_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    auth_server.expire(token)
    backend = backend_for(oauth_smtp_server, token)
    with pytest.raises(SMTPOAuthTokenError) as info:
        backend.send_messages([message()])
    error = info.value
    assert error.status == "invalid_token" and error.expired is True
    assert error.mechanism == "OAUTHBEARER"
    assert error.scope == "https://mail.example.test/smtp"
    assert error.smtp_code == 535
    assert str(error).startswith("the server refused the access token: it has expired")
    assert "status invalid_token" in str(error)
    failure = classify(error)
    assert failure.kind is Kind.AUTH and failure.stage is Stage.AUTH
    assert failure.reason == "token_expired" and failure.code == 535
    # the exchange was finished as RFC 7628 says: a %x01 after the error challenge
    (attempt,) = oauth_smtp_server.oauth_attempts
    assert attempt.status == "invalid_token" and attempt.answer == b"\x01"
    assert oauth_smtp_server.messages == []
    assert ("info", error.sentence) in backend.lines
    assert pickle.loads(pickle.dumps(error)).status == "invalid_token"  # noqa: S301


def test_expired_token_with_xoauth2_google_style(auth_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    auth_server.expire_access_tokens()
    with OAuthSMTPServer(auth_server, mechanisms=("XOAUTH2",)) as server:
        with pytest.raises(SMTPOAuthTokenError) as info:
            backend_for(server, token).send_messages([message()])
        assert info.value.status == "401" and info.value.expired
        assert info.value.schemes == "Bearer"
        (attempt,) = server.oauth_attempts
        assert attempt.answer == b""  # XOAUTH2: an empty response ends the exchange


def test_refresh_once_and_retry(auth_server, oauth_smtp_server):  # noqa: F811
    """What a caller does with .expired: refresh the token, send once more."""
    tokens = code_flow(auth_server)
    auth_server.expire_access_tokens()
    current = {"access": tokens["access_token"], "refresh": tokens["refresh_token"]}
    backend = backend_for(oauth_smtp_server, lambda: current["access"])
    try:
        backend.send_messages([message()])
    except SMTPOAuthTokenError as exc:
        assert exc.expired
        fresh = refresh(auth_server, current["refresh"])
        current.update(access=fresh["access_token"], refresh=fresh["refresh_token"])
    assert backend.send_messages([message()]) == 1
    assert auth_server.grants == ["authorization_code", "refresh_token"]
    assert [a.ok for a in oauth_smtp_server.oauth_attempts] == [False, True]


def test_revoked_refresh_token(auth_server, oauth_smtp_server):  # noqa: F811
    tokens = code_flow(auth_server)
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode({"token": tokens["refresh_token"],
                                   "client_id": "mailcore-test-client"}).encode()
    with urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
            auth_server.endpoint("revoke"), data=form, method="POST"), timeout=5) as response:
        assert response.status == 200
    # RFC 7009: revoking the refresh token revokes the access tokens of the grant too
    with pytest.raises(SMTPOAuthTokenError) as info:
        backend_for(oauth_smtp_server, tokens["access_token"]).send_messages([message()])
    assert info.value.expired
    answer = refresh(auth_server, tokens["refresh_token"])
    assert answer["error"] == "invalid_grant"
    assert "access_token" not in answer


def test_insufficient_scope_is_not_expired(auth_server, oauth_smtp_server):  # noqa: F811
    token = auth_server.issue(scope="openid email")["access_token"]
    with pytest.raises(SMTPOAuthTokenError) as info:
        backend_for(oauth_smtp_server, token).send_messages([message()])
    assert info.value.status == "insufficient_scope"
    assert info.value.expired is False
    assert classify(info.value).reason == "token_refused"
    assert "does not allow sending mail" in str(info.value)


def test_the_token_is_never_in_a_transcript_repr_exception_or_log(
        auth_server, oauth_smtp_server, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    good = auth_server.issue()["access_token"]
    bad = auth_server.issue()["access_token"]
    auth_server.expire(bad)
    seen: list[str] = []
    backend = backend_for(oauth_smtp_server, good, transcript_data=True)
    assert backend.send_messages([message()]) == 1
    seen += [repr(backend), repr(backend.lines), repr(backend.last_results)]
    failing = backend_for(oauth_smtp_server, lambda: bad)
    with pytest.raises(SMTPOAuthTokenError) as info:
        failing.send_messages([message()])
    error = info.value
    seen += [str(error), repr(error), repr(error.args), repr(vars(error)), repr(failing.lines),
             repr(classify(error))]
    with settings.override(EMAIL_OAUTH_TOKEN=good):
        seen += [repr(settings), repr(settings.as_dict())]
    seen += [record.getMessage() for record in caplog.records]
    assert any("AUTH OAUTHBEARER" in text for text in seen)  # the logs did see the AUTH
    for text in seen:
        assert good not in text and bad not in text
    # nor in the connection once it is done
    client = SMTP(oauth_smtp_server.host, oauth_smtp_server.port, timeout=5)
    try:
        client.login_oauth(TEST_MAILBOX, good)
        assert good not in repr(vars(client))
    finally:
        client.quit()


def test_a_server_without_oauth_says_what_it_offers(auth_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    with OAuthSMTPServer(auth_server, mechanisms=("PLAIN",),
                         auth={TEST_USER: TEST_PASSWORD}) as server:
        with pytest.raises(SMTPAuthNotSupportedError) as info:
            backend_for(server, token).send_messages([message()])
        assert "XOAUTH2" in str(info.value) and "PLAIN" in str(info.value)
        assert info.value.mechanisms == ("PLAIN",)
        with pytest.raises(SMTPAuthNotSupportedError, match="OAUTHBEARER.*offers PLAIN"):
            backend_for(server, token, auth_mechanism="OAUTHBEARER").send_messages([message()])
        assert server.handler.login_attempts == []


def test_a_password_server_with_oauth_only_points_at_tokens(auth_server, oauth_smtp_server):  # noqa: F811
    backend = EmailBackend(host=oauth_smtp_server.host, port=oauth_smtp_server.port, timeout=5,
                           username=TEST_MAILBOX, password="secret")
    with pytest.raises(SMTPAuthNotSupportedError, match="OAuth 2.0 access token"):
        backend.send_messages([message()])


def test_email_oauth_token_setting(auth_server, oauth_smtp_server):  # noqa: F811
    token = auth_server.issue()["access_token"]
    settings.configure(EMAIL_HOST=oauth_smtp_server.host, EMAIL_PORT=oauth_smtp_server.port,
                       EMAIL_HOST_USER=TEST_MAILBOX, EMAIL_OAUTH_TOKEN=token)
    assert mailcore.send_mail("s", "b", TEST_MAILBOX, ["bob@example.test"]) == 1
    assert oauth_smtp_server.wait_for(1)[0].auth_login == TEST_MAILBOX
    assert settings.as_dict()["EMAIL_OAUTH_TOKEN"] == "********"
    assert token not in repr(settings)
    assert repr(EmailBackend()).endswith(f"user='{TEST_MAILBOX}' oauth2>")


def test_email_oauth_token_from_the_environment(auth_server, oauth_smtp_server, monkeypatch):  # noqa: F811
    token = auth_server.issue()["access_token"]
    monkeypatch.setenv("MAILCORE_EMAIL_OAUTH_TOKEN", token)
    backend = EmailBackend(host=oauth_smtp_server.host, port=oauth_smtp_server.port, timeout=5,
                           username=TEST_MAILBOX)
    assert backend.send_messages([message()]) == 1
    assert token not in repr(settings.as_dict())


def test_sign_in_with_the_login_form():
    """The authorization server's form, posted by the 'browser' (auto_approve off)."""
    with AuthServer(auto_approve=False, users={"carol@example.test": "pw"}) as auth:
        tokens = code_flow(auth, username="carol@example.test", password="pw")
        assert auth.introspect(tokens["access_token"])["username"] == "carol@example.test"
        verifier, challenge = pkce_pair()
        wrong = browse(auth.authorization_url(redirect_uri="http://127.0.0.1:9/cb",
                                              code_challenge=challenge),
                       username="carol@example.test", password="nope")
        assert wrong.status == 200 and "Wrong email or password" in wrong.body
        assert wrong.redirect_query == {}


def test_the_authorization_server_requires_pkce_s256(auth_server):  # noqa: F811
    url = auth_server.authorization_url(redirect_uri="http://127.0.0.1:9/cb",
                                        code_challenge="x").replace("S256", "plain")
    result = browse(url)  # the redirect goes to a closed port: where it went is what counts
    assert result.redirect_query["error"] == "invalid_request"
    unknown = browse(auth_server.authorization_url(redirect_uri="http://evil.example/cb",
                                                   code_challenge="x"))
    assert unknown.status == 400 and unknown.redirect_query == {}
    doc = json.loads(browse(auth_server.issuer + "/.well-known/openid-configuration").body)
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint"] == auth_server.endpoint("token")


def test_refresh_tokens_rotate(auth_server):  # noqa: F811
    tokens = code_flow(auth_server)
    fresh = refresh(auth_server, tokens["refresh_token"])
    assert fresh["refresh_token"] != tokens["refresh_token"]
    again = refresh(auth_server, tokens["refresh_token"])  # the old one came back
    assert again["error"] == "invalid_grant"
    # ... and that revoked the grant: the rotated one is gone too (OAuth security BCP)
    assert refresh(auth_server, fresh["refresh_token"])["error"] == "invalid_grant"


def test_over_starttls(auth_server, certs):  # noqa: F811
    token = auth_server.issue()["access_token"]
    with OAuthSMTPServer(auth_server, "starttls", certs=certs) as server:
        backend = backend_for(server, token, use_tls=True, ssl_cafile=certs.ca_file)
        assert backend.send_messages([message()]) == 1
        assert server.wait_for(1)[0].session_tls is True


# -- no token in the clear to another host ----------------------------------------------------

NETNS_SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    HOST = "192.0.2.25"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", HOST + "/32", "dev", "lo"], check=True)
    from tests.support import servers
    from tests.support.oauth import AuthServer, OAuthSMTPServer
    from mailcore import EmailMessage
    from mailcore.backends.smtp import EmailBackend, InsecureAuthError

    servers.LOCALHOST = HOST  # the SMTP server listens on the remote-looking address
    results = {}
    with AuthServer() as auth:
        token = auth.issue()["access_token"]
        OAuthSMTPServer.host = HOST
        server = OAuthSMTPServer(auth)
        with server:
            def send(**kwargs):
                backend = EmailBackend(host=HOST, port=server.port, timeout=5,
                                       username="alice@example.test", **kwargs)
                msg = EmailMessage("s", "b", "alice@example.test", ["bob@example.test"])
                try:
                    return {"sent": backend.send_messages([msg])}
                except InsecureAuthError as exc:
                    return {"error": "InsecureAuthError", "text": str(exc)}
            calls = []
            results["refused"] = send(oauth_token=token)
            results["refused_callable"] = send(oauth_token=lambda: calls.append(1) or token)
            results["callable_calls"] = len(calls)
            results["attempts_after_refusal"] = len(server.oauth_attempts)
            results["opt_in"] = send(oauth_token=token, allow_insecure_auth=True)
            results["attempts"] = len(server.oauth_attempts)
            results["token_in_text"] = token in json.dumps(results)
    print(json.dumps(results))
""")


def test_token_refused_in_the_clear_to_a_remote_host():
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NETNS_SCRIPT, str(ROOT)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    refused = results["refused"]
    assert refused["error"] == "InsecureAuthError"
    assert "access token" in refused["text"] and "unencrypted" in refused["text"]
    assert results["refused_callable"]["error"] == "InsecureAuthError"
    assert results["callable_calls"] == 0  # the token was not even fetched
    assert results["attempts_after_refusal"] == 0  # the server never saw an AUTH
    assert results["opt_in"] == {"sent": 1}
    assert results["attempts"] == 1
    assert results["token_in_text"] is False
