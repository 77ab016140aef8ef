"""The inbox pane: delete and clear, save a part; a delete or a save that fails says so, and
the list then shows what the folder really holds (what a restart would show).

Real parts: the real inbox child process, real sends to it, real files. A delete is made to
fail the way a file system makes it fail, whoever runs the tests (root included): a folder
stands where the message's file is. Only the question and file dialogs are answered.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from mailgui.controllers.inbox import InboxController
from tests.gui.conftest import add_profile, tree_items
from tests.support.gui import fill, send


def test_inbox_delete_and_clear(make_gui, qtbot, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui()
    for subject in ("one", "two"):
        fill(gui, subject=subject)
        assert send(gui, qtbot).ok
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 2)
    # the tab counts the unread: the first was shown as it came (nothing else was being read);
    # during a burst the count follows within 100 ms
    qtbot.waitUntil(lambda: gui.window.inbox_badge.count == 1, timeout=2000)
    tabs = gui.window.side.tabBar()
    assert gui.window.inbox_badge.text() == "1" and tabs.tabText(0) == "Inbox"
    assert tabs.accessibleTabName(0) == "Inbox, 1 unread"  # what a screen reader says
    assert tabs.tabToolTip(0) == "1 unread message"
    qtbot.waitUntil(lambda: tabs.tabRect(0).contains(gui.window.inbox_badge.geometry()))
    assert not tabs.tabRect(1).intersects(gui.window.inbox_badge.geometry())  # room was made
    view = gui.window.inbox
    view.list.setCurrentItem(view.list.topLevelItem(0))
    qtbot.mouseClick(view.delete, Qt.MouseButton.LeftButton)
    assert [m.subject for m in inbox.messages] == ["one"]
    qtbot.waitUntil(lambda: len(inbox.store.list()) == 1)
    monkeypatch.setattr(InboxController, "confirm_clear", lambda self: True)
    qtbot.mouseClick(view.clear, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: inbox.store.list() == [])
    assert view.stack.currentWidget() is view.hint
    assert QMessageBox  # the real question box is patched above, never shown


def test_inbox_saves_an_attachment_part(make_gui, qtbot, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui()
    att = tmp_path / "report.bin"
    att.write_bytes(os.urandom(3000))
    fill(gui, subject="With a file")
    gui.controller.compose.add_attachments([str(att)])
    assert send(gui, qtbot).ok
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    view = gui.window.inbox
    view.list.setCurrentItem(view.list.topLevelItem(0))
    qtbot.waitUntil(lambda: view.parts.topLevelItemCount() == 1)
    items = tree_items(view.parts)
    container = next(i for i in items if i.text(0).startswith("multipart/"))
    view.parts.setCurrentItem(container)
    assert not view.save_part.isEnabled()  # a container has nothing to save
    part = next(i for i in items if i.text(1) == "report.bin")
    view.parts.setCurrentItem(part)
    assert view.save_part.isEnabled()
    target = tmp_path / "saved" / "copy.bin"
    asked = []
    monkeypatch.setattr(type(inbox), "choose_part_path",
                        lambda self, suggested: asked.append(suggested) or str(target))
    with qtbot.waitSignal(inbox.status, timeout=10000) as said:
        qtbot.mouseClick(view.save_part, Qt.MouseButton.LeftButton)
    assert asked == ["report.bin"]
    assert "Saved" in said.args[0]
    assert target.read_bytes() == att.read_bytes()


def _stuck(path: Path) -> None:
    """Make ``path`` impossible to remove or replace: a folder (not empty) stands there."""
    path.unlink(missing_ok=True)
    (path / "in the way").mkdir(parents=True)


def test_a_delete_that_fails_says_so_and_the_list_shows_the_truth(  # noqa: ANN001
        make_gui, qtbot, monkeypatch) -> None:
    gui = make_gui()
    for subject in ("one", "two", "three"):
        fill(gui, subject=subject)
        assert send(gui, qtbot).ok
    inbox, view = gui.controller.inbox, gui.window.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 3)
    view.list.setCurrentItem(view.list.topLevelItem(0))  # the newest: "three"
    stuck_id = inbox.selected_id()
    _stuck(inbox.store.path(stuck_id))
    with qtbot.waitSignal(inbox.status, timeout=10000) as said:
        qtbot.mouseClick(view.delete, Qt.MouseButton.LeftButton)
    assert said.args[0].startswith("Could not delete the message: is a directory (")
    assert str(inbox.store.path(stuck_id)) in said.args[0]
    # the list is read again: it is still there, as it would be after a restart
    qtbot.waitUntil(lambda: [m.subject for m in inbox.messages] == ["one", "two", "three"])
    # (the tab counts the unread: "one" was shown as it came, "three" was opened)
    assert view.list.topLevelItemCount() == 3
    qtbot.waitUntil(lambda: gui.window.inbox_badge.count == 1, timeout=2000)
    assert inbox.selected_id() == stuck_id  # and still selected
    assert stuck_id in [m.id for m in inbox.store.list()]
    # Delete all removes what it can and says what it could not
    monkeypatch.setattr(InboxController, "confirm_clear", lambda self: True)
    with qtbot.waitSignal(inbox.status, timeout=10000) as said:
        qtbot.mouseClick(view.clear, Qt.MouseButton.LeftButton)
    assert said.args[0].startswith("Could not delete the messages: is a directory (")
    qtbot.waitUntil(lambda: [m.id for m in inbox.messages] == [stuck_id])
    assert [m.id for m in inbox.store.list()] == [stuck_id]
    assert gui.window.inbox_badge.count == 0  # the one left was read: nothing unread
    assert gui.window.side.tabBar().accessibleTabName(0) == "Inbox"


def test_a_part_that_cannot_be_saved_says_so(make_gui, qtbot, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui()
    att = tmp_path / "report.bin"
    att.write_bytes(os.urandom(300))
    fill(gui, subject="With a file")
    gui.controller.compose.add_attachments([str(att)])
    assert send(gui, qtbot).ok
    inbox, view = gui.controller.inbox, gui.window.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    view.list.setCurrentItem(view.list.topLevelItem(0))
    qtbot.waitUntil(lambda: view.parts.topLevelItemCount() == 1)
    view.parts.setCurrentItem(next(i for i in tree_items(view.parts) if i.text(1) == "report.bin"))
    target = tmp_path / "saved" / "copy.bin"
    _stuck(target)
    monkeypatch.setattr(type(inbox), "choose_part_path", lambda self, suggested: str(target))
    with qtbot.waitSignal(inbox.status, timeout=10000) as said:
        qtbot.mouseClick(view.save_part, Qt.MouseButton.LeftButton)
    assert said.args[0] == f"Could not save the part: is a directory ({target})."
    assert target.is_dir()  # nothing was written over it


def test_the_viewer_is_warmed_only_once_nobody_types(make_gui, qtbot) -> None:  # noqa: ANN001
    """Warming the viewer starts the preview's engine, tens of ms of the GUI thread (a key
    typed then would wait for it): it waits while the person types."""
    import time

    from mailgui.controllers import inbox as inbox_controller

    gui = make_gui()
    rendered = gui.window.inbox.rendered
    to = gui.window.compose.address_edits["to"]
    to.setFocus()
    typing_until = time.monotonic() + (inbox_controller.WARM_AFTER_MS
                                       + inbox_controller.WARM_QUIET_MS) / 1000 + 0.5
    while time.monotonic() < typing_until:  # a key every 150 ms, longer than the warm-up waits
        qtbot.keyClick(to, "a")
        qtbot.wait(150)
        assert not getattr(rendered, "_started", False), "the engine started while typing"
    assert to.text().startswith("aaaa")
    qtbot.waitUntil(lambda: getattr(rendered, "_started", False),
                    timeout=inbox_controller.WARM_QUIET_MS + 5000)


def test_the_viewer_is_warmed_only_once_no_send_is_under_way(make_gui, qtbot, paths,  # noqa: ANN001
                                                             silent_server) -> None:  # noqa: ANN001
    """Started in the middle of a send, the engine's start was that send's longest frame
    (200-270 ms of the GUI thread while a 100 MB send kept both cores busy): the warm-up waits
    until the send is over, however quiet the keyboard."""
    import time

    from mailgui.controllers import inbox as inbox_controller

    profile = add_profile(paths, name="Silent", kind="smtp", host="127.0.0.1",
                          port=silent_server.port, security="none", timeout=60)
    gui = make_gui()
    rendered = gui.window.inbox.rendered
    assert gui.controller.target.select(profile.id)
    fill(gui, subject="Never answered")
    sending = gui.controller.sending
    assert sending.send() is not None
    quiet_until = time.monotonic() + (inbox_controller.WARM_AFTER_MS
                                      + 3 * inbox_controller.WARM_QUIET_MS) / 1000 + 0.5
    try:
        while time.monotonic() < quiet_until:
            qtbot.wait(100)
            assert sending.sending, "the silent server ended the send"
            assert not getattr(rendered, "_started", False), "the engine started during a send"
    finally:
        sending.cancel()
        qtbot.waitUntil(lambda: not sending.sending, timeout=10000)
    qtbot.waitUntil(lambda: getattr(rendered, "_started", False),
                    timeout=inbox_controller.WARM_QUIET_MS + 5000)
