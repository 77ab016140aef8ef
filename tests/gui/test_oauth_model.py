"""OAuth2 logins in the model, without Qt: presets, PKCE, the loopback sign-in, the refresh
token in the keyring, access tokens refreshed, revoked, signed out.

Real parts: an OAuth 2.0 authorization server on 127.0.0.1 (authlib's, in
``tests.support.oauth``: PKCE checked, codes bound to the redirect, refresh tokens revoked and
rotated), the "browser" an HTTP client following the authorization address to the app's
loopback redirect, the system
keyring (gnome-keyring under scripts/sandbox.sh, own service name), files in tmp_path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import trustme

from mailgui.model import oauth
from mailgui.model.errors import describe_error
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import SecretStore
from tests.support.oauth import TEST_MAILBOX as ACCOUNT
from tests.support.oauth import AuthServer, browse

CLIENT_ID = "mailgui-test-client"


def LoopbackAuthServer(*, client_secret: str = "", rotate: bool = False,  # noqa: N802
                       access_lifetime: float = 3600.0, **options: object) -> AuthServer:
    """The authorization server these tests sign in to: client CLIENT_ID (public, or
    confidential with ``client_secret``), scopes "smtp offline_access", what clients post
    recorded (``forms``), refresh tokens rotated only when asked."""
    clients = {} if client_secret else {CLIENT_ID: []}
    return AuthServer(clients=clients, confidential_clients={CLIENT_ID: client_secret}
                      if client_secret else None, rotate_refresh_tokens=rotate,
                      access_token_lifetime=access_lifetime, record_forms=True,
                      scopes_supported=("smtp", "offline_access"), **options)  # type: ignore[arg-type]


def follow(url: str) -> bool:
    """The test's "browser": the authorization address, through the server's redirect, to the
    loopback redirect of the app."""
    browse(url, timeout=20)
    return True


def posted(server: AuthServer, path: str) -> dict[str, str]:
    """The first form a client posted to ``path``."""
    assert server.forms is not None
    return next(form for where, form in server.forms if where == path)


def custom_profile(server: AuthServer, **fields: object) -> Profile:
    values: dict[str, object] = {
        "name": "Custom OAuth", "kind": "smtp", "host": "127.0.0.1", "port": 2525,
        "security": "none", "auth": "oauth2", "oauth_provider": "custom",
        "oauth_issuer": server.issuer, "oauth_client_id": CLIENT_ID,
        "oauth_scopes": "smtp offline_access", "username": ACCOUNT, **fields}
    return Profile(**values)  # type: ignore[arg-type]


def signed_in(server: AuthServer, secrets: SecretStore,
              **fields: object) -> tuple[Profile, oauth.SavedSignIn]:
    profile = custom_profile(server, **fields)
    saved = oauth.SignIn(profile, secrets, open_browser=follow, timeout=30).run()
    return profile, saved


def saved_refresh_token(secrets: SecretStore, profile: Profile) -> str:
    text = secrets.get(oauth.key_name(profile.id))
    assert text is not None
    return json.loads(text)["refresh_token"]


@pytest.fixture
def auth_server():  # noqa: ANN201
    with LoopbackAuthServer() as server:
        yield server


# -- presets, profile fields, addresses -------------------------------------------------------


def test_presets_fill_the_smtp_server_issuer_and_scopes() -> None:
    google = Profile("Gmail")
    oauth.apply_provider(google, "google")
    assert (google.auth, google.oauth_issuer, google.oauth_scopes) == (
        "oauth2", "https://accounts.google.com", "https://mail.google.com/")
    assert (google.host, google.port, google.security) == ("smtp.gmail.com", 587, "starttls")
    assert oauth.endpoints_for(google) == oauth.Endpoints(
        "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
        "https://oauth2.googleapis.com/revoke")
    microsoft = Profile("Work")
    oauth.apply_provider(microsoft, "microsoft")
    assert microsoft.oauth_scopes == "https://outlook.office.com/SMTP.Send offline_access"
    assert (microsoft.host, microsoft.port, microsoft.security) == (
        "smtp.office365.com", 587, "starttls")
    assert oauth.endpoints_for(microsoft).token == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token")
    microsoft.oauth_issuer = "https://login.microsoftonline.com/organizations/v2.0"
    assert oauth.endpoints_for(microsoft).authorization == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize")
    assert oauth.endpoints_for(microsoft).revocation == ""  # Entra ID has no RFC 7009 endpoint
    # an OAuth2 profile needs no password, and its login is said where it sends
    assert not microsoft.needs_password and microsoft.uses_oauth
    microsoft.username = "bob@example.com"
    assert microsoft.describe() == "smtp.office365.com:587, STARTTLS, as bob@example.com (OAuth2)"


def test_the_profile_file_keeps_the_oauth_settings_and_never_a_token(
        paths: AppPaths) -> None:
    store = ProfileStore(paths)
    profile = Profile("Gmail", username="alice@gmail.com", oauth_client_id="1234.apps")
    oauth.apply_provider(profile, "google")
    store.upsert(profile)
    saved = json.loads(paths.profiles_file.read_text())["profiles"][0]
    assert (saved["auth"], saved["oauth_provider"], saved["oauth_client_id"]) == (
        "oauth2", "google", "1234.apps")
    # a token put into the file by hand is not read back, nor written again
    saved.update(refresh_token="1//secret", access_token="ya29.secret",
                 oauth_client_secret="GOCSPX-secret")
    paths.profiles_file.write_text(json.dumps({"version": 1, "profiles": [saved]}))
    again = ProfileStore(paths)
    assert again.user_profiles()[0].uses_oauth
    again.save()
    assert "secret" not in paths.profiles_file.read_text()
    with pytest.raises(ValueError, match="unknown login"):
        Profile("X", auth="kerberos")


def test_pkce_pairs_follow_rfc_7636() -> None:
    seen = set()
    for _ in range(20):
        verifier, challenge = oauth.pkce_pair()
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        seen.add(verifier)
    assert len(seen) == 20


def test_tokens_go_only_over_https_or_to_this_computer() -> None:
    assert oauth.check_url("https://login.example.com/token", "token endpoint")
    assert oauth.check_url("http://127.0.0.1:8080/token", "token endpoint")
    assert oauth.check_url("http://[::1]:8080/token", "token endpoint")
    assert oauth.check_url("http://localhost:8080/token", "token endpoint")
    for url, words in (("http://login.example.com/token", "is not https"),
                       ("file:///etc/passwd", "is not an http(s) address"),
                       ("https://user:pw@login.example.com/", "must not hold a user name")):
        with pytest.raises(oauth.OAuthError, match=re.escape(words)) as caught:
            oauth.check_url(url, "token endpoint")
        assert caught.value.kind == "config"
    profile = Profile("Plain", auth="oauth2", oauth_issuer="http://login.example.com",
                      oauth_client_id="x")
    with pytest.raises(oauth.OAuthError, match="only over an encrypted connection"):
        oauth.SignIn(profile, SecretStore(), open_browser=follow).run()


# -- discovery -------------------------------------------------------------------------------


def test_discovery_from_openid_configuration_and_rfc_8414() -> None:
    with LoopbackAuthServer() as server:
        found = oauth.discover(server.issuer)
        assert found == oauth.Endpoints(f"{server.issuer}/authorize", f"{server.issuer}/token",
                                        f"{server.issuer}/revoke")
    with LoopbackAuthServer(path="/tenant-a", revocation=False) as server:
        found = oauth.discover(server.issuer)  # only /.well-known/oauth-authorization-server/…
        assert found.token == f"{server.base}/tenant-a/token" and found.revocation == ""
        asked = [path for method, path in server.requests if method == "GET"]
        assert asked == ["/tenant-a/.well-known/openid-configuration",
                         "/.well-known/oauth-authorization-server/tenant-a"]
    # metadata that names another issuer is not used (RFC 8414 section 3.3)
    with LoopbackAuthServer(claimed_issuer="https://login.example.net") as server:
        with pytest.raises(oauth.OAuthError, match="is for the issuer") as caught:
            oauth.discover(server.issuer)
        assert caught.value.kind == "config"
    with LoopbackAuthServer() as server:
        profile = custom_profile(server, oauth_issuer=server.base + "/nothing-here")
        with pytest.raises(oauth.OAuthError, match="publishes no OAuth metadata"):
            oauth.endpoints_for(profile)
        # endpoints typed in by hand need no discovery
        server.requests.clear()
        hand = custom_profile(server, oauth_issuer="", oauth_auth_url=f"{server.base}/authorize",
                              oauth_token_url=f"{server.base}/token")
        assert oauth.endpoints_for(hand).token == f"{server.base}/token"
        assert server.requests == []


def test_discovery_over_https_verifies_the_certificate(tmp_path: Path) -> None:
    """An issuer on https: trusted through the given CA, refused with a sentence without it."""
    import http.server
    import ssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)

    class Meta(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            base = f"https://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps({"issuer": base, "authorization_endpoint": f"{base}/a",
                               "token_endpoint": f"{base}/t"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Meta)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        issuer = f"https://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(oauth.OAuthError, match="is not trusted") as caught:
            oauth.discover(issuer)
        assert caught.value.kind == "tls"
        client = ssl.create_default_context()
        ca.configure_trust(client)
        assert oauth.discover(issuer, oauth.HTTP(client)).token == f"{issuer}/t"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the sign-in -------------------------------------------------------------------------------


def test_sign_in_with_pkce_and_a_loopback_redirect_keeps_the_refresh_token_in_the_keyring(
        auth_server: AuthServer, secrets: SecretStore) -> None:
    visited: list[str] = []

    def browser(url: str) -> bool:
        visited.append(url)
        return follow(url)

    profile = custom_profile(auth_server)
    flow = oauth.SignIn(profile, secrets, open_browser=browser, timeout=30)
    saved = flow.run()
    assert saved.account == ACCOUNT and saved.sentence == f"Signed in as {ACCOUNT} until revoked."
    assert saved.revocable and "refresh" not in repr(saved).lower()
    # what the browser was sent to: PKCE S256, a state, a loopback redirect on a free port
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(visited[0]).query))
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 32
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", query["redirect_uri"])
    assert query["login_hint"] == ACCOUNT and query["scope"] == "smtp offline_access"
    # the code went back with the verifier of that challenge and the same redirect
    token_form = posted(auth_server, "/token")
    assert token_form["redirect_uri"] == query["redirect_uri"]
    digest = hashlib.sha256(token_form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    # the keyring holds the one refresh token the server issued, under "<id>:oauth"
    refresh = saved_refresh_token(secrets, profile)
    assert auth_server.active_tokens("refresh") == [refresh]
    assert oauth.saved_sign_in(secrets, profile.id) == saved
    # the access token of the sign-in is used without a refresh
    token = oauth.TokenSource(profile, secrets)()
    assert auth_server.introspect(token)["active"]
    assert auth_server.grants == ["authorization_code"]
    # the redirect port is closed again: one answer served
    port = int(urllib.parse.urlsplit(query["redirect_uri"]).port or 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/?code=x&state=y", timeout=5)  # noqa: S310


def test_a_redirect_with_another_state_is_refused(
        auth_server: AuthServer, secrets: SecretStore) -> None:
    def forger(url: str) -> bool:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        follow(f"{query['redirect_uri']}?code=stolen&state=not-the-one")
        return True

    profile = custom_profile(auth_server)
    with pytest.raises(oauth.OAuthError, match="its state did not match") as caught:
        oauth.SignIn(profile, secrets, open_browser=forger, timeout=30).run()
    assert caught.value.error == "state_mismatch"
    assert secrets.get(oauth.key_name(profile.id)) is None
    assert not any(p == "/token" for _m, p in auth_server.requests)  # nothing exchanged


def test_a_refused_sign_in_a_timeout_and_a_cancel_keep_nothing(secrets: SecretStore) -> None:
    with LoopbackAuthServer() as server:
        server.deny = "The user said no"
        profile = custom_profile(server)
        with pytest.raises(oauth.OAuthError) as caught:
            oauth.SignIn(profile, secrets, open_browser=follow, timeout=30).run()
        assert str(caught.value) == ("The provider did not sign you in (access_denied: The "
                                     "user said no). You declined the access mailgui asked for.")
        # a browser that never comes back
        with pytest.raises(oauth.OAuthError, match="did not come back within") as caught:
            oauth.SignIn(profile, secrets, open_browser=lambda url: True, timeout=0.5).run()
        assert caught.value.kind == "timeout"
        # cancelled while waiting
        holder: list[oauth.SignIn] = []

        def cancel_soon(url: str) -> bool:
            threading.Thread(target=holder[0].cancel).start()
            return True

        holder.append(oauth.SignIn(profile, secrets, open_browser=cancel_soon, timeout=60))
        with pytest.raises(oauth.OAuthError, match="cancelled") as caught:
            holder[0].run()
        assert caught.value.kind == "cancelled"
        # no browser at all: the address to open is in the sentence
        with pytest.raises(oauth.OAuthError, match="No web browser could be opened") as caught:
            oauth.SignIn(profile, secrets, open_browser=lambda url: False, timeout=5).run()
        assert f"{server.issuer}/authorize?" in str(caught.value)
        assert secrets.get(oauth.key_name(profile.id)) is None
    # no client ID, no keyring
    with pytest.raises(oauth.OAuthError, match="Enter the client ID"):
        oauth.SignIn(Profile("X", auth="oauth2"), secrets).run()
    with pytest.raises(oauth.OAuthError, match="No secure keyring"):
        oauth.SignIn(Profile("X", auth="oauth2", oauth_client_id="c"), None).run()


def test_a_client_secret_is_sent_from_the_keyring(secrets: SecretStore) -> None:
    with LoopbackAuthServer(client_secret="desktop-secret") as server:  # noqa: S106
        profile = custom_profile(server)
        with pytest.raises(oauth.OAuthError, match="invalid_client"):
            oauth.SignIn(profile, secrets, open_browser=follow, timeout=30).run()
        oauth.store_client_secret(secrets, profile.id, "desktop-secret")
        oauth.SignIn(profile, secrets, open_browser=follow, timeout=30).run()
        source = oauth.TokenSource(profile, secrets)
        source.invalidate()
        assert server.introspect(source())["active"]  # the refresh sends it too
        # every /token request: the first, without the secret, refused (invalid_client)
        assert server.grants == ["authorization_code", "authorization_code", "refresh_token"]
        oauth.forget(profile, secrets)
        assert secrets.get(oauth.client_secret_name(profile.id)) is None


# -- access tokens ------------------------------------------------------------------------------


def test_an_expiring_access_token_is_refreshed_and_a_rotated_refresh_token_saved(
        secrets: SecretStore) -> None:
    with LoopbackAuthServer(access_lifetime=0, rotate=True) as server:
        profile, _saved = signed_in(server, secrets)
        first = saved_refresh_token(secrets, profile)
        source = oauth.TokenSource(profile, secrets)
        token = source()  # the sign-in's token has no time left: refreshed first
        assert server.grants == ["authorization_code", "refresh_token"] and source.refreshed == 1
        rotated = saved_refresh_token(secrets, profile)
        assert server.active_tokens("refresh") == [rotated] and rotated != first
        refreshed = [form for path, form in server.forms or [] if path == "/token"][1]
        assert refreshed["grant_type"] == "refresh_token" and refreshed["refresh_token"] == first
        assert token and not server.introspect(token)["active"]  # issued with no time left
        assert "token=" not in repr(source) and token not in repr(source)


def test_invalidate_refreshes_once_for_many_threads(
        auth_server: AuthServer, secrets: SecretStore) -> None:
    profile, _saved = signed_in(auth_server, secrets)
    source = oauth.TokenSource(profile, secrets)
    first = source()
    source.invalidate()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(source())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8 and len(set(results)) == 1 and results[0] != first
    assert auth_server.grants.count("refresh_token") == 1
    assert auth_server.introspect(results[0])["active"]


def test_a_revoked_refresh_token_says_sign_in_again(
        auth_server: AuthServer, secrets: SecretStore) -> None:
    profile, _saved = signed_in(auth_server, secrets)
    refresh = saved_refresh_token(secrets, profile)
    for token in auth_server.active_tokens("refresh"):
        auth_server.revoke(token)  # the user revoked the sign-in at the provider
    source = oauth.TokenSource(profile, secrets)
    source.invalidate()
    with pytest.raises(oauth.SignInNeeded) as caught:
        source()
    sentence = str(caught.value)
    assert sentence.startswith("Sign in again: the provider refused the saved sign-in "
                               "(invalid_grant).")
    assert refresh not in sentence and caught.value.error == "invalid_grant"
    assert secrets.get(oauth.key_name(profile.id)) is None  # of no more use: removed
    info = describe_error(caught.value, profile)
    assert info.kind == "oauth-signin" and info.sentence.startswith(sentence)
    assert "Sign in\u2026" in info.hint
    # not signed in at all, no keyring, another client ID since
    other = custom_profile(auth_server)
    with pytest.raises(oauth.SignInNeeded, match="is not signed in"):
        oauth.TokenSource(other, secrets)()
    with pytest.raises(oauth.SignInNeeded, match="no secure keyring"):
        oauth.TokenSource(other, None)()
    profile, _saved = signed_in(auth_server, secrets)
    profile.oauth_client_id = "another-client"
    with pytest.raises(oauth.SignInNeeded, match="client ID .* changed"):
        oauth.TokenSource(profile, secrets)()


def test_sign_out_revokes_and_removes_the_saved_sign_in(secrets: SecretStore) -> None:
    with LoopbackAuthServer() as server:
        profile, _saved = signed_in(server, secrets)
        refresh = saved_refresh_token(secrets, profile)
        token = oauth.TokenSource(profile, secrets)()
        sentence = oauth.sign_out(profile, secrets)
        assert sentence.startswith("Signed out: the provider revoked the sign-in")
        assert not server.introspect(refresh)["active"]
        assert not server.introspect(token)["active"]
        revoke = posted(server, "/revoke")
        assert revoke["token_type_hint"] == "refresh_token"
        assert secrets.get(oauth.key_name(profile.id)) is None
        assert oauth.saved_sign_in(secrets, profile.id) is None
        with pytest.raises(oauth.SignInNeeded):  # the token in memory went too
            oauth.TokenSource(profile, secrets)()
        assert oauth.sign_out(profile, secrets) == "Not signed in."
    with LoopbackAuthServer(revocation=False) as server:
        profile, saved = signed_in(server, secrets)
        assert not saved.revocable
        assert "offers no way to revoke it from here" in oauth.sign_out(profile, secrets)
        assert secrets.get(oauth.key_name(profile.id)) is None
    with LoopbackAuthServer() as server:
        profile, _saved = signed_in(server, secrets)
    # the provider is gone: removed from this computer anyway, and said so
    sentence = oauth.sign_out(profile, secrets)
    assert sentence.startswith("Signed out on this computer") and "could not reach" in sentence
    assert secrets.get(oauth.key_name(profile.id)) is None
