"""The composer's defects of issue 13, one test each (each failed before its fix): real
windows, real files, real servers; only the question dialogs are answered through their
seams."""

from __future__ import annotations

import stat
from pathlib import Path

from mailgui.model.source import human_size
from tests.support.gui import fill, send


def _eml_with_attachment(tmp_path: Path) -> Path:
    path = tmp_path / "with-file.eml"
    path.write_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: files\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--XX\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=secret.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--XX--\r\n")
    return path


def test_sizes_are_1000_based_as_labelled() -> None:
    assert human_size(999) == "999 bytes"
    assert human_size(1000) == "1.0 KB"
    assert human_size(1_500_000) == "1.5 MB"
    assert human_size(1024 * 1024) == "1.0 MB"  # 1,048,576 bytes are 1.05 MB, not "1.0 MiB"
    assert human_size(250 * 1000 ** 3) == "250.0 GB"


def test_a_new_message_opens_on_the_text_tab(make_gui, qtbot, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    fill(gui, html="<p>Hi</p>")
    view.tabs.setCurrentWidget(view.html_page)
    monkeypatch.setattr(gui.controller, "confirm_discard", lambda: True)
    gui.window.act_new.trigger()
    assert view.tabs.currentWidget() is view.text_page
    assert gui.controller.compose.draft.html == ""


def test_eml_attachment_copies_are_private_and_go_with_the_draft(  # noqa: ANN001
        make_gui, qtbot, tmp_path: Path, monkeypatch) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    c.open_eml(str(_eml_with_attachment(tmp_path)))
    qtbot.waitUntil(lambda: len(c.compose.draft.attachments) == 1, timeout=10000)
    copy = Path(c.compose.draft.attachments[0].path)
    assert copy.read_bytes() == b"\x00\x01\x02\x03"
    # as private as the draft itself (0600), in a folder only its owner can open
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    monkeypatch.setattr(c, "confirm_discard", lambda: True)
    gui.window.act_new.trigger()  # the draft is discarded: its copies with it
    qtbot.waitUntil(lambda: not copy.parent.exists(), timeout=10000)
    assert not c.compose.draft.attachments


def test_eml_copies_of_a_replaced_draft_are_removed_but_a_kept_ones_stay(  # noqa: ANN001
        make_gui, qtbot, tmp_path: Path, monkeypatch) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    c.open_eml(str(_eml_with_attachment(tmp_path)))
    qtbot.waitUntil(lambda: len(c.compose.draft.attachments) == 1, timeout=10000)
    first = Path(c.compose.draft.attachments[0].path)
    monkeypatch.setattr(c, "confirm_replace", lambda name: True)
    c.open_eml(str(_eml_with_attachment(tmp_path)))  # replaces it (the person said yes)
    qtbot.waitUntil(lambda: c.compose.draft.attachments
                    and Path(c.compose.draft.attachments[0].path) != first, timeout=10000)
    second = Path(c.compose.draft.attachments[0].path)
    qtbot.waitUntil(lambda: not first.parent.exists(), timeout=10000)
    # at start, the recovered draft is kept in a file: its copies stay for it
    c.open_eml(str(_eml_with_attachment(tmp_path)), at_start=True)
    qtbot.waitUntil(lambda: c.compose.draft.attachments
                    and Path(c.compose.draft.attachments[0].path) != second, timeout=10000)
    qtbot.waitUntil(lambda: c.runner.busy == 0, timeout=10000)
    assert second.exists()


def test_a_long_error_under_a_field_wraps_and_never_widens_the_pane(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    gui.window.resize(1280, 800)
    view = gui.window.compose
    qtbot.waitUntil(lambda: view.width() > 0)
    qtbot.wait(50)
    before = view.width()
    long_word = "x" * 300 + "@" + "very-long-domain-" * 12 + "example"
    view.address_edits["to"].setText(f"{long_word}, <{long_word}")
    label = view.address_errors["to"]
    qtbot.waitUntil(label.isVisible)
    qtbot.wait(50)
    assert view.width() == before  # the pane kept its width
    # the sentence is all there, wrapped onto lines that fit the field's column
    assert long_word in label.text().replace("\u200b", "")
    assert label.minimumSizeHint().width() <= view.address_edits["to"].width()
    assert label.height() > 2 * label.fontMetrics().height()
    assert label.geometry().right() <= view.width()


def _rows(gui) -> list[list[str]]:  # noqa: ANN001
    tree = gui.window.compose.attachments
    return [[tree.topLevelItem(i).text(c) for c in range(4)]
            for i in range(tree.topLevelItemCount())]


def test_a_send_that_fails_on_a_deleted_attachment_rechecks_it_and_its_banner_goes(  # noqa: ANN001
        make_gui, qtbot, tmp_path: Path) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    assert c.target.select("builtin-console")
    fill(gui)
    report = tmp_path / "report.txt"
    report.write_text("figures\n")
    c.compose.add_attachments([str(report)])
    qtbot.waitUntil(lambda: _rows(gui)[0][3].startswith("ok"), timeout=10000)
    report.unlink()  # deleted behind the window's back
    outcome = send(gui, qtbot)
    assert not outcome.ok and "report.txt" in outcome.sentence
    banner = gui.window.banner
    assert banner.isVisible()
    # the list says so now, not "ok"
    qtbot.waitUntil(lambda: not _rows(gui)[0][3].startswith(("ok", "checking")),
                    timeout=10000)
    # the file is removed from the message: the banner about it goes
    gui.window.compose.attachments.setCurrentItem(
        gui.window.compose.attachments.topLevelItem(0))
    c.compose.remove_selected_attachments()
    assert not banner.isVisible()


def test_a_banner_about_a_send_via_goes_when_send_via_changes(  # noqa: ANN001
        make_gui, qtbot, paths) -> None:
    from tests.gui.conftest import add_profile
    from tests.support.servers import free_port

    profile = add_profile(paths, name="Nobody there", kind="smtp", host="127.0.0.1",
                          port=free_port(), security="none", timeout=5)
    gui = make_gui(start_inbox=False)
    c = gui.controller
    assert c.target.select(profile.id)
    fill(gui)
    outcome = send(gui, qtbot)
    assert not outcome.ok
    banner = gui.window.banner
    assert banner.isVisible()
    fill(gui, subject="Edited meanwhile")  # an edit is no reason for it to go
    assert banner.isVisible()
    assert c.target.select("builtin-console")
    assert not banner.isVisible()


def test_the_toolbar_fits_at_1280_px_whatever_send_via_shows(make_gui, qtbot, paths) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QToolButton

    from tests.gui.conftest import add_profile

    long = add_profile(paths, name="Company relay (production, EU) for notifications",
                       kind="smtp", host="smtp-relay.eu-west.corp-mail.example.com", port=587,
                       security="starttls", username="release-notifications@example.com")
    gui = make_gui(start_inbox=False)
    w = gui.window
    w.resize(1280, 800)
    extension = w.toolbar.findChild(QToolButton, "qt_toolbar_ext_button")
    for target in ("builtin-console", "builtin-file", "builtin-memory", long.id):
        assert gui.controller.target.select(target)
        qtbot.waitUntil(lambda: w.toolbar.width() <= 1280)
        qtbot.wait(20)
        assert extension is None or not extension.isVisible(), target
        for act in (w.act_send, w.act_profiles, w.act_source, w.act_inbox):
            button = w.toolbar.widgetForAction(act)
            assert button.isVisible(), (target, act.text())
            assert button.geometry().right() <= w.toolbar.width(), (target, act.text())
    # the whole detail is there for whoever hovers it
    assert "release-notifications@example.com" in w.target_detail.toolTip()


def test_the_inbox_button_shows_the_inbox_and_ctrl_i_puts_the_keyboard_in_its_list(  # noqa: ANN001
        make_gui, qtbot) -> None:
    from PySide6.QtCore import Qt

    gui = make_gui()
    w = gui.window
    assert w.act_inbox.text().replace("&", "") == "Show inbox"
    qtbot.keyClick(w, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(w.inbox.search.hasFocus)  # no message yet: the list is not shown
    fill(gui)
    assert send(gui, qtbot).ok
    qtbot.waitUntil(lambda: w.inbox.list.topLevelItemCount() == 1, timeout=10000)
    w.show_pane(w.source)
    w.compose.subject.setFocus()
    qtbot.waitUntil(w.compose.subject.hasFocus)
    qtbot.keyClick(w, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert w.side.currentWidget() is w.inbox
    qtbot.waitUntil(w.inbox.list.hasFocus)


def test_the_layout_does_not_jump_while_sending(  # noqa: ANN001
        make_gui, qtbot, paths, secrets, controlled_keyring) -> None:
    from tests.gui.conftest import add_profile
    from tests.support.servers import SMTPServer

    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        profile = add_profile(paths, name="Slow keyring", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", username="alice")
        gui = make_gui(secrets, start_inbox=False)
        w, c = gui.window, gui.controller
        w.resize(1280, 800)
        secrets.set(profile.id, "pw")
        assert c.target.select(profile.id)
        fill(gui)
        # the outcome of a send before, in the banner
        w.banner.show_message("error", "Not sent: the server at smtp.example.com:587 closed "
                              "the connection before it answered (an earlier try).")
        qtbot.wait(50)
        body = w.compose.body.mapTo(w, w.compose.body.rect().topLeft())
        before = (w.split.geometry(), w.toolbar.geometry(), w.statusBar().geometry(), body)
        gate = controlled_keyring.hold("get")
        try:
            assert c.sending.send() is not None
            qtbot.waitUntil(lambda: "get" in controlled_keyring.calls, timeout=10000)
            qtbot.waitUntil(w.cancel.isVisible)
            qtbot.wait(50)
            body = w.compose.body.mapTo(w, w.compose.body.rect().topLeft())
            during = (w.split.geometry(), w.toolbar.geometry(), w.statusBar().geometry(), body)
            # nothing moved: the banner keeps its place (it says the message is going out),
            # the progress bar and Cancel fit the status bar
            assert during == before
            assert w.banner.isVisible() and "Sending via Slow keyring" in w.banner.text.text()
        finally:
            gate.set()
        qtbot.waitUntil(lambda: not c.sending.sending, timeout=15000)
        qtbot.waitUntil(lambda: not w.cancel.isVisible())
        qtbot.wait(50)
        assert w.banner.isVisible()  # the outcome, where the banner was
        assert (w.split.geometry(), w.toolbar.geometry(), w.statusBar().geometry()) == before[:3]


def test_a_login_that_timed_out_says_what_its_last_line_was(  # noqa: ANN001
        make_gui, qtbot, paths, secrets) -> None:
    from tests.gui.conftest import add_profile
    from tests.support.servers import HostileServer

    with HostileServer("AUTH", "silent", auth=True) as server:
        profile = add_profile(paths, name="Mute at login", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", username="alice", timeout=1)
        gui = make_gui(secrets, start_inbox=False)
        c, w = gui.controller, gui.window
        secrets.set(profile.id, "pw")
        assert c.target.select(profile.id)
        fill(gui)
        outcome = send(gui, qtbot)
        assert not outcome.ok and outcome.error.kind == "timeout"
        shown = w.transcript.text.toPlainText().splitlines()
        sent_line = next(i for i, line in enumerate(shown) if line.startswith("C: AUTH"))
        assert "********" in shown[sent_line]
        # after it, a line says what that was and that the server never answered it
        after = "\n".join(shown[sent_line + 1:])
        assert "login" in after and "hidden" in after and "no answer" in after
        assert outcome.transcript[-1].startswith("* ") and "no answer" in outcome.transcript[-1]


def test_the_attachment_list_says_when_line_ends_change_on_the_wire(  # noqa: ANN001
        make_gui, qtbot, tmp_path: Path) -> None:
    import email
    import email.policy

    from mailcore.wire import serialize
    from mailgui.model.message import build_message

    gui = make_gui(start_inbox=False)
    c = gui.controller
    fill(gui)
    unix = tmp_path / "notes.txt"
    unix.write_bytes(b"line one\nline two\n")
    windows = tmp_path / "dos.txt"
    windows.write_bytes(b"line one\r\nline two\r\n")
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"a\nb\n")
    c.compose.add_attachments([str(unix), str(windows), str(binary)])
    qtbot.waitUntil(lambda: _rows(gui)[0][3] == "ok, line ends become CRLF", timeout=10000)
    assert [r[3] for r in _rows(gui)] == ["ok, line ends become CRLF", "ok", "ok"]
    tip = gui.window.compose.attachments.topLevelItem(0).toolTip(3)
    assert "2 line ends" in tip and "2 bytes larger" in tip
    assert "LF line ends become CRLF" in gui.window.compose.attachments_hint.text()
    # and so it is: the file arrives 2 bytes larger, with CRLF
    raw = serialize(build_message(c.compose.draft), linesep="\r\n").getvalue()
    parts = list(email.message_from_bytes(raw, policy=email.policy.default).iter_attachments())
    assert parts[0].get_payload(decode=True) == b"line one\r\nline two\r\n"
    assert parts[2].get_payload(decode=True) == b"a\nb\n"
