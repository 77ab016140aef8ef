"""The profile editor's connection test and password field: Test retries the profile it
tested, closing or cancelling asks nothing, a refused password is asked again, a keyring that
fails or answers late (at start) never loses a typed password.

Real parts: aiosmtpd servers, the real system keyring behind ``ControlledKeyring`` (a
``keyring`` backend the test makes slow or broken), keyring's own ``fail`` backend. Only the
password dialog is answered.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from mailgui import jobs
from mailgui.app import MailGui
from mailgui.model.paths import AppPaths
from mailgui.model.secrets import SecretStore
from tests.gui.conftest import add_profile
from tests.support.gui import answer_password_dialog
from tests.support.keyrings import ControlledKeyring, dbus_error
from tests.support.servers import SMTPServer


def test_test_connection_retries_the_profile_it_tested(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv_a, \
            SMTPServer("plain", auth={"alice": "pw"}) as srv_b:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv_a.port,
                        security="none", username="alice")
        gate = controlled_keyring.hold("get")
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        asked: list = []
        answer_password_dialog(monkeypatch, "pw", asked)
        d = p.open_dialog()
        p._fill_list(a.id)
        try:
            assert p.test_connection() is not None
            d.port.setValue(srv_b.port)  # the form is edited while the keyring is asked
            gate.set()
            qtbot.waitUntil(lambda: d.test_result.text().startswith("\u2714"), timeout=15000)
        finally:
            gate.set()
        assert asked == ["A work"]
        assert f"Connected to 127.0.0.1:{srv_a.port}" in d.test_result.text()
        assert srv_a.handler.login_attempts == [("PLAIN", "alice", True)]
        assert srv_b.handler.connections == 0


def test_closing_the_editor_during_a_test_asks_nothing(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv.port,
                        security="none", username="alice")
        gate = controlled_keyring.hold("get")
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        asked: list = []
        answer_password_dialog(monkeypatch, "pw", asked)
        d = p.open_dialog()
        p._fill_list(a.id)
        try:
            job = p.test_connection()
            assert job is not None
            with qtbot.waitSignal(job.signals.done, timeout=15000):
                d.reject()  # Close
                gate.set()
        finally:
            gate.set()
        qtbot.waitUntil(lambda: d.test.text() == "Test connection")
        assert d.test_result.text() == "Not tested: cancelled."
        assert asked == [] and srv.handler.connections == 0


def test_a_connection_test_that_hangs_can_be_cancelled(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                        silent_server) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Mute", kind="smtp", host="127.0.0.1",
                          port=silent_server.port, security="none", timeout=120)
    gui = make_gui(start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    qtbot.mouseClick(d.test, Qt.MouseButton.LeftButton)
    assert d.test.text() == "Cancel test" and d.test.isEnabled()
    assert d.test_result.text().startswith("Connecting to 127.0.0.1:")
    qtbot.waitUntil(lambda: silent_server.connections >= 1, timeout=5000)
    qtbot.mouseClick(d.test, Qt.MouseButton.LeftButton)  # the server would keep us 120 s
    qtbot.waitUntil(lambda: d.test_result.text() == "Not tested: cancelled.", timeout=5000)
    assert d.test.text() == "Test connection" and d.test.isEnabled()


def test_a_refused_password_in_a_connection_test_is_asked_again(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, failing_keyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "right"}) as server:
        profile = add_profile(paths, name="A", kind="smtp", host="127.0.0.1", port=server.port,
                              security="none", username="alice")
        answers = [("typo", True), ("right", True)]  # "Remember until mailgui quits" ticked
        monkeypatch.setattr("mailgui.views.profiles.PasswordDialog.request",
                            lambda parent, name, reason, answered: answered(answers.pop(0)))
        gui = make_gui(failing_keyring, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(profile.id)
        for expected in ("\u2716", "\u2714"):
            assert p.test_connection() is not None
            qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
            assert d.test_result.text().startswith(expected), d.test_result.text()
            if expected == "\u2716":
                assert "asks for the password again" in d.test_result.text()
                assert profile.id not in p.broker.session_passwords
        assert answers == []  # asked twice: the refused password was not used again
        assert [(u, ok) for _m, u, ok in server.handler.login_attempts] == [
            ("alice", False), ("alice", True)]


def test_test_connection_recovers_from_a_keyring_error(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        a = add_profile(paths, name="A", kind="smtp", host="127.0.0.1", port=server.port,
                        security="none", username="alice")
        controlled_keyring.fail("get", dbus_error())  # the Secret Service died mid-call
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(a.id)
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        assert d.test_result.text().startswith("\u2716 The system keyring failed")
        assert server.handler.connections == 0
        # Test works again (with a typed password it needs no keyring)
        d.password.setText("pw")
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test_result.text().startswith("\u2714"), timeout=10000)
        # and a job that crashes outright does not leave the button off either
        monkeypatch.setattr(jobs.TestConnectionJob, "_test",
                            lambda self, *a: (_ for _ in ()).throw(RuntimeError("boom")))
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        assert d.test_result.text() == "\u2716 Unexpected error: RuntimeError: boom"


def test_no_password_typed_before_the_keyring_is_known(  # noqa: ANN001
        qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring) -> None:
    gate = controlled_keyring.hold("status")  # the probe at start waits for the keyring
    gui = MailGui(paths, secrets=secrets, start_inbox=False)
    qtbot.addWidget(gui.window)
    try:
        p = gui.controller.profiles
        d = p.open_dialog()
        p.new_profile()
        d.host.setText("smtp.example.com")
        d.username.setText("alice")
        assert p.broker.keyring_status is None
        assert not d.password.isEnabled()
        assert d.password.placeholderText() == "checking the keyring\u2026"
        d.password.setText("hunter2")  # (a script or an old state could still fill it)
        profile = p.save_profile()
        assert "as soon as the keyring check is done" in d.password_note.text()
        assert profile.id not in p.broker.session_passwords
        gate.set()
        qtbot.waitUntil(lambda: p.broker.keyring_status is not None, timeout=10000)
        assert d.password.isEnabled() and d.password.placeholderText() == ""
        qtbot.waitUntil(lambda: "saved in the system keyring" in d.password_note.text(),
                        timeout=10000)
        assert secrets.get(profile.id) == "hunter2"
        assert profile.id not in p.broker.session_passwords
    finally:
        gate.set()
        gui.shutdown()
        assert gui.finish(15)


def test_the_unsaved_prompt_defaults_to_discard_after_the_server_refused_the_password(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        a = add_profile(paths, name="A", kind="smtp", host="127.0.0.1", port=server.port,
                        security="none", username="alice")
        add_profile(paths, name="B", kind="console")
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(a.id)
        defaults: list[str] = []

        def ask(name: str, default: str) -> str:
            defaults.append(default)
            return "cancel"

        monkeypatch.setattr(p, "ask_unsaved", ask)
        d.password.setText("typo")
        row = d.list.currentRow()
        d.list.setCurrentRow(1 - row)  # typed, not tested: Save is the default
        assert defaults == ["save"] and d.list.currentRow() == row
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        assert d.test_result.text().startswith("\u2716")  # the server said no
        d.list.setCurrentRow(1 - row)  # that password was refused: Discard is the default
        assert defaults == ["save", "discard"]
        d.password.setText("pw")  # another one: Save again
        d.list.setCurrentRow(1 - row)
        assert defaults == ["save", "discard", "save"]


def test_a_connection_test_whose_login_timed_out_says_what_its_last_line_was(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore) -> None:
    from tests.support.servers import HostileServer

    with HostileServer("AUTH", "silent", auth=True) as server:
        a = add_profile(paths, name="Mute", kind="smtp", host="127.0.0.1", port=server.port,
                        security="none", username="alice", timeout=1)
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(a.id)
        d.password.setText("pw")
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        lines = d.test_transcript.toPlainText().splitlines()
        assert lines[-2].startswith("C: AUTH") and "********" in lines[-2]
        assert lines[-1].startswith("* no answer to the last line sent, the login")
        assert "hidden" in lines[-1] and "timeout" in lines[-1]
