"""Small shared view parts: icons, fonts, accessible names, named item roles, ``BlockSignals``,
the message banner, syntax highlighters. Colours come from ``style.py``."""

from __future__ import annotations

import re
from types import TracebackType

from PySide6.QtCore import QObject, QRegularExpression, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QFontDatabase,
    QIcon,
    QKeySequence,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mailgui.model.paths import RESOURCE_DIRS
from mailgui.views import style

__all__ = [
    "BlockSignals",
    "MessageBanner",
    "MimeHighlighter",
    "Role",
    "TranscriptHighlighter",
    "delete_key",
    "hint_label",
    "human_size",
    "icon",
    "mono_font",
    "named",
    "source_editor",
]

ICON_DIRS = [folder / "icons" for folder in RESOURCE_DIRS]

_FALLBACK = {
    "send": QStyle.StandardPixmap.SP_ArrowForward,
    "save": QStyle.StandardPixmap.SP_DialogSaveButton,
    "source": QStyle.StandardPixmap.SP_FileDialogContentsView,
    "attach": QStyle.StandardPixmap.SP_FileIcon,
    "inbox": QStyle.StandardPixmap.SP_DriveNetIcon,
    "profile": QStyle.StandardPixmap.SP_DirHomeIcon,
    "cancel": QStyle.StandardPixmap.SP_DialogCancelButton,
    "new": QStyle.StandardPixmap.SP_FileIcon,
    "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "folder": QStyle.StandardPixmap.SP_DirIcon,
    "mailgui": QStyle.StandardPixmap.SP_ComputerIcon,
}


def human_size(n: int) -> str:
    """``mailgui.model.source.human_size`` (imported on first use, not with the window)."""
    from mailgui.model.source import human_size as size

    return size(n)


def icon(name: str) -> QIcon:
    """One of our SVG icons (resources/icons), or a Qt standard icon if it is not found."""
    for folder in ICON_DIRS:
        path = folder / f"{name}.svg"
        if path.exists():
            return QIcon(str(path))
    style = QApplication.style()
    return style.standardIcon(_FALLBACK.get(name, QStyle.StandardPixmap.SP_FileIcon))


class Role:
    """What the items of the lists and combo boxes carry, by name (Qt item data roles)."""

    TOOLTIP = Qt.ItemDataRole.ToolTipRole
    PROFILE_ID = Qt.ItemDataRole.UserRole  # "Send via" entries, the editor's profile list
    MESSAGE = Qt.ItemDataRole.UserRole  # a Memory pane row: the message mailcore kept
    SENT_ENTRY = Qt.ItemDataRole.UserRole + 1  # a Sent pane row: its SentEntry
    INBOX_ID = Qt.ItemDataRole.UserRole  # an inbox row: the stored message's id
    PART_INDEX = Qt.ItemDataRole.UserRole  # column 0 of a part row: the part's index
    IS_MULTIPART = Qt.ItemDataRole.UserRole  # column 1 of a part row: no bytes of its own
    UNREAD = Qt.ItemDataRole.UserRole  # column 1 of an inbox row: not read yet


class BlockSignals:
    """``with BlockSignals(a, b):`` the objects emit no signals inside the block; each gets
    back the state it had, also when the block raises (git-cola's qtutils.BlockSignals)."""

    def __init__(self, *objects: QObject) -> None:
        self.objects = objects
        self._before: list[bool] = []

    def __enter__(self) -> BlockSignals:
        self._before = [obj.blockSignals(True) for obj in self.objects]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for obj, before in zip(self.objects, self._before, strict=True):
            obj.blockSignals(before)


def mono_font() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def named(widget: QWidget, name: str, description: str = "") -> QWidget:
    """Give a widget an accessible name (screen readers) and an object name (tests, styles)."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
    widget.setObjectName(re.sub(r"\W+", "_", name.lower()).strip("_"))
    return widget


def delete_key(widget: QWidget) -> QAction:
    """An action on the Delete key while ``widget`` (a list) has the focus; the controller
    connects its ``triggered``."""
    action = QAction("Delete", widget)
    action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")])
    action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # not in a cell's editor
    widget.addAction(action)
    return action


def hint_label(text: str) -> QLabel:
    """A centred, muted hint for an empty pane."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(style.muted_label("padding: 24px; font-size: 11pt;"))
    return label


class Pane(QWidget):
    """A part of the window (the compose form, a side pane) whose contents' size changes
    stay inside it: its layout is on ``pane_body``, a child it fills; it has no layout
    itself. In Qt, every text set on a label lays out each parent up to the window (a
    layout's activation always updates its widget's geometry, and so its parent's): 2 ms
    of the GUI thread for the Transcript's result line, more during a send. A pane's size
    comes from the splitter and tabs it sits in, never from its texts, so the climb stops
    here: the pane lays out its own widgets, nothing above it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pane_body = QWidget(self)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        self.pane_body.setGeometry(self.rect())
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.pane_body.sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.pane_body.minimumSizeHint()


class MessageBanner(QFrame):
    """A coloured strip with a sentence, an optional detail (the server's reply), a link-like
    action button and a close button. Kinds: info, success, warning, error (``style.BANNERS``)."""

    action_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "Message banner")
        self.kind = "info"
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setFont(mono_font())
        self.detail.hide()
        self.detail_button = QToolButton()
        self.detail_button.setText("Server reply")
        self.detail_button.setCheckable(True)
        named(self.detail_button, "Server reply")
        self.detail_button.toggled.connect(self.detail.setVisible)
        self.action = QToolButton()
        named(self.action, "Banner action")  # renamed after its text in show_message
        self.action.clicked.connect(self.action_clicked)
        self.close_button = QToolButton()
        self.close_button.setText("\u2715")
        self.close_button.setAutoRaise(True)
        named(self.close_button, "Dismiss message")
        self.close_button.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.text, 1)
        top.addWidget(self.action)
        top.addWidget(self.detail_button)
        top.addWidget(self.close_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(10, 6, 6, 6)
        box.addLayout(top)
        box.addWidget(self.detail)
        self.hide()

    def show_message(self, kind: str, text: str, detail: str = "", action: str = "",
                     detail_label: str = "Server reply") -> None:
        """Show ``text``; ``detail`` behind a button named ``detail_label``; ``action`` is the
        text of the action button (none if empty)."""
        self.kind = kind
        self.setStyleSheet(style.banner_sheet(kind))
        self.detail_button.setText(detail_label)
        self.detail_button.setAccessibleName(detail_label)
        self.text.setText(text)
        self.detail.setText(detail)
        self.detail_button.setVisible(bool(detail))
        self.detail_button.setChecked(False)
        self.detail.hide()
        self.action.setText(action)
        self.action.setAccessibleName(action.replace("\u2026", "") or "Banner action")
        self.action.setVisible(bool(action))
        self.setAccessibleDescription(f"{text} {detail}".strip())
        self.show()


def _fmt(color: str, bold: bool = False, italic: bool = False, bg: str = "") -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Weight.Bold)
    if italic:
        f.setFontItalic(True)
    if bg:
        f.setBackground(QColor(bg))
    return f


class MimeHighlighter(QSyntaxHighlighter):
    """Header names, header values, MIME boundaries and folded-part markers."""

    HEADER, BODY = 0, 1

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.name = _fmt(style.highlight("header-name"), bold=True)
        self.value = _fmt(style.highlight("header-value"))
        self.important = _fmt(style.highlight("header-important"), bold=True)
        self.boundary = _fmt(style.highlight("boundary"), bold=True)
        self.folded = _fmt(style.highlight("folded"), italic=True,
                           bg=style.highlight("folded-background"))
        self.header_re = QRegularExpression(r"^([\x21-\x39\x3b-\x7e]+):")
        self.boundary_re = QRegularExpression(r"^--\S+$")

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt API
        state = self.previousBlockState()
        if state == -1:
            state = self.HEADER
        if text.startswith("\u22ef"):
            self.setFormat(0, len(text), self.folded)
            self.setCurrentBlockState(state)
            return
        if state == self.BODY and self.boundary_re.match(text).hasMatch():
            self.setFormat(0, len(text), self.boundary)
            self.setCurrentBlockState(self.BODY if text.endswith("--") else self.HEADER)
            return
        if state == self.HEADER:
            if not text:
                self.setCurrentBlockState(self.BODY)
                return
            match = self.header_re.match(text)
            if match.hasMatch():
                n = match.capturedLength(0)
                name = match.captured(1).lower()
                fmt = self.important if name in ("subject", "from", "to", "cc") else self.name
                self.setFormat(0, n, fmt)
                self.setFormat(n, len(text) - n, self.value)
            else:
                self.setFormat(0, len(text), self.value)
            self.setCurrentBlockState(self.HEADER)
            return
        self.setCurrentBlockState(self.BODY)


class TranscriptHighlighter(QSyntaxHighlighter):
    """C: lines (client) blue, S: lines green or red (4xx/5xx), notes grey."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.client = _fmt(style.highlight("client"))
        self.ok = _fmt(style.highlight("server-ok"))
        self.bad = _fmt(style.highlight("server-error"), bold=True)
        self.note = _fmt(style.highlight("note"), italic=True)

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt API
        if text.startswith("C:"):
            self.setFormat(0, len(text), self.client)
        elif text.startswith("S:"):
            code = text[3:4]
            self.setFormat(0, len(text), self.bad if code in ("4", "5") else self.ok)
        elif text.startswith("*"):
            self.setFormat(0, len(text), self.note)


def source_editor(name: str) -> QPlainTextEdit:
    """A read-only monospace text view with MIME highlighting."""
    edit = QPlainTextEdit()
    edit.setReadOnly(True)
    edit.setFont(mono_font())
    edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    edit.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextSelectableByMouse
        | Qt.TextInteractionFlag.TextSelectableByKeyboard
    )
    edit.highlighter = MimeHighlighter(edit.document())  # type: ignore[attr-defined]
    named(edit, name)
    return edit
