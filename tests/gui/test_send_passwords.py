"""Sending through a profile that needs a password: the password asked for a profile goes to
that profile only, Cancel while the keyring is still being asked, and a keyring that fails
(the D-Bus error of a Secret Service that died, or the backend's own refusal) is a sentence.

Real parts: aiosmtpd servers, the real system keyring behind ``ControlledKeyring`` (a
``keyring`` backend the test makes slow or broken). Only the password dialog is answered.
"""

from __future__ import annotations

import keyring.errors

from mailgui.model.draft import Draft
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.model.sending import check_connection, send_draft
from tests.gui.conftest import add_profile
from tests.support.gui import answer_password_dialog, fill
from tests.support.keyrings import ControlledKeyring, dbus_error
from tests.support.servers import SMTPServer


def test_password_retry_goes_to_the_profile_it_was_asked_for(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "A-secret"}) as srv_a, \
            SMTPServer("plain", auth={"mallory": "A-secret"}) as srv_b:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv_a.port,
                        security="none", username="alice", from_email="a@example.com")
        b = add_profile(paths, name="B other", kind="smtp", host="127.0.0.1", port=srv_b.port,
                        security="none", username="mallory", from_email="a@example.com")
        gate = controlled_keyring.hold("get")  # nothing stored: the password is asked
        gui = make_gui(secrets, start_inbox=False)
        c, w = gui.controller, gui.window
        asked: list = []
        answer_password_dialog(monkeypatch, "A-secret", asked)
        try:
            assert c.target.select(a.id)
            dialog = c.profiles.open_dialog()
            fill(gui, subject="For A only")
            assert w.target.isEnabled() and dialog.use.isEnabled()
            assert c.sending.send() is not None
            # while it is sent, where it goes can't be changed
            assert not w.target.isEnabled() and not dialog.use.isEnabled()
            # ... and if it changes anyway (or the draft does), the job keeps its own
            assert c.target.select(b.id)
            w.compose.subject.setText("Edited meanwhile")
            with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
                gate.set()
            outcome = done.args[0]
        finally:
            gate.set()
        assert outcome.ok, outcome.sentence
        assert asked == ["A work"]
        assert srv_b.handler.login_attempts == [] and srv_b.messages == []
        assert srv_a.handler.login_attempts == [("PLAIN", "alice", True)]
        received = srv_a.wait_for(1)[0]
        assert received.message()["Subject"] == "For A only"
        assert w.target.isEnabled() and dialog.use.isEnabled()


def test_cancel_during_the_keyring_lookup_asks_nothing_and_sends_nothing(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv.port,
                        security="none", username="alice", from_email="a@example.com")
        gate = controlled_keyring.hold("get")
        gui = make_gui(secrets, start_inbox=False)
        c = gui.controller
        asked: list = []
        answer_password_dialog(monkeypatch, "pw", asked)
        try:
            c.target.select(a.id)
            fill(gui, subject="Never mind")
            assert c.sending.send() is not None
            with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
                gui.window.act_cancel.trigger()  # Esc
                assert gui.window.statusBar().currentMessage() == "Cancelling\u2026"
                gate.set()
        finally:
            gate.set()
        outcome = done.args[0]
        assert outcome.cancelled and not outcome.ok
        assert asked == []
        assert "cancelled" in gui.window.compose.banner.text.text()
        assert srv.handler.connections == 0 and srv.messages == []
        assert gui.window.target.isEnabled() and not c.sending.sending


def test_a_keyring_error_is_a_sentence_in_the_model(
        secrets: SecretStore, controlled_keyring: ControlledKeyring) -> None:
    profile = Profile("A", "smtp", host="127.0.0.1", port=1, security="none", username="alice")
    controlled_keyring.fail("get", dbus_error())  # the Secret Service died mid-call
    outcome = check_connection(profile, secrets=secrets)
    assert not outcome.ok and "system keyring failed" in outcome.sentence
    sent = send_draft(Draft(to="b@example.com"), profile, secrets=secrets)
    assert not sent.ok and not sent.password_needed
    assert "system keyring failed" in sent.sentence
    # the backend's own refusal (a locked collection, say) is no crash either: the password
    # is asked for, with the keyring's reason
    controlled_keyring.fail("get", keyring.errors.KeyringError("the collection is locked"))
    sent = send_draft(Draft(to="b@example.com"), profile, secrets=secrets)
    assert not sent.ok and sent.password_needed
    assert controlled_keyring.calls.count("get") == 3
