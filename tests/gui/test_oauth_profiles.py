"""OAuth2 profiles end to end: sign in from the profile editor, send from the window, tokens
refreshed before they expire and after a server refused one, a revoked sign-in ("sign in
again", the draft kept), Test connection, Sign out, delete, and ``mailcore --profile``.

Real parts: the loopback OAuth 2.0 authorization server of ``tests.support.oauth`` (PKCE S256,
refresh token rotation, revocation, introspection), its aiosmtpd server taking XOAUTH2 and
OAUTHBEARER tokens checked by introspection, ``browse`` doing the browser's part (the
authorization address followed to the app's loopback redirect), the system keyring
(gnome-keyring under scripts/sandbox.sh), the app's files in tmp_path.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mailgui.model import oauth
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import SecretStore
from tests.gui.conftest import add_profile
from tests.support.gui import fill, send
from tests.support.oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_SCOPE,
    TEST_MAILBOX,
    AuthServer,
    OAuthSMTPServer,
    auth_server,  # noqa: F401 - the fixture
    browse,
    oauth_smtp_server,  # noqa: F401 - the fixture
)


def oauth_profile(paths: AppPaths, auth: AuthServer, smtp: OAuthSMTPServer,
                  **fields: object) -> Profile:
    values: dict[str, object] = {
        "name": "Test issuer", "kind": "smtp", "host": "127.0.0.1", "port": smtp.port,
        "security": "none", "timeout": 10, "username": TEST_MAILBOX, "auth": "oauth2",
        "oauth_provider": "custom", "oauth_issuer": auth.issuer,
        "oauth_client_id": DEFAULT_CLIENT_ID, "oauth_scopes": f"{DEFAULT_SCOPE} offline_access",
        "from_email": f"Alice <{TEST_MAILBOX}>", **fields}
    return add_profile(paths, **values)


def refresh_token_of(secrets: SecretStore, profile: Profile) -> str:
    text = secrets.get(oauth.key_name(profile.id))
    assert text is not None, "no saved sign-in"
    return json.loads(text)["refresh_token"]


def sign_in_from_editor(gui, qtbot, profile: Profile):  # noqa: ANN001, ANN201
    """Open Profiles on ``profile``, press "Sign in...", let ``browse`` be the browser."""
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    assert d.oauth_group.isVisibleTo(d) and not d.password.isVisibleTo(d)
    p.oauth.open_browser = browse
    qtbot.waitUntil(lambda: d.oauth_state.text() == "Not signed in.", timeout=10000)
    assert not d.oauth_sign_out.isEnabled()
    qtbot.mouseClick(d.oauth_sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.oauth_state.text().startswith("Signed in as"), timeout=20000)
    assert d.oauth_state.text() == f"Signed in as {TEST_MAILBOX} until revoked."
    assert d.oauth_sign_out.isEnabled()
    return d


def files_holding(secret: str, *roots: Path) -> list[Path]:
    """Every file under ``roots`` whose bytes hold ``secret``."""
    needle = secret.encode()
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                pass
    return found


def sandbox_roots(paths: AppPaths, tmp_path: Path) -> list[Path]:
    roots = [tmp_path]
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                 "XDG_RUNTIME_DIR"):
        if os.environ.get(name):
            roots.append(Path(os.environ[name]))
    return roots


# -- sign in, send, refresh ------------------------------------------------------------------


def test_sign_in_from_the_editor_then_send_and_the_token_is_in_no_file(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, auth_server,  # noqa: F811
        oauth_smtp_server, tmp_path: Path) -> None:  # noqa: F811
    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    gui = make_gui(secrets, start_inbox=False)
    d = sign_in_from_editor(gui, qtbot, profile)
    refresh = refresh_token_of(secrets, profile)
    assert auth_server.grants == ["authorization_code"]
    assert refresh in auth_server.active_tokens("refresh")
    # Test connection logs in with the saved sign-in, no password asked
    qtbot.mouseClick(d.test, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=15000)
    assert d.test_result.text().startswith("\u2714 Connected to 127.0.0.1"), d.test_result.text()
    assert f"authenticated as {TEST_MAILBOX}" in d.test_result.text()
    d.close()
    # send from the window
    assert gui.controller.target.select(profile.id)
    fill(gui, to="Bob <bob@example.com>", subject="Via OAuth2", body="Hello Bob.")
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    received = oauth_smtp_server.handler.wait_for(1)[0]
    assert received.auth_login == TEST_MAILBOX and b"Subject: Via OAuth2" in received.data
    attempts = oauth_smtp_server.oauth_attempts
    assert [a.ok for a in attempts] == [True, True]  # the test, then the send
    assert {a.mechanism for a in attempts} == {"OAUTHBEARER"}  # preferred when offered
    assert auth_server.grants == ["authorization_code"]  # the sign-in's token, in memory
    # no token in any file of the sandbox (HOME, XDG folders, the app's), nor a transcript
    quit_and_scan = [refresh, *auth_server.active_tokens("access")]
    transcript = "\n".join(outcome.transcript) + gui.window.transcript.text.toPlainText()
    for token in quit_and_scan:
        assert token not in transcript
        assert files_holding(token, *sandbox_roots(paths, tmp_path)) == []
    on_disk = paths.profiles_file.read_text()
    assert '"auth": "oauth2"' in on_disk and DEFAULT_CLIENT_ID in on_disk


def test_an_access_token_near_its_end_is_refreshed_before_auth(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore) -> None:
    with AuthServer(access_token_lifetime=2) as auth, OAuthSMTPServer(auth) as smtp:
        profile = oauth_profile(paths, auth, smtp)
        gui = make_gui(secrets, start_inbox=False)
        sign_in_from_editor(gui, qtbot, profile).close()
        first = refresh_token_of(secrets, profile)
        time.sleep(2.2)  # the sign-in's access token has expired by now
        assert gui.controller.target.select(profile.id)
        fill(gui, subject="Later")
        outcome = send(gui, qtbot)
        assert outcome.ok, outcome.sentence
        assert auth.grants == ["authorization_code", "refresh_token"]
        # refreshed before AUTH: the server saw one login, and it passed
        assert [a.ok for a in smtp.oauth_attempts] == [True]
        assert any("got a fresh access token" in line for line in outcome.transcript)
        # the rotated refresh token replaced the first one in the keyring
        rotated = refresh_token_of(secrets, profile)
        assert rotated != first and rotated in auth.active_tokens("refresh")


def test_a_token_the_server_refuses_is_refreshed_and_the_send_tried_once_more(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, auth_server,  # noqa: F811
        oauth_smtp_server) -> None:  # noqa: F811
    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    gui = make_gui(secrets, start_inbox=False)
    sign_in_from_editor(gui, qtbot, profile).close()
    auth_server.expire_access_tokens()  # the app still thinks its token is good for an hour
    assert gui.controller.target.select(profile.id)
    fill(gui, subject="Retried")
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    attempts = oauth_smtp_server.oauth_attempts
    assert [(a.ok, a.status) for a in attempts] == [(False, "invalid_token"), (True, "")]
    assert auth_server.grants == ["authorization_code", "refresh_token"]
    assert len(oauth_smtp_server.handler.wait_for(1)) == 1  # delivered once
    assert any("refused the access token as expired" in line for line in outcome.transcript)


def test_a_revoked_sign_in_says_sign_in_again_and_keeps_the_draft(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, auth_server,  # noqa: F811
        oauth_smtp_server) -> None:  # noqa: F811
    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    gui = make_gui(secrets, start_inbox=False)
    sign_in_from_editor(gui, qtbot, profile).close()
    auth_server.revoke(refresh_token_of(secrets, profile))  # the user revoked it elsewhere
    assert gui.controller.target.select(profile.id)
    fill(gui, subject="Keep me", body="Still here")
    outcome = send(gui, qtbot)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.kind == "oauth-signin"
    assert outcome.sentence.startswith(
        "Sign in again: the provider refused the saved sign-in (invalid_grant).")
    assert outcome.sentence.endswith("Open Profiles and press \u201cSign in\u2026\u201d for "
                                     "this profile. Your draft is unchanged.")
    banner = gui.window.compose.banner
    assert banner.kind == "error" and "Sign in again" in banner.text.text()
    assert oauth_smtp_server.handler.messages == []
    draft = gui.controller.compose.draft
    assert (draft.subject, draft.body) == ("Keep me", "Still here")
    assert gui.window.compose.subject.text() == "Keep me"
    # signing in again makes it work
    sign_in_from_editor(gui, qtbot, profile).close()
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence


# -- sign out, delete ------------------------------------------------------------------------


def test_sign_out_and_delete_revoke_and_remove_the_token(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, auth_server,  # noqa: F811
        oauth_smtp_server, monkeypatch) -> None:  # noqa: F811
    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    gui = make_gui(secrets, start_inbox=False)
    d = sign_in_from_editor(gui, qtbot, profile)
    refresh = refresh_token_of(secrets, profile)
    qtbot.mouseClick(d.oauth_sign_out, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.oauth_state.text().startswith("Not signed in."), timeout=10000)
    assert "revoked" in d.oauth_state.text()
    assert secrets.get(oauth.key_name(profile.id)) is None
    assert refresh not in auth_server.active_tokens("refresh")
    assert not d.oauth_sign_out.isEnabled()
    # signed in again, then the profile is deleted: revoked and gone from the keyring
    qtbot.mouseClick(d.oauth_sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.oauth_state.text().startswith("Signed in as"), timeout=20000)
    refresh = refresh_token_of(secrets, profile)
    p = gui.controller.profiles
    monkeypatch.setattr(p, "confirm_delete", lambda _profile: True)
    qtbot.mouseClick(d.delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: p.runner.busy == 0, timeout=10000)
    assert secrets.get(oauth.key_name(profile.id)) is None
    assert refresh not in auth_server.active_tokens("refresh")
    assert ProfileStore(paths).get(profile.id) is None


# -- the editor's presets ----------------------------------------------------------------------


def test_choosing_a_provider_fills_in_its_server(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore) -> None:
    profile = add_profile(paths, name="Mail", kind="smtp", host="smtp.example.org")
    gui = make_gui(secrets, start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    assert not d.oauth_group.isVisibleTo(d) and d.password.isVisibleTo(d)
    d.auth.setCurrentIndex(d.auth.findData("oauth2"))
    assert d.oauth_group.isVisibleTo(d) and not d.password.isVisibleTo(d)
    for key, host, scopes in (
            ("google", "smtp.gmail.com", "https://mail.google.com/"),
            ("microsoft", "smtp.office365.com",
             "https://outlook.office.com/SMTP.Send offline_access")):
        index = d.oauth_provider.findData(key)
        d.oauth_provider.setCurrentIndex(index)
        d.oauth_provider.activated.emit(index)
        assert (d.host.text(), d.port.value(), d.security.currentData()) == (
            host, 587, "starttls")
        assert d.oauth_scopes.text() == scopes
        assert not d.oauth_auth_url.isVisibleTo(d)  # hand-entered endpoints: custom only
    assert d.oauth_issuer.currentText() == "https://login.microsoftonline.com/common/v2.0"
    # saving needs the client ID; then the file has the settings
    qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    assert d.test_result.text() == "Enter the OAuth2 client ID of your app registration."
    d.oauth_client_id.setText("00000000-1111-2222-3333-444444444444")
    d.username.setText("alice@contoso.example")
    qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ProfileStore(paths).get(profile.id).uses_oauth, timeout=10000)
    saved = ProfileStore(paths).get(profile.id)
    assert (saved.oauth_provider, saved.host, saved.oauth_client_id) == (
        "microsoft", "smtp.office365.com", "00000000-1111-2222-3333-444444444444")
    index = d.oauth_provider.findData("custom")
    d.oauth_provider.setCurrentIndex(index)
    d.oauth_provider.activated.emit(index)
    assert d.oauth_auth_url.isVisibleTo(d) and d.host.text() == "smtp.office365.com"


def test_a_sign_in_refused_in_the_browser_is_said_in_the_editor(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, auth_server,  # noqa: F811
        oauth_smtp_server) -> None:  # noqa: F811
    auth_server.deny = True
    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    gui = make_gui(secrets, start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    p.oauth.open_browser = browse
    qtbot.waitUntil(lambda: d.oauth_state.text() == "Not signed in.", timeout=10000)
    qtbot.mouseClick(d.oauth_sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "did not sign you in" in d.oauth_state.text(), timeout=20000)
    assert d.oauth_state.text() == ("The provider did not sign you in (access_denied). You "
                                    "declined the access mailgui asked for.")
    assert d.oauth_sign_in.text() == "&Sign in\u2026" and d.oauth_sign_in.isEnabled()
    assert secrets.get(oauth.key_name(profile.id)) is None
    # a browser that never comes back: Cancel sign-in stops the wait
    p.oauth.open_browser = lambda url: True
    qtbot.mouseClick(d.oauth_sign_in, Qt.MouseButton.LeftButton)
    assert d.oauth_sign_in.text() == "Cancel sign-in"
    qtbot.mouseClick(d.oauth_sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in d.oauth_state.text(), timeout=10000)
    assert d.oauth_state.text() == "The sign-in was cancelled; nothing was saved."


# -- the mailcore command --------------------------------------------------------------------


def test_the_mailcore_command_sends_through_an_oauth2_profile(  # noqa: ANN001
        paths: AppPaths, secrets: SecretStore, auth_server, oauth_smtp_server,  # noqa: F811
        tmp_path: Path, monkeypatch) -> None:
    """``mailcore --profile NAME`` with an OAuth2 profile: the access token comes from the
    refresh token in the keyring, refreshed on the way (the command keeps none in memory
    across runs)."""
    import mailcore
    from mailgui.model.cli_profiles import load_profile

    profile = oauth_profile(paths, auth_server, oauth_smtp_server)
    loaded = load_profile("Test issuer", paths, secrets)
    assert "not signed in" in loaded["oauth_problem"] and "password" not in loaded
    oauth.SignIn(profile, secrets, open_browser=browse, timeout=30).run()
    loaded = load_profile("Test issuer", paths, secrets)
    assert "oauth_problem" not in loaded and "password" not in loaded
    source = loaded["oauth_token"]
    assert isinstance(source, oauth.TokenSource)
    source.invalidate()  # as a new process: nothing in memory, the keyring's refresh token
    kwargs = {k: v for k, v in loaded.items() if k not in ("backend", "profile_name",
                                                            "from_email")}
    connection = mailcore.get_connection(loaded["backend"], **kwargs)
    sent = mailcore.send_mail("From the command", "hello", loaded["from_email"],
                              ["bob@example.com"], connection=connection)
    assert sent == 1
    assert oauth_smtp_server.handler.wait_for(1)[0].auth_login == TEST_MAILBOX
    assert auth_server.grants == ["authorization_code", "refresh_token"]
    assert files_holding(refresh_token_of(secrets, profile), tmp_path) == []
    # and through the command itself: mailcore --profile NAME (the entry point reads the
    # user's own profiles; here, this test's folder and keyring)
    import io

    from mailcore import cli

    monkeypatch.setattr(cli, "load_profile", lambda name: load_profile(name, paths, secrets))
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(["--profile", "Test issuer", "--to", "carol@example.com", "--subject",
                    "By the command", "--body", "hello", "--transcript"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    received = oauth_smtp_server.handler.wait_for(2)
    assert received[1].rcpt_tos == ["carol@example.com"]
    assert received[1].auth_login == TEST_MAILBOX
    shown = out.getvalue() + err.getvalue()
    assert "AUTH" in shown  # the transcript was printed, with the token redacted
    assert refresh_token_of(secrets, profile) not in shown
    for token in auth_server.active_tokens("access"):
        assert token not in shown


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_presets_build_the_provider_authorization_address(provider: str,
                                                           secrets: SecretStore) -> None:
    """What the browser is sent to for Google and Microsoft (nothing is asked of them: the
    browser seam only records the address, and the sign-in is cancelled)."""
    profile = Profile("P", username="alice@example.com", oauth_client_id="my-client")
    oauth.apply_provider(profile, provider)
    seen: list[str] = []
    flows: list[oauth.SignIn] = []

    def record(url: str) -> bool:
        seen.append(url)
        flows[0].cancel()
        return True

    flows.append(oauth.SignIn(profile, secrets, open_browser=record, timeout=30))
    with pytest.raises(oauth.OAuthError, match="cancelled"):
        flows[0].run()
    import urllib.parse

    parts = urllib.parse.urlsplit(seen[0])
    query = dict(urllib.parse.parse_qsl(parts.query))
    if provider == "google":
        assert f"{parts.netloc}{parts.path}" == "accounts.google.com/o/oauth2/v2/auth"
        assert (query["access_type"], query["prompt"]) == ("offline", "consent")
        assert query["redirect_uri"].startswith("http://127.0.0.1:")
    else:
        assert f"{parts.netloc}{parts.path}" == (
            "login.microsoftonline.com/common/oauth2/v2.0/authorize")
        assert query["redirect_uri"].startswith("http://localhost:")  # as registered
    assert query["client_id"] == "my-client" and query["code_challenge_method"] == "S256"
    assert query["scope"] == profile.oauth_scopes and query["login_hint"] == "alice@example.com"
