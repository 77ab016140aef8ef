"""Line breaks and control characters in the one-line fields (Subject, the address fields,
the extra headers): pasted line breaks become spaces as they are pasted, other control
characters are shown under the field and stop the send, and the draft is never lost."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import (
    QContextMenuEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QInputMethodEvent,
)
from PySide6.QtWidgets import QApplication, QMenu

from mailcore.message import HEADER_LINE_BREAKS
from mailgui.model.draft import Draft, DraftStore, clean_one_line, one_line, unsendable_problem
from mailgui.model.message import build_message, draft_problems
from mailgui.views.compose import OneLineEdit

CTRL = Qt.KeyboardModifier.ControlModifier


def paste(widget, qtbot, text: str) -> None:  # noqa: ANN001
    """Put ``text`` on the real clipboard and press Ctrl+V in ``widget``."""
    QApplication.clipboard().setText(text)
    qtbot.waitUntil(lambda: QApplication.clipboard().text() == text)
    widget.setFocus()
    qtbot.keyClick(widget, Qt.Key.Key_V, CTRL)


def type_by_input_method(widget, text: str) -> None:  # noqa: ANN001
    """What an input method (compose key, IME, on-screen keyboard) sends when it commits
    ``text``: the one way typing can put a control character into a QLineEdit (Qt drops key
    events whose text is one)."""
    event = QInputMethodEvent("", [])
    event.setCommitString(text)
    QApplication.sendEvent(widget, event)


# -- the rule, without a window ------------------------------------------------------------
def test_one_line_makes_each_run_of_line_breaks_one_space() -> None:
    assert one_line("Quarterly\r\nreport") == "Quarterly report"
    assert one_line("a\n\n\r\nb\u2028c\u2029d\x0be\x0cf\x1cg\x1dh\x1ei\x85j") == (
        "a b c d e f g h i j")
    assert one_line("col1\tcol2") == "col1 col2"
    assert one_line("bob@example.com\r\n") == "bob@example.com"  # a copied line's own end
    assert one_line("NUL\x00stays") == "NUL\x00stays"  # not a line break: shown, not changed
    # every line break mailcore refuses in a header, and none of the others
    for ch in HEADER_LINE_BREAKS:
        assert (one_line(f"a{ch}b") == "a b") == (ch != "\x00"), repr(ch)


def test_unsendable_characters_are_named_with_where_they_are() -> None:
    assert unsendable_problem("Hello there\t(tab is fine)") is None
    assert unsendable_problem("Hi\x07there") == (
        "holds a control character (U+0007) after \u201cHi\u201d, which a mail header "
        "can't carry")
    assert "a line break (U+2028) at the start" in unsendable_problem("\u2028x")
    for ch in (*HEADER_LINE_BREAKS, "\x01", "\x1b", "\x7f", "\x9b"):
        assert unsendable_problem(f"x{ch}y"), repr(ch)
    assert "3 characters" in unsendable_problem("a\x07b\nc\x7f")
    assert "a lone surrogate (U+D800)" in unsendable_problem("x\ud800")  # from a draft file
    assert clean_one_line("a\x07b\r\nc\x7f") == "ab c"


def test_build_message_names_the_field_instead_of_a_parse_error() -> None:
    """Before, a VT in the subject escaped as email's HeaderParseError ("Unexpected error")
    and a BEL went out raw; now both are refused with the field's name, before mailcore."""
    for subject in ("Hello\x0bBcc: victim@example.com", "Hi\x07"):
        draft = Draft(from_email="me@example.com", to="bob@example.com", subject=subject)
        with pytest.raises(ValueError, match=r"^Subject holds a (line break|control char)"):
            build_message(draft)
        assert [p.field for p in draft_problems(draft)] == ["subject"]
    draft = Draft(from_email="me@example.com", to="bob@")
    with pytest.raises(ValueError, match=r'^To: "bob@"'):
        build_message(draft)


# -- pasting --------------------------------------------------------------------------------
@pytest.mark.parametrize("pasted, expected", [
    ("Quarterly\nreport", "Quarterly report"),
    ("Quarterly\r\nreport", "Quarterly report"),
    ("Quarterly\r\n\r\n\nreport\r\n", "Quarterly report"),
    ("Quarterly\u2028report", "Quarterly report"),
    ("Quarterly\treport", "Quarterly report"),
])
def test_paste_into_subject_makes_line_breaks_spaces(make_gui, qtbot, pasted: str,  # noqa: ANN001
                                                     expected: str) -> None:
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    paste(view.subject, qtbot, pasted)
    assert view.subject.text() == expected
    assert gui.controller.compose.draft.subject == expected
    assert not view.subject_error.isVisible()


def test_paste_in_the_middle_is_one_undoable_edit(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    subject = gui.window.compose.subject
    qtbot.keyClicks(subject, "Q3 ")
    subject.setFocus()
    qtbot.keyClick(subject, Qt.Key.Key_Home)
    paste(subject, qtbot, "Draft:\r\n")
    assert subject.text() == "Draft:Q3 "  # the copied line's own line break adds nothing
    paste(subject, qtbot, " two\nlines ")
    assert subject.text() == "Draft: two lines Q3 "
    qtbot.keyClick(subject, Qt.Key.Key_Z, CTRL)
    assert subject.text() == "Draft:Q3 "


def test_paste_into_every_address_field(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    draft = gui.controller.compose.draft
    # a name and its address on two lines, as copied from a signature
    for key, separator in (("from_email", "\n"), ("to", "\r\n"), ("cc", "\u2028"),
                           ("bcc", "\r"), ("reply_to", "\n\n")):
        edit = view.address_edits[key]
        paste(edit, qtbot, f"Bob Example{separator}<bob@example.com>")
        assert edit.text() == "Bob Example <bob@example.com>", key
        assert getattr(draft, key) == "Bob Example <bob@example.com>"
        assert not view.address_errors[key].isVisible(), view.address_errors[key].text()


def test_paste_from_the_context_menu(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    to = gui.window.compose.address_edits["to"]
    QApplication.clipboard().setText("Carol\r\n<carol@example.org>")
    to.setFocus()
    QApplication.sendEvent(to, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(5, 5),
                                                 to.mapToGlobal(QPoint(5, 5))))
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    menu = QApplication.activePopupWidget()
    [action] = [a for a in menu.actions() if a.objectName() == "edit-paste"]
    action.trigger()
    menu.close()
    assert to.text() == "Carol <carol@example.org>"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # QDragEnterEvent(QPoint, ...)
def test_dropped_text_makes_line_breaks_spaces(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    subject = gui.window.compose.subject
    mime = QMimeData()
    mime.setText("Dragged\r\nfrom a\nmail")
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    for event in (QDragEnterEvent(QPoint(5, 5), *args), QDragMoveEvent(QPoint(5, 5), *args)):
        QApplication.sendEvent(subject, event)
        assert event.isAccepted()
    drop = QDropEvent(QPointF(5, 5), *args)
    QApplication.sendEvent(subject, drop)
    assert drop.isAccepted()
    assert subject.text() == "Dragged from a mail"


def test_paste_into_a_header_value(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    view.tabs.setCurrentIndex(2)
    qtbot.mouseClick(view.add_header, Qt.MouseButton.LeftButton)
    table = view.headers
    editor = QApplication.focusWidget()
    assert isinstance(editor, OneLineEdit)  # the name cell's editor
    editor.selectAll()
    paste(editor, qtbot, "X-Campaign\r\n")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # commits when the event loop runs
    qtbot.waitUntil(lambda: table.item(0, 0).text() == "X-Campaign")
    table.setCurrentCell(0, 1)
    table.editItem(table.item(0, 1))
    qtbot.waitUntil(lambda: isinstance(QApplication.focusWidget(), OneLineEdit))
    editor = QApplication.focusWidget()
    paste(editor, qtbot, "spring\r\nsale\u20282026")
    assert editor.text() == "spring sale 2026"
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: table.item(0, 1).text() == "spring sale 2026")
    assert gui.controller.compose.draft.headers == [("X-Campaign", "spring sale 2026")]
    assert not view.header_problem.isVisible()


# -- control characters ---------------------------------------------------------------------
def test_a_typed_control_character_is_shown_and_stops_the_send(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    view, compose = gui.window.compose, gui.controller.compose
    view.address_edits["to"].setText("bob@example.com")
    qtbot.keyClicks(view.subject, "Hi")
    type_by_input_method(view.subject, "\x07")
    qtbot.keyClicks(view.subject, " there")
    error = view.subject_error
    assert view.subject.text() == "Hi\x07 there"  # kept as typed: nothing disappears
    assert error.isVisible()
    assert "control character (U+0007) after \u201cHi\u201d" in error.text()
    assert view.subject.marked_spans == [(2, 3)]
    # the reason wraps under the field: it does not widen the form
    assert error.wordWrap() and error.width() <= view.subject.width()
    finished = []
    gui.controller.sending.finished.connect(finished.append)
    gui.window.act_send.trigger()
    banner = view.banner
    assert banner.isVisible() and banner.kind == "error"
    assert banner.text.text().startswith("Not sent: Subject holds a control character")
    assert gui.controller.sending.job is None and finished == []
    assert compose.draft.subject == "Hi\x07 there" and compose.draft.to == "bob@example.com"
    # the link under the field removes it, as one edit that Ctrl+Z takes back
    error.linkActivated.emit("fix")
    assert view.subject.text() == "Hi there" and not error.isVisible()
    qtbot.keyClick(view.subject, Qt.Key.Key_Z, CTRL)
    assert view.subject.text() == "Hi\x07 there" and error.isVisible()
    error.linkActivated.emit("fix")
    with qtbot.waitSignal(gui.controller.sending.finished, timeout=15000) as sent:
        gui.window.act_send.trigger()
    assert sent.args[0].ok, sent.args[0].sentence
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    assert inbox.messages[0].subject == "Hi there"


def test_a_pasted_control_character_in_an_address(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    to = view.address_edits["to"]
    paste(to, qtbot, "Bob\x1b[31m <bob@example.com>\r\n")
    assert to.text() == "Bob\x1b[31m <bob@example.com>"
    error = view.address_errors["to"]
    assert error.isVisible()
    # the composer's sentence, not the email package's "ascii non-printables"
    assert "To holds a control character (U+001B) after \u201cBob\u201d" in error.text()
    assert "non-printables" not in error.text()
    assert to.marked_spans == [(3, 4)]
    error.linkActivated.emit("fix")
    assert to.text() == "Bob[31m <bob@example.com>"
    # what is left is an address problem of its own, said as before
    assert error.isVisible() and "control character" not in error.text()
    assert error.text().startswith("\u201cBob[31m <bob@example.com>\u201d: ")


def test_a_restored_draft_with_bad_characters_shows_them(make_gui, qtbot, paths) -> None:  # noqa: ANN001
    """A draft saved (or an .eml opened) with line breaks and control characters in its
    one-line fields is shown as it is, each problem under its field; it is not sent and the
    source pane says why in a sentence."""
    DraftStore(paths).save(Draft(
        to="bob@example.com\x0b", cc="Carol\x00 <carol@example.org>",
        subject="Hello\nBcc: victim@example.com", body="precious text",
        headers=[("X-Note", "one\u2028two")],
    ))
    gui = make_gui()
    view, compose = gui.window.compose, gui.controller.compose
    assert view.subject.text() == "Hello\nBcc: victim@example.com"
    assert view.subject_error.isVisible()
    assert "line break (U+000A) after \u201cHello\u201d" in view.subject_error.text()
    assert "line break (U+000B)" in view.address_errors["to"].text()
    assert "control character (U+0000) after \u201cCarol\u201d" in (
        view.address_errors["cc"].text())
    assert "header X-Note holds a line break (U+2028)" in view.header_problem.text()
    assert not view.header_problem.isHidden()  # on the Headers tab, which says so
    assert view.tabs.tabText(2) == "Headers (1, 1 problem)"
    finished = []
    gui.controller.sending.finished.connect(finished.append)
    gui.window.act_send.trigger()
    assert view.banner.kind == "error" and "Not sent:" in view.banner.text.text()
    assert gui.controller.sending.job is None and finished == []
    assert compose.draft.body == "precious text"
    assert compose.draft.subject == "Hello\nBcc: victim@example.com"
    # the source preview: a sentence naming the field, not a traceback
    source = gui.window.source
    with qtbot.waitSignal(gui.controller.source.updated, timeout=3000, raising=False):
        gui.window.act_source.trigger()
    qtbot.waitUntil(source.error.isVisible, timeout=10000)
    assert source.error.text().startswith("Can't build the message yet: ")
    assert "To holds a line break (U+000B)" in source.error.text()  # the first, in form order
    assert "Traceback" not in source.error.text()
    # each field's link fixes it; then the message goes out with one-line headers
    view.subject_error.linkActivated.emit("fix")
    view.address_errors["to"].linkActivated.emit("fix")
    view.address_errors["cc"].linkActivated.emit("fix")
    view.header_problem.linkActivated.emit("fix")
    assert (compose.draft.subject, compose.draft.to, compose.draft.cc) == (
        "Hello Bcc: victim@example.com", "bob@example.com", "Carol <carol@example.org>")
    assert compose.draft.headers == [("X-Note", "one two")]
    assert not any(label.isVisibleTo(view) for label in (
        view.subject_error, view.header_problem, *view.address_errors.values()))
    with qtbot.waitSignal(gui.controller.sending.finished, timeout=15000) as sent:
        gui.window.act_send.trigger()
    outcome = sent.args[0]
    assert outcome.ok, outcome.sentence
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    received = inbox.store.read(inbox.messages[0].id)
    head = received.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nSubject: Hello Bcc: victim@example.com\r\n" in head
    assert b"\r\nBcc:" not in head
