"""The compose form: every field, address checks, headers, attachments, HTML preview,
drag and drop, keyboard, accessibility."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from tests.support.gui import preview_text, wait_preview_text


def test_typing_into_every_field_fills_the_draft(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    qtbot.keyClicks(view.address_edits["from_email"], "Me <me@example.com>")
    qtbot.keyClicks(view.address_edits["to"], "Bob <bob@example.com>, carol@example.org")
    qtbot.keyClicks(view.address_edits["cc"], "cc@example.com")
    qtbot.keyClicks(view.address_edits["bcc"], "secret@example.com")
    qtbot.keyClicks(view.address_edits["reply_to"], "replies@example.com")
    qtbot.keyClicks(view.subject, "Quarterly report")
    qtbot.keyClicks(view.body, "Hello Bob")
    view.tabs.setCurrentIndex(1)
    qtbot.keyClicks(view.html, "<p>Hello <b>Bob</b></p>")
    draft = gui.controller.compose.draft
    assert draft.from_email == "Me <me@example.com>"
    assert draft.to == "Bob <bob@example.com>, carol@example.org"
    assert (draft.cc, draft.bcc, draft.reply_to) == (
        "cc@example.com", "secret@example.com", "replies@example.com")
    assert draft.subject == "Quarterly report"
    assert draft.body == "Hello Bob"
    assert draft.html == "<p>Hello <b>Bob</b></p>"
    wait_preview_text(qtbot, view.html_preview, "Hello Bob")
    assert not any(e.isVisible() for e in view.address_errors.values())


def test_bad_address_is_marked_with_its_reason(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    to = view.address_edits["to"]
    qtbot.keyClicks(to, "good@example.com, bob@")
    error = view.address_errors["to"]
    assert error.isVisible()
    assert "bob@" in error.text() and "domain after @ is missing" in error.text()
    start = to.text().index("bob@")
    assert to.marked_spans == [(start, start + 4)]  # only the bad one is underlined
    assert to.property("invalid") is True
    qtbot.keyClicks(to, "example.com")
    assert not error.isVisible() and to.marked_spans == []
    # the From field falls back to the profile's address, shown as the placeholder
    assert "tester@example.com" in view.from_edit.placeholderText()


def test_headers_table(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    view.tabs.setCurrentIndex(2)
    qtbot.mouseClick(view.add_header, Qt.MouseButton.LeftButton)
    view.headers.item(0, 0).setText("X-Campaign")
    view.headers.item(0, 1).setText("spring")
    assert gui.controller.compose.draft.headers == [("X-Campaign", "spring")]
    assert view.tabs.tabText(2) == "Headers (1)"
    view.headers.item(0, 0).setText("Bad Name")
    assert "not a header name" in view.header_problem.text()
    view.headers.selectRow(0)
    qtbot.mouseClick(view.remove_header, Qt.MouseButton.LeftButton)
    assert gui.controller.compose.draft.headers == []
    assert view.header_problem.text() == ""


def _rows(tree) -> list[list[str]]:  # noqa: ANN001
    return [[tree.topLevelItem(i).text(c) for c in range(tree.columnCount())]
            for i in range(tree.topLevelItemCount())]


def test_attachments_add_remove_and_missing_file(make_gui, qtbot, tmp_path: Path,  # noqa: ANN001
                                                 monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF" + bytes(2048))
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG" + bytes(100))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *a, **k: ([str(pdf), str(png)], ""))
    qtbot.mouseClick(view.add_attachment, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: all(r[3] == "ok" for r in _rows(view.attachments)))
    rows = _rows(view.attachments)
    assert rows[0][:3] == ["report.pdf", "2.1 KB", "application/pdf"]
    assert rows[1][:3] == ["chart.png", "104 bytes", "image/png"]
    assert "Attachments (2," in view.attachments_label.text()
    # remove the first one
    view.attachments.setCurrentItem(view.attachments.topLevelItem(0))
    qtbot.mouseClick(view.remove_attachment, Qt.MouseButton.LeftButton)
    assert [a.name for a in gui.controller.compose.draft.attachments] == ["chart.png"]
    # a file that vanishes is reported, not crashed on: when the person comes back to the
    # window (from the file manager, say), the list says so
    png.unlink()
    window = gui.window
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    QApplication.sendEvent(window, QEvent(QEvent.Type.ActivationChange))
    qtbot.waitUntil(lambda: "missing" in _rows(view.attachments)[0][3])
    assert "can't be read" in view.attachments_hint.text()


def test_a_long_address_list_is_checked_when_typing_pauses(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view, controller = gui.window.compose, gui.controller.compose
    many = ", ".join(f"user{i}@example.com" for i in range(300)) + ", bad@@example.com"
    view.address_edits["bcc"].setText(many)
    assert controller.check_timer.isActive()  # not checked at this key
    assert gui.controller.compose.draft.bcc == many  # but the draft has it at once
    qtbot.waitUntil(lambda: view.address_errors["bcc"].isVisibleTo(view))
    assert "bad@@example.com" in view.address_errors["bcc"].text()
    view.address_edits["bcc"].setText("short@example.com")  # short lists: at every key
    assert not view.address_errors["bcc"].isVisibleTo(view)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # QDragEnterEvent(QPoint, ...)
def test_drop_files_from_the_file_manager(make_gui, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    files = []
    for name in ("a.txt", "b.csv"):
        path = tmp_path / name
        path.write_text("x,y\n")
        files.append(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in files])
    target = view.body.viewport()  # dropping onto the text body attaches, it does not paste
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    # while the files are over the form, it says where they will go
    assert view.attachments_hint.text() == "Drop the files to attach them"
    assert "dashed" in view.attachments.styleSheet()
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    assert [a.name for a in gui.controller.compose.draft.attachments] == ["a.txt", "b.csv"]
    assert gui.controller.compose.draft.body == ""
    assert view.attachments.styleSheet() == ""
    assert view.attachments_hint.text() != "Drop the files to attach them"
    qtbot.waitUntil(lambda: _rows(view.attachments)[0][2] == "text/plain")


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    requested: list[str] = []  # the paths asked for, by every server of this handler

    def do_GET(self) -> None:  # noqa: N802
        _ImageHandler.requested.append(self.path)
        image = QImage(4, 4, QImage.Format.Format_RGB32)
        image.fill(0xFF0000)
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice

        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buf, "PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(bytes(data))

    def log_message(self, *args: object) -> None:
        pass


def test_remote_images_blocked_until_asked(make_gui, qtbot) -> None:  # noqa: ANN001
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ImageHandler.requested = []
    try:
        gui = make_gui(start_inbox=False)
        view = gui.window.compose
        url = f"http://127.0.0.1:{server.server_port}/pixel.png"
        view.tabs.setCurrentIndex(1)
        view.html.setPlainText(f'<p>Hi</p><img src="{url}" width="4" height="4">')
        qtbot.waitUntil(lambda: view.remote_bar.isVisible())
        assert view.html_preview.blocked == {url}
        assert "1 remote image blocked" in view.remote_label.text()
        wait_preview_text(qtbot, view.html_preview, "Hi")
        assert _ImageHandler.requested == []  # rendered, and nothing asked of the network
        assert ("http", url, False) in view.html_preview.request_log
        qtbot.mouseClick(view.load_remote, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _ImageHandler.requested == ["/pixel.png"], timeout=10000)
        assert not view.remote_bar.isVisible()
        # typing on: the image allowed for this draft stays allowed, a new one is blocked
        view.html.appendPlainText(f'<img src="{url}?two" width="4" height="4">')
        qtbot.waitUntil(lambda: view.remote_bar.isVisible())
        assert view.html_preview.blocked == {f"{url}?two"}
        wait_preview_text(qtbot, view.html_preview, "Hi")
        assert "/pixel.png?two" not in _ImageHandler.requested
    finally:
        server.shutdown()
        server.server_close()


def test_html_too_slow_to_preview_live_waits_for_refresh(make_gui, qtbot,  # noqa: ANN001
                                                         monkeypatch) -> None:  # noqa: ANN001
    """A preview that takes long to render stops following the typing (each render freezes
    the window): the bar says so and Refresh renders on request."""
    from mailgui.controllers import compose as compose_controller

    gui = make_gui(start_inbox=False)
    controller, view = gui.controller.compose, gui.window.compose
    view.tabs.setCurrentIndex(1)
    rows = "".join(f"<tr><td>row <b>{i}</b></td><td>{'x' * 40}</td></tr>" for i in range(3000))
    view.html.setPlainText(f"<table>{rows}</table>")
    # rendered once the worker has found the remote URLs (none here)
    qtbot.waitUntil(lambda: controller.preview_ms > 0 and not controller.html_timer.isActive()
                    and not controller.html_pending)
    slow = controller.preview_ms
    assert "row 2999" in preview_text(qtbot, view.html_preview)
    assert controller.html_timer.interval() >= min(2000, 4 * slow) - 1
    monkeypatch.setattr(compose_controller, "LIVE_PREVIEW_MS", 0)  # every render is "slow" now
    qtbot.mouseClick(view.refresh_preview, Qt.MouseButton.LeftButton)  # measure again
    qtbot.waitUntil(lambda: not controller.html_pending)
    assert not controller.preview_live
    view.html.appendPlainText("<p>appended</p>")
    assert view.stale_bar.isVisible() and "not updated as you type" in view.stale_label.text()
    # nothing is due to re-render it: no timer runs and no scan is awaited
    assert not controller.html_timer.isActive() and not controller.html_pending
    # nothing re-rendered by itself
    assert "appended" not in preview_text(qtbot, view.html_preview)
    qtbot.mouseClick(view.refresh_preview, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not controller.html_pending)
    assert "appended" in preview_text(qtbot, view.html_preview)
    assert not view.stale_bar.isVisible()


def test_every_control_has_an_accessible_name_and_takes_focus(make_gui) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    window = gui.window
    inputs = (QLineEdit, QPlainTextEdit, QComboBox, QAbstractButton, QAbstractItemView,
              QCheckBox, QSpinBox)
    unnamed = []
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, inputs) or isinstance(widget.parent(), QComboBox | QSpinBox):
            continue
        if type(widget).__name__ in ("QToolButton",) and widget.parent() is window.toolbar:
            continue  # toolbar buttons are named by their QAction's text
        if widget.parent() is not None and type(widget.parent()).__name__ in (
                "QTabBar", "QScrollBar", "QHeaderView", "QLineEdit", "QToolBar"):
            continue
        if type(widget).__name__ in ("QTabBar", "QHeaderView", "QScrollBar"):
            continue
        # Qt's own parts: line-edit clear buttons, table corner, menu-bar extension, popups
        if isinstance(widget.parent(), QLineEdit) or widget.objectName().startswith("qt_"):
            continue
        if type(widget.parent()).__name__ == "QFrame" and not widget.parent().objectName():
            continue
        if not widget.accessibleName():
            unnamed.append(f"{type(widget).__name__} {widget.objectName()!r} "
                           f"in {type(widget.parent()).__name__} {widget.parent().objectName()}")
    assert unnamed == [], "\n".join(unnamed)
    view = window.compose
    for widget in (*view.address_edits.values(), view.subject, view.body, view.html,
                   view.attachments, view.add_attachment, window.target):
        assert widget.focusPolicy() & Qt.FocusPolicy.TabFocus, widget.accessibleName()
    # Tab walks the form in reading order
    view.address_edits["to"].setFocus()
    assert view.address_edits["to"].nextInFocusChain() is not None
    order = []
    widget = view.address_edits["from_email"]
    for _ in range(8):
        order.append(widget)
        widget = widget.nextInFocusChain()
        while not (widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
            widget = widget.nextInFocusChain()
    names = [w.accessibleName() for w in order]
    # Subject, then the text: typing after Tab goes into the message, not to the tab bar
    assert names[:7] == ["From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Message text"]
