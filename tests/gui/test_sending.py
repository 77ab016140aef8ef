"""Sending from the window: the built-in inbox, SMTP profiles with the real keyring and a
trustme CA, failures as sentences, cancel, the test backends, the Sent log."""

from __future__ import annotations

import email
import email.policy
import json
import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

import mailcore
from mailgui.model.paths import AppPaths
from mailgui.model.secrets import SecretStore
from mailgui.model.sentlog import SentLog
from mailgui.views.profiles import PasswordDialog
from tests.gui.conftest import add_profile
from tests.support.gui import fill, preview_text, send
from tests.support.servers import TEST_PASSWORD, TEST_USER, SMTPServer


def _date_line(data: bytes) -> bytes:
    return re.sub(rb"Date: [^\r\n]+", b"Date: X", data)


def test_send_to_builtin_inbox_and_see_it_listed(make_gui, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    gui = make_gui()
    assert gui.window.target.currentData() == "builtin-inbox"
    att = tmp_path / "data.bin"
    att.write_bytes(bytes(range(256)) * 40)
    fill(gui, html="<p>Hi <b>Bob</b></p>")
    gui.controller.compose.add_attachments([str(att)])
    # the source pane: what the preview shows is what the inbox receives
    gui.window.source.show_all.setChecked(True)
    with qtbot.waitSignal(gui.controller.source.updated, timeout=10000) as shown:
        gui.window.act_source.trigger()
    assert gui.window.side.currentWidget() is gui.window.source
    before_send = shown.args[0].text
    message_id = gui.controller.compose.draft.message_id
    previews = []
    gui.controller.source.updated.connect(previews.append)
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    assert gui.window.side.currentWidget() is gui.window.inbox
    row = gui.window.inbox.list.topLevelItem(0)
    assert row.text(3) == "Hello" and "bob@example.com" in row.text(2)
    received = inbox.store.read(inbox.messages[0].id)
    # Send dated the message and the source pane showed it at once: byte for byte what the
    # server received (the pane shows LF line ends, SMTP carries CRLF).
    qtbot.waitUntil(lambda: any(p.message_id == message_id for p in previews), timeout=10000)
    sent_preview = [p for p in previews if p.message_id == message_id][-1]
    assert sent_preview.text.replace("\n", "\r\n").encode() + b"\r\n" == received
    assert sent_preview.size == len(received) == outcome.size
    assert re.search(rb"^Date: " + re.escape(outcome.date.encode()) + rb"\r$", received, re.M)
    # before Send only the Date differed: same Message-ID, same multipart boundaries
    assert _date_line(before_send.replace("\n", "\r\n").encode() + b"\r\n") == _date_line(
        received)
    assert re.search(rb'boundary="={15}\d{19}=="', received)
    assert email.message_from_bytes(received, policy=email.policy.default)[
        "Message-ID"] == message_id == outcome.message_id
    # the selected message's parts, headers and source are shown
    qtbot.waitUntil(lambda: gui.window.inbox.parts.topLevelItemCount() == 1)
    top = gui.window.inbox.parts.topLevelItem(0)
    assert top.text(0).startswith("multipart/mixed") and top.childCount() == 2
    assert "data.bin" in top.child(1).text(1)
    assert "Hi Bob" in preview_text(qtbot, gui.window.inbox.rendered)
    # above it, what a mail reader shows: who, when, what is attached
    summary = gui.window.inbox.summary.text()
    assert "<b>Subject:</b> Hello" in summary and "bob@example.com" in summary
    assert "<b>Attachments:</b> data.bin (10.2 KB)" in summary
    assert "Subject: Hello" in gui.window.inbox.source.toPlainText()
    # banner, Sent log, transcript
    banner = gui.window.compose.banner
    assert banner.kind == "success" and message_id in banner.detail.text()
    assert banner.detail_button.text() == "Details"
    assert gui.window.sent.list.topLevelItemCount() == 1
    assert "S: 250" in gui.window.transcript.text.toPlainText()
    entry = SentLog(gui.paths.sent_log_file).entries()[0]
    assert entry.result == "sent" and entry.message_id == message_id
    assert entry.date == outcome.date
    assert entry.recipients == ["Bob <bob@example.com>"] or "bob@example.com" in entry.recipients[0]
    # the next send is a new message with a new Message-ID; the draft stays for another try
    assert gui.controller.compose.draft.message_id != message_id
    assert gui.window.compose.subject.text() == "Hello"


def test_smtp_profile_starttls_auth_real_keyring(make_gui, qtbot, starttls_server: SMTPServer,  # noqa: ANN001
                                                 certs, secrets: SecretStore) -> None:  # noqa: ANN001
    gui = make_gui(secrets, start_inbox=False)
    profiles = gui.controller.profiles
    dialog = profiles.open_dialog()
    qtbot.mouseClick(dialog.new, Qt.MouseButton.LeftButton)
    dialog.name.setText("Private relay")
    dialog.host.setText("127.0.0.1")
    dialog.security.setCurrentIndex(dialog.security.findData("starttls"))
    dialog.port.setValue(starttls_server.port)
    qtbot.keyClicks(dialog.username, TEST_USER)
    qtbot.keyClicks(dialog.password, TEST_PASSWORD)
    dialog.ca_file.edit.setText(certs.ca_file)
    dialog.from_email.setText("Alice <alice@example.com>")
    qtbot.mouseClick(dialog.save, Qt.MouseButton.LeftButton)
    profile = gui.controller.profile_store.user_profiles()[0]
    qtbot.waitUntil(lambda: secrets.get(profile.id) == TEST_PASSWORD, timeout=10000)
    # the file is written on the worker's file lane
    qtbot.waitUntil(lambda: certs.ca_file in gui.paths.profiles_file.read_text(), timeout=10000)
    text = gui.paths.profiles_file.read_text()
    assert TEST_PASSWORD not in text and "password" not in text.lower()
    assert json.loads(text)["profiles"][0]["ca_file"] == certs.ca_file
    qtbot.waitUntil(lambda: "saved in the system keyring" in dialog.password_note.text())
    # test connection: STARTTLS + AUTH with the keyring's password, on a worker
    qtbot.mouseClick(dialog.test, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test.text() == "Test connection", timeout=10000)
    assert "encrypted with TLS" in dialog.test_result.text()
    assert "authenticated as alice (PLAIN)" in dialog.test_result.text()
    qtbot.mouseClick(dialog.use, Qt.MouseButton.LeftButton)
    assert gui.window.target.currentText() == "Private relay"
    assert "Alice <alice@example.com>" in gui.window.compose.from_edit.placeholderText()
    fill(gui, subject="Over TLS")
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    received = starttls_server.wait_for(1)[0]
    assert received.session_tls and received.auth_login == TEST_USER
    assert received.mail_from == "alice@example.com"
    transcript = gui.window.transcript.text.toPlainText()
    assert "STARTTLS" in transcript.upper() and TEST_PASSWORD not in transcript
    assert "********" in transcript


def test_failure_is_a_sentence_and_the_draft_survives(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                      starttls_server, certs,  # noqa: ANN001
                                                      secrets: SecretStore) -> None:
    profile = add_profile(paths, name="Relay", kind="smtp", host="127.0.0.1",
                          port=starttls_server.port, security="starttls", username=TEST_USER,
                          ca_file=certs.ca_file, timeout=10)
    secrets.set(profile.id, "not the password")
    gui = make_gui(secrets, start_inbox=False)
    assert gui.controller.target.select(profile.id)
    fill(gui, subject="Will fail", body="keep me")
    outcome = send(gui, qtbot)
    assert not outcome.ok
    banner = gui.window.compose.banner
    assert banner.kind == "error"
    assert "refused the user name or password for alice" in banner.text.text()
    assert banner.detail.text().startswith("535")
    assert gui.window.side.currentWidget() is gui.window.transcript
    draft = gui.controller.compose.draft
    assert (draft.subject, draft.body) == ("Will fail", "keep me")
    assert gui.window.compose.subject.text() == "Will fail"
    assert SentLog(paths.sent_log_file).entries()[-1].result == "failed"
    # an untrusted certificate is its own sentence
    gui.controller.profile_store.upsert(
        type(profile)(**{**profile.to_dict(), "ca_file": certs.untrusted.ca_file}))
    gui.controller.target.fill_combo()
    outcome = send(gui, qtbot)
    assert "is not trusted" in outcome.sentence and "CA file" in outcome.sentence


def test_cancel_a_big_send_while_typing(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                        tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(100 * 1024 * 1024)  # 100 MB (sparse, but read for real)
    with SMTPServer("plain", data_size_limit=None) as server:
        profile = add_profile(paths, name="Slow sink", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", timeout=30)
        gui = make_gui(start_inbox=False)
        gui.controller.target.select(profile.id)
        fill(gui, subject="Big")
        gui.controller.compose.add_attachments([str(big)])
        sending = gui.controller.sending
        progressed = []
        gui.window.act_send.trigger()
        job = sending.job
        assert job is not None
        job.signals.progress.connect(lambda ph, d, t: progressed.append(d))
        qtbot.waitUntil(lambda: any(progressed), timeout=10000)
        # the window stays responsive: typing works while the send runs
        assert sending.sending
        qtbot.keyClicks(gui.window.compose.subject, " draft")
        assert gui.controller.compose.draft.subject == "Big draft"
        assert gui.window.progress.isVisible() and gui.window.cancel.isVisible()
        with qtbot.waitSignal(sending.finished, timeout=10000) as blocker:
            qtbot.mouseClick(gui.window.cancel, Qt.MouseButton.LeftButton)
        outcome = blocker.args[0]
        assert outcome.cancelled and not outcome.ok
        assert "cancelled" in gui.window.compose.banner.text.text()
        assert not sending.sending and not gui.window.cancel.isVisible()
        assert server.messages == []
        assert [a.path for a in gui.controller.compose.draft.attachments] == [str(big)]


def test_no_keyring_asks_for_the_password(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                          smtp_auth_server: SMTPServer, failing_keyring,  # noqa: ANN001
                                          monkeypatch) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Auth", kind="smtp", host="127.0.0.1",
                          port=smtp_auth_server.port, security="none", username=TEST_USER,
                          timeout=10)
    asked = []

    def request(parent, name, reason, answered):  # noqa: ANN001, ANN202
        asked.append((name, reason))
        answered((TEST_PASSWORD, True))

    monkeypatch.setattr(PasswordDialog, "request", request)
    gui = make_gui(failing_keyring, start_inbox=False)
    assert gui.controller.passwords.broker.keyring_usable is False
    assert "No secure system keyring" in gui.window.statusBar().currentMessage()
    gui.controller.target.select(profile.id)
    dialog = gui.controller.profiles.open_dialog()
    assert "No secure system keyring is available" in dialog.keyring_status.text()
    assert not dialog.password.isEnabled()
    dialog.close()
    fill(gui, subject="No keyring")
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    assert asked and asked[0][0] == "Auth" and "keyring" in asked[0][1]
    assert smtp_auth_server.wait_for(1)[0].auth_login == TEST_USER
    # remembered for the session only: the second send does not ask, nothing on disk
    assert send(gui, qtbot).ok
    assert len(asked) == 1
    for path in paths.config_dir.rglob("*"):
        if path.is_file():
            assert TEST_PASSWORD not in path.read_text()


def test_a_refused_remembered_password_is_asked_for_again(make_gui, qtbot,  # noqa: ANN001
                                                           paths: AppPaths,
                                                           smtp_auth_server: SMTPServer,
                                                           failing_keyring,  # noqa: ANN001
                                                           monkeypatch) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Auth", kind="smtp", host="127.0.0.1",
                          port=smtp_auth_server.port, security="none", username=TEST_USER,
                          timeout=10)
    answers = [("typo", True), (TEST_PASSWORD, True)]
    asked = []

    def request(parent, name, reason, answered):  # noqa: ANN001, ANN202
        asked.append(reason)
        answered(answers.pop(0))

    monkeypatch.setattr(PasswordDialog, "request", request)
    gui = make_gui(failing_keyring, start_inbox=False)
    gui.controller.target.select(profile.id)
    fill(gui, subject="Wrong first")
    first = send(gui, qtbot)
    assert not first.ok and first.error.kind == "auth"
    banner = gui.window.compose.banner.text.text()
    assert "asks for the password again" in banner and "Check them in the profile" not in banner
    assert profile.id not in gui.controller.passwords.broker.session_passwords
    assert gui.controller.compose.draft.subject == "Wrong first"  # the draft is kept
    second = send(gui, qtbot)
    assert second.ok, second.sentence
    assert len(asked) == 2 and asked[1].startswith("The server refused the last password")
    assert smtp_auth_server.wait_for(1)[0].auth_login == TEST_USER


@pytest.mark.parametrize("kind", ["console", "file", "memory", "dummy"])
def test_backend_switch(make_gui, qtbot, kind: str, capsys) -> None:  # noqa: ANN001
    mailcore.outbox.clear()
    gui = make_gui(start_inbox=False)
    w = gui.window
    index = w.target.findData(f"builtin-{kind}")
    assert index >= 0
    w.target.setCurrentIndex(index)
    assert w.act_open_folder.isVisible() == (kind == "file")
    fill(gui, subject=f"Via {kind}")
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    if kind == "console":
        assert "Subject: Via console" in w.console.text.toPlainText()
        assert w.side.currentWidget() is w.console
        assert "Subject: Via console" in capsys.readouterr().out
    elif kind == "file":
        written = Path(outcome.written_file)
        assert written.parent == gui.paths.file_backend_dir
        assert "Subject: Via file" in written.read_text()
        assert w.compose.banner.action.text() == "Open folder"
    elif kind == "memory":
        assert w.memory.list.topLevelItemCount() == 1
        assert mailcore.outbox[-1].subject == "Via memory"
        qtbot.waitUntil(lambda: "Subject: Via memory" in w.memory.source.toPlainText())
    else:
        assert "dummy" in w.compose.banner.text.text()
    assert w.sent.list.topLevelItem(0).text(4) == "sent"


def test_show_all_says_when_a_message_is_too_big_to_show(make_gui, qtbot,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    from mailgui.controllers.source import SHOW_ALL_LIMIT

    gui = make_gui(start_inbox=False)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x00" * (SHOW_ALL_LIMIT + 1024))
    fill(gui, subject="Big")
    gui.controller.compose.add_attachments([str(big)])
    source, pane = gui.controller.source, gui.window.source
    with qtbot.waitSignal(source.updated, timeout=10000):
        gui.window.act_source.trigger()
    with qtbot.waitSignal(source.updated, timeout=10000) as shown:
        pane.show_all.setChecked(True)
    assert "folded (about 8,3" in shown.args[0].text  # still folded
    assert not pane.show_all.isChecked()  # the box says what the pane shows: folded
    assert "too big to show in full" in pane.show_all.toolTip()


def test_the_password_prompt_opens_without_a_nested_event_loop(make_gui, qtbot,  # noqa: ANN001
                                                                paths: AppPaths,
                                                                smtp_auth_server: SMTPServer,
                                                                failing_keyring) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Auth", kind="smtp", host="127.0.0.1",
                          port=smtp_auth_server.port, security="none", username=TEST_USER,
                          timeout=10)
    gui = make_gui(failing_keyring, start_inbox=False)
    c = gui.controller
    c.target.select(profile.id)
    fill(gui, subject="Asked first")
    # Send returns at once with the (real) prompt open; nothing is sent until it is answered
    assert c.sending.send() is None
    prompt = c.passwords.prompt
    assert prompt is not None and prompt.isVisible() and prompt.isModal()
    assert "No secure system keyring" in prompt.reason.text()
    assert c.sending.sending and c.sending.send() is None  # a second Send waits for it
    assert smtp_auth_server.handler.connections == 0
    qtbot.keyClicks(prompt.password, TEST_PASSWORD)
    with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
        qtbot.mouseClick(prompt.buttons.button(QDialogButtonBox.StandardButton.Ok),
                         Qt.MouseButton.LeftButton)
    assert done.args[0].ok, done.args[0].sentence
    assert c.passwords.prompt is None and not c.sending.sending
    assert smtp_auth_server.wait_for(1)[0].auth_login == TEST_USER
    # not remembered: the next Send asks again; Cancel there sends nothing
    assert c.sending.send() is None
    c.passwords.prompt.reject()
    assert gui.window.banner.text.text() == "Not sent: no password was given."
    assert not c.sending.sending and len(smtp_auth_server.messages) == 1


def test_a_password_missing_from_the_keyring_is_asked_after_the_job(make_gui, qtbot,  # noqa: ANN001
                                                                     paths: AppPaths,
                                                                     smtp_auth_server: SMTPServer,
                                                                     secrets: SecretStore) -> None:
    profile = add_profile(paths, name="Auth", kind="smtp", host="127.0.0.1",
                          port=smtp_auth_server.port, security="none", username=TEST_USER,
                          timeout=10)
    gui = make_gui(secrets, start_inbox=False)  # a keyring, with no password for it
    c, w = gui.controller, gui.window
    c.target.select(profile.id)
    fill(gui, subject="Asked after")
    assert c.sending.send() is not None
    # the job's outcome asks; its handler has returned, and the window waits for the answer
    qtbot.waitUntil(lambda: c.passwords.prompt is not None, timeout=10000)
    prompt = c.passwords.prompt
    assert "No password is saved in the keyring for Auth." in prompt.reason.text()
    assert c.sending.sending and c.sending.job is None
    assert w.progress.format() == "Waiting for the password\u2026"
    assert not w.cancel.isEnabled() and not w.target.isEnabled()
    prompt.password.setText(TEST_PASSWORD)
    with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
        prompt.accept()
    assert done.args[0].ok, done.args[0].sentence
    assert w.target.isEnabled() and not w.progress.isVisible()
    assert smtp_auth_server.wait_for(1)[0].auth_login == TEST_USER
