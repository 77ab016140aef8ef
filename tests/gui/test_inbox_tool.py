"""The inbox shows every part and works as a tool (issue 13, points 1 and 2).

Real parts: messages sent by smtplib to the real inbox child process; a second real aiosmtpd
server for Send on; real files. Only the file, profile and limit questions are answered.
"""

from __future__ import annotations

import smtplib

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from mailgui.model.inbox_details import reader_value
from mailgui.views.common import Role
from tests.gui.conftest import add_profile, tree_items
from tests.support.gui import preview_text


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG, made by Qt."""
    from PySide6.QtCore import QBuffer, QIODevice
    from PySide6.QtGui import QColor, QImage

    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("#00aa00"))
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def raw_message(subject: str = "Hello", body: str = "plain words", *, html: str = "",
                extra: bytes = b"") -> bytes:
    head = (f"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            f"Subject: {subject}\r\nMIME-Version: 1.0\r\n").encode() + extra
    if not html:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode() + b"\r\n"
    return head + (
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--b1--\r\n"
    ).encode()


def deliver(port: int, *messages: bytes, rcpt: list[str] | None = None) -> None:
    """Send ``messages`` to the inbox in one SMTP session."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for data in messages:
            client.sendmail("sender@example.test", rcpt or ["bob@example.test"], data)


def select(view, msg_id: str) -> None:  # noqa: ANN001
    for i in range(view.list.topLevelItemCount()):
        if view.list.topLevelItem(i).data(0, Role.INBOX_ID) == msg_id:
            view.list.setCurrentItem(view.list.topLevelItem(i))
            # The detail box may have just appeared: let it lay out its buttons before a
            # click (a button of no size yet ignores a click, as none could reach it).
            QApplication.processEvents()
            return
    raise AssertionError(f"{msg_id} is not listed")


def test_reader_value_unfolds_decodes_and_keeps_a_malformed_word() -> None:
    assert reader_value("\r\n  Folded\r\n subject") == ("Folded subject", "")
    assert reader_value("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=") == ("café au lait", "")
    value, note = reader_value("Hello =?utf-8?b?!!!?= there")
    assert value == "Hello =?utf-8?b?!!!?= there"
    assert "=?utf-8?b?!!!?=" in note


def test_every_view_of_a_message_and_its_envelope(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    data = raw_message("=?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?b?!!!?= news", "the plain words",
                       html="<p>the <b>html</b> words</p>")
    deliver(inbox.port, data, rcpt=["bob@example.test", "hidden@example.test"])
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    gui.window.show_pane(view)
    select(view, inbox.messages[0].id)
    qtbot.waitUntil(lambda: view.headers.topLevelItemCount() > 0, timeout=10000)
    # the summary: envelope (Bcc visible), client, time; the malformed word kept and marked
    summary = view.summary.text()
    assert "MAIL FROM sender@example.test" in summary
    assert "hidden@example.test <i>(Bcc" in summary and "bob@example.test <i>" not in summary
    assert "from 127.0.0.1:" in summary and "<b>Received:</b>" in summary
    assert "Café =?utf-8?b?!!!?= news" in summary and "\u26a0" in summary
    # Headers: as a reader reads them, no leading space; the raw form one click away
    subject = next(i for i in tree_items(view.headers) if "Subject" in i.text(0))
    assert subject.text(1) == "Café =?utf-8?b?!!!?= news"
    assert subject.text(0) == "\u26a0 Subject" and "malformed" in subject.toolTip(1)
    view.raw_headers.setChecked(True)
    subject = next(i for i in tree_items(view.headers) if "Subject" in i.text(0))
    assert subject.text(1) == "=?utf-8?q?Caf=C3=A9?= =?utf-8?b?!!!?= news"
    # the four views of the body
    assert "the html words" in preview_text(qtbot, view.rendered)
    assert view.text.toPlainText().strip() == "the plain words"
    assert view.html_source.toPlainText().strip() == "<p>the <b>html</b> words</p>"
    assert view.body.isTabEnabled(2)
    assert "Content-Type: multipart/alternative" in view.source.toPlainText()
    # Parts: the text/plain part shows its text (it showed nothing before)
    plain = next(i for i in tree_items(view.parts) if i.text(0).startswith("text/plain"))
    view.parts.setCurrentItem(plain)
    qtbot.waitUntil(lambda: view.part_view.currentWidget() is view.part_text, timeout=10000)
    assert view.part_text.toPlainText().strip() == "the plain words"


def test_parts_show_text_and_images_and_say_to_save_the_rest(make_gui, qtbot) -> None:  # noqa: ANN001
    from email.message import EmailMessage

    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "Parts"
    msg.set_content("body text")
    msg.add_attachment(png(), maintype="image", subtype="png", filename="dot.png")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                       filename="blob.bin")
    deliver(inbox.port, msg.as_bytes())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    select(view, inbox.messages[0].id)
    qtbot.waitUntil(lambda: view.parts.topLevelItemCount() == 1, timeout=10000)
    items = tree_items(view.parts)
    view.parts.setCurrentItem(next(i for i in items if i.text(1) == "dot.png"))
    qtbot.waitUntil(lambda: view.part_view.currentWidget() is view.part_image_page,
                    timeout=10000)
    assert view.part_image.pixmap().width() == 2
    view.parts.setCurrentItem(next(i for i in items if i.text(1) == "blob.bin"))
    qtbot.waitUntil(lambda: view.part_view.currentWidget() is view.part_note, timeout=10000)
    assert "Save part" in view.part_note.text()
    assert view.body.tabText(0) == "&Message" and not view.body.isTabEnabled(2)  # no HTML


def test_search_read_state_count_and_the_unread_filter(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    deliver(inbox.port, raw_message("first", "apples"), raw_message("second", "a banana here"),
            raw_message("third", "cherries"))
    qtbot.waitUntil(lambda: len(inbox.messages) == 3, timeout=10000)
    # nothing was being read: the first was shown as it came; the others are unread (during
    # arrivals the count follows within 100 ms)
    qtbot.waitUntil(lambda: gui.window.inbox_badge.count == 2, timeout=2000)
    first, second, third = (m.id for m in inbox.messages)
    assert inbox.selected_id() == first
    # search by body text, then by subject and by address
    with qtbot.waitSignal(inbox.searched, timeout=10000):
        view.search.setText("BANANA")
    assert [view.list.topLevelItem(i).data(0, Role.INBOX_ID)
            for i in range(view.list.topLevelItemCount())] == [second]
    assert view.found.text() == "1 of 3"
    with qtbot.waitSignal(inbox.searched, timeout=10000):
        view.search.setText("third")
    assert view.list.topLevelItemCount() == 1
    with qtbot.waitSignal(inbox.searched, timeout=10000):
        view.search.setText("bob@example")
    assert view.list.topLevelItemCount() == 3
    view.search.clear()
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 3 and not view.found.text())
    # reading marks read; Mark unread undoes it; the filter shows the unread
    select(view, third)
    assert gui.window.inbox_badge.count == 1
    view.unread_only.setChecked(True)
    shown = {view.list.topLevelItem(i).data(0, Role.INBOX_ID)
             for i in range(view.list.topLevelItemCount())}
    assert shown == {second, third}  # the one being read stays until another is chosen
    qtbot.mouseClick(view.mark_unread, Qt.MouseButton.LeftButton)
    assert gui.window.inbox_badge.count == 2
    assert view.list.currentItem().font(0).bold()
    qtbot.waitUntil(lambda: inbox.store.read_ids() == {first}, timeout=10000)  # kept on disk


def test_a_new_arrival_keeps_the_selection_and_the_view(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    deliver(inbox.port, *(raw_message(f"old {n}", f"text {n}") for n in range(80)))
    qtbot.waitUntil(lambda: len(inbox.messages) == 80, timeout=20000)
    gui.window.show_pane(view)
    reading = inbox.messages[5].id
    select(view, reading)
    view.list.scrollToItem(view.list.currentItem())  # scrolled down to an old one
    bar = view.list.verticalScrollBar()
    assert bar.value() > bar.minimum()
    qtbot.waitUntil(lambda: view.text.toPlainText().strip() == "text 5", timeout=10000)
    row_before = view.list.visualItemRect(view.list.currentItem()).top()
    deliver(inbox.port, raw_message("brand new", "news"))
    qtbot.waitUntil(lambda: len(inbox.messages) == 81, timeout=10000)
    assert view.list.topLevelItem(0).text(3) == "brand new"
    assert inbox.selected_id() == reading
    assert view.list.visualItemRect(view.list.currentItem()).top() == row_before
    assert view.text.toPlainText().strip() == "text 5"


def test_retention_keeps_the_newest_500_of_600(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox = gui.controller.inbox
    assert inbox.limits == (500, 1_000_000_000)  # Mailpit's count, 1 GB
    deliver(inbox.port, *(raw_message(f"n{n:03d}", "x" * 200) for n in range(600)))
    qtbot.waitUntil(lambda: len(inbox.messages) == 500, timeout=60000)
    kept = inbox.store.list()
    assert [m.subject for m in kept] == [f"n{n:03d}" for n in range(100, 600)]
    assert [m.subject for m in inbox.messages] == [f"n{n:03d}" for n in range(100, 600)]
    rows = gui.window.inbox.list
    assert rows.topLevelItemCount() == 500
    assert (rows.topLevelItem(0).text(3), rows.topLevelItem(499).text(3)) == ("n599", "n100")
    assert not list(inbox.store.folder.glob("*.eml"))[500:]
    # settable: a lower limit applies at once, and is kept in the settings
    inbox.choose_limits = lambda: (10, 0)
    qtbot.mouseClick(gui.window.inbox.limits, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(inbox.messages) == 10, timeout=20000)
    assert [m.subject for m in inbox.store.list()] == [f"n{n:03d}" for n in range(590, 600)]
    assert gui.controller.settings["inbox_max_messages"] == 10
    # and by size: the oldest go until the rest fit
    size = inbox.messages[-1].size
    inbox.set_limits(0, size * 3)
    qtbot.waitUntil(lambda: len(inbox.messages) == 3, timeout=20000)
    assert [m.subject for m in inbox.messages] == ["n597", "n598", "n599"]


def test_save_copy_and_open_as_new_draft(make_gui, qtbot, tmp_path) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    data = raw_message("Reuse me", "draft body")
    deliver(inbox.port, data)
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    select(view, inbox.messages[0].id)
    target = tmp_path / "kept.eml"
    asked = []
    inbox.choose_eml_path = lambda suggested: asked.append(suggested) or str(target)
    with qtbot.waitSignal(inbox.status, timeout=10000) as said:
        qtbot.mouseClick(view.save_eml, Qt.MouseButton.LeftButton)
    assert asked == ["Reuse me.eml"] and "Saved the message" in said.args[0]
    assert target.read_bytes() == data
    with qtbot.waitSignal(inbox.status, timeout=10000):
        qtbot.mouseClick(view.copy_source, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == data.decode()
    qtbot.mouseClick(view.open_draft, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gui.window.compose.subject.text() == "Reuse me", timeout=10000)
    assert gui.window.compose.body.toPlainText().strip() == "draft body"


def test_send_on_via_a_profile_sends_the_bytes_unchanged(make_gui, qtbot, paths,  # noqa: ANN001
                                                         smtp_server) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Relay", kind="smtp", host="127.0.0.1",
                          port=smtp_server.port, security="none")
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    data = raw_message("Onwards", "same bytes", extra=b"X-Odd:   spaces kept  \r\n")
    deliver(inbox.port, data, rcpt=["bob@example.test", "bcc@example.test"])
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    select(view, inbox.messages[0].id)
    offered = []
    inbox.choose_profile = lambda profiles: offered.extend(p.name for p in profiles) or profile
    with qtbot.waitSignal(inbox.sent_on, timeout=20000) as said:
        qtbot.mouseClick(view.send_on, Qt.MouseButton.LeftButton)
    assert said.args[0].startswith("Sent on via Relay: the server said 250"), said.args[0]
    assert offered == ["Relay"]
    got = smtp_server.handler.wait_for(1)[0]
    assert got.data == data
    assert got.mail_from == "sender@example.test"
    assert got.rcpt_tos == ["bob@example.test", "bcc@example.test"]


def test_an_existing_folder_is_kept_searched_and_trimmed(make_gui, qtbot, paths) -> None:  # noqa: ANN001
    import json

    from mailgui.model.inbox import InboxStore

    old = InboxStore(paths.inbox_dir)
    ids = [old.add("a@example.test", ["b@example.test"],
                   raw_message(f"kept {n}", f"word{n} here"), "127.0.0.1:1").id
           for n in range(5)]
    for msg_id in ids:  # as an older mailgui left them: no details in today's format
        old.details_path(msg_id).write_text('{"format": 1}')
    paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(json.dumps({"inbox_max_messages": 4}))
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 5, timeout=10000)
    assert inbox.limits == (4, 1_000_000_000)
    with qtbot.waitSignal(inbox.searched, timeout=10000):
        view.search.setText("word3")
    assert [view.list.topLevelItem(i).text(3) for i in range(view.list.topLevelItemCount())] \
        == ["kept 3"]
    view.search.clear()
    deliver(inbox.port, raw_message("new one", "fresh"))
    # the first arrival applies the limit to what was there: the two oldest go
    qtbot.waitUntil(lambda: len(inbox.messages) == 4, timeout=10000)
    assert [m.subject for m in inbox.store.list()] == ["kept 2", "kept 3", "kept 4", "new one"]


def test_the_keyboard_and_the_context_menu_reach_the_tools(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    deliver(inbox.port, raw_message("one", "x"))
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    gui.window.show_pane(view)
    view.list.setFocus()
    qtbot.waitUntil(view.list.hasFocus)
    qtbot.keyClick(view.list, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus()
    assert inbox.unread == 0  # shown as it came
    actions = {a.text(): a for a in view.list.actions()}
    assert {"Mark unread", "Save as .eml\u2026", "Copy source", "Open as new draft",
            "Send on via profile\u2026", "Delete"} <= set(actions)
    actions["Mark unread"].trigger()
    assert inbox.unread == 1 and gui.window.inbox_badge.count == 1


def test_send_on_asks_for_a_password_the_keyring_lacks(make_gui, qtbot, paths, secrets,  # noqa: ANN001
                                                        smtp_auth_server) -> None:  # noqa: ANN001
    from tests.support.servers import TEST_PASSWORD, TEST_USER

    profile = add_profile(paths, name="Auth relay", kind="smtp", host="127.0.0.1",
                          port=smtp_auth_server.port, security="none", username=TEST_USER,
                          timeout=10)
    gui = make_gui(secrets)
    inbox, view = gui.controller.inbox, gui.window.inbox
    data = raw_message("Needs a login", "x")
    deliver(inbox.port, data)
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    select(view, inbox.messages[0].id)
    inbox.choose_profile = lambda profiles: profile
    qtbot.mouseClick(view.send_on, Qt.MouseButton.LeftButton)
    # (the keyring is asked on the worker first: on a busy machine that can take a while)
    qtbot.waitUntil(lambda: gui.controller.passwords.prompt is not None, timeout=30000)
    prompt = gui.controller.passwords.prompt
    assert "No password is saved in the keyring for Auth relay." in prompt.reason.text()
    prompt.password.setText(TEST_PASSWORD)
    with qtbot.waitSignal(inbox.sent_on, timeout=20000) as said:
        prompt.accept()
    assert said.args[0].startswith("Sent on via Auth relay: the server said 250"), said.args[0]
    got = smtp_auth_server.wait_for(1)[0]
    assert got.data == data and got.auth_login == TEST_USER


def test_send_on_that_fails_says_why(make_gui, qtbot, paths, refused_port) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Nowhere", kind="smtp", host="127.0.0.1",
                          port=refused_port, security="none", timeout=5)
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    deliver(inbox.port, raw_message("Stays here", "x"))
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    select(view, inbox.messages[0].id)
    inbox.choose_profile = lambda profiles: profile
    with qtbot.waitSignal(inbox.sent_on, timeout=20000) as said:
        qtbot.mouseClick(view.send_on, Qt.MouseButton.LeftButton)
    assert said.args[0].startswith("Could not send the message on via Nowhere: "), said.args[0]
    assert inbox.store.list()  # the message is still in the inbox


def test_the_limits_dialog_reads_and_gives_the_limits(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QWidget

    from mailgui.controllers.inbox import LimitsDialog, inbox_limits

    parent = QWidget()
    qtbot.addWidget(parent)
    dialog = LimitsDialog(parent, 500, 1_000_000_000)
    assert (dialog.count.value(), dialog.megabytes.value()) == (500, 1000)
    dialog.count.setValue(0)
    dialog.megabytes.setValue(250)
    assert dialog.limits() == (0, 250_000_000)
    assert inbox_limits({}) == (500, 1_000_000_000)
    assert inbox_limits({"inbox_max_messages": 0, "inbox_max_bytes": True}) == (0, 1_000_000_000)
