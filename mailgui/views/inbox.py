"""The local test inbox pane (Mailpit-like): list of received messages, headers, parts,
rendered text and source of the selected one."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import (
    QAction,
    QColor,
    QKeySequence,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from mailgui.views import style
from mailgui.views.checks import ChecksPanel
from mailgui.views.common import Pane, delete_key, hint_label, mono_font, named, source_editor
from mailgui.views.compose import HtmlPreview, _notice_bar
from mailgui.views.webpreview import WebPreview


class HtmlHighlighter(QSyntaxHighlighter):
    """Tags, attribute names, quoted values and comments of an HTML source."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)

        def fmt(role: str, bold: bool = False) -> QTextCharFormat:
            f = QTextCharFormat()
            f.setForeground(QColor(style.highlight(role)))
            if bold:
                f.setFontWeight(700)
            return f

        self.rules = [
            (QRegularExpression(r"</?[A-Za-z][\w:-]*|/?>"), fmt("header-name", True)),
            (QRegularExpression(r"\s[A-Za-z_:][\w:.-]*(?==)"), fmt("boundary")),
            (QRegularExpression(r"\"[^\"]*\"|'[^']*'"), fmt("header-value")),
        ]
        self.comment = fmt("folded")
        self.comment.setFontItalic(True)

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt API
        for pattern, fmt in self.rules:
            it = pattern.globalMatch(text)
            while it.hasNext():
                m = it.next()
                self.setFormat(m.capturedStart(), m.capturedLength(), fmt)
        start = 0 if self.previousBlockState() == 1 else text.find("<!--")
        self.setCurrentBlockState(0)
        while start >= 0:
            end = text.find("-->", start)
            if end < 0:
                self.setFormat(start, len(text) - start, self.comment)
                self.setCurrentBlockState(1)
                break
            self.setFormat(start, end + 3 - start, self.comment)
            start = text.find("<!--", end + 3)


def _text_view(name: str, *, mono: bool = False) -> QPlainTextEdit:
    edit = QPlainTextEdit()
    edit.setReadOnly(True)
    edit.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                 | Qt.TextInteractionFlag.TextSelectableByKeyboard)
    if mono:
        edit.setFont(mono_font())
        edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    named(edit, name)
    return edit


class InboxView(Pane):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("Starting the local test inbox\u2026")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        named(self.status, "Inbox status")
        self.delete = QPushButton("Delete")
        named(self.delete, "Delete selected message")
        self.clear = QPushButton("Delete all")
        named(self.clear, "Delete all messages")
        self.limits = QToolButton()
        self.limits.setText("Limits\u2026")
        named(self.limits, "Inbox retention limits")
        self.limits.setToolTip("How many messages (and how many bytes) the inbox keeps; the "
                               "oldest go first")
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.limits)
        top.addWidget(self.delete)
        top.addWidget(self.clear)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search subject, addresses and text")
        self.search.setClearButtonEnabled(True)
        named(self.search, "Search the inbox")
        self.unread_only = QCheckBox("&Unread only")
        named(self.unread_only, "Show only unread messages")
        self.mark_unread = QPushButton("Mark unread")
        named(self.mark_unread, "Mark the selected message unread")
        self.found = QLabel()
        named(self.found, "Search result count")
        find_row = QHBoxLayout()
        find_row.addWidget(self.search, 1)
        find_row.addWidget(self.found)
        find_row.addWidget(self.unread_only)
        find_row.addWidget(self.mark_unread)

        self.list = QTreeWidget()
        named(self.list, "Received messages")
        self.list_delete = delete_key(self.list)
        self.list.setHeaderLabels(["Received", "From", "To", "Subject", "Size", "Checks"])
        self.list.setRootIsDecorated(False)
        self.list.setAlternatingRowColors(True)
        self.list.setUniformRowHeights(True)
        header = self.list.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.list.setColumnWidth(0, 70)
        self.list.setColumnWidth(1, 130)
        self.list.setColumnWidth(2, 130)
        self.list.setColumnWidth(4, 70)
        self.list.setColumnWidth(5, 90)  # the checks' badge: "81% ⚠ 3", its tooltip says more
        self.hint = hint_label(
            "No messages yet.\n\nWith \u201cLocal test inbox\u201d chosen in \u201cSend via\u201d, "
            "write a message and press Ctrl+Enter: it arrives here. Other programs can send to "
            "it too (see the address above)."
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.list)

        self.headers = QTreeWidget()
        named(self.headers, "Message headers")
        self.headers.setHeaderLabels(["Header", "Value"])
        self.headers.setRootIsDecorated(False)
        self.headers.setColumnWidth(0, 150)
        self.raw_headers = QCheckBox("Show &raw headers")
        named(self.raw_headers, "Show the headers as received")
        self.raw_headers.setToolTip("The headers exactly as received (encoded words and all), "
                                    "instead of as a mail reader shows them")
        headers_page = QWidget()
        headers_box = QVBoxLayout(headers_page)
        headers_box.setContentsMargins(0, 0, 0, 0)
        headers_box.addWidget(self.headers, 1)
        headers_box.addWidget(self.raw_headers)
        self.parts = QTreeWidget()
        named(self.parts, "Message parts")
        self.parts.setHeaderLabels(["Part", "File name", "Size", "Disposition"])
        self.parts.setColumnWidth(0, 220)
        self.save_part = QPushButton("Save part\u2026")
        named(self.save_part, "Save the selected part to a file")
        self.save_part.setToolTip("Save the selected part (an attachment, say) to a file. "
                                  "Double-clicking a part does the same.")
        self.save_part.setEnabled(False)
        parts_page = QWidget()
        self.parts_page = parts_page
        parts_box = QVBoxLayout(parts_page)
        parts_box.setContentsMargins(0, 0, 0, 0)
        # what the selected part holds: its text, its picture, or a word on saving it
        self.part_text = _text_view("Part text")
        self.part_image = QLabel()
        self.part_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        named(self.part_image, "Part image")
        image_scroll = QScrollArea()
        image_scroll.setWidget(self.part_image)
        image_scroll.setWidgetResizable(True)
        self.part_note = hint_label("Select a part to see it here.")
        self.part_view = QStackedWidget()
        for widget in (self.part_note, self.part_text, image_scroll):
            self.part_view.addWidget(widget)
        self.part_image_page = image_scroll
        parts_split = QSplitter(Qt.Orientation.Vertical)
        parts_split.addWidget(self.parts)
        parts_split.addWidget(self.part_view)
        parts_split.setChildrenCollapsible(False)
        parts_split.setStretchFactor(0, 1)
        parts_split.setStretchFactor(1, 2)
        parts_box.addWidget(parts_split, 1)
        parts_row = QHBoxLayout()
        parts_row.addStretch(1)
        parts_row.addWidget(self.save_part)
        parts_box.addLayout(parts_row)
        # the browser engine; remote images only when asked (the bar), for that message
        self.rendered = WebPreview(fallback=HtmlPreview)
        named(self.rendered, "Message text")
        self.remote_bar, self.remote_label, self.load_remote = _notice_bar(
            "Load remote images", "warning")
        self.source = source_editor("Received message source")
        self.text = _text_view("Message plain text")
        self.html_source = _text_view("Message HTML source", mono=True)
        self.html_source.highlighter = HtmlHighlighter(  # type: ignore[attr-defined]
            self.html_source.document())
        self.body = QTabWidget()
        self.body.setDocumentMode(True)
        named(self.body, "Message body views")
        self.body.addTab(self.rendered, "&HTML")
        self.body.addTab(self.text, "&Text")
        self.body.addTab(self.html_source, "HTML so&urce")
        # on the received message: save, copy, open as a draft, send on
        self.save_eml = QPushButton("Save as .eml\u2026")
        named(self.save_eml, "Save the message as an .eml file")
        self.copy_source = QPushButton("Copy source")
        named(self.copy_source, "Copy the message source")
        self.open_draft = QPushButton("Open as new draft")
        named(self.open_draft, "Open the message as a new draft")
        self.send_on = QPushButton("Send on via profile\u2026")
        named(self.send_on, "Send the received bytes on through a profile")
        self.send_on.setToolTip("Send the message exactly as received (same bytes, same "
                                "envelope) through one of your SMTP profiles")
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 2, 0, 0)
        for button in (self.save_eml, self.copy_source, self.open_draft, self.send_on):
            actions.addWidget(button)
        actions.addStretch(1)
        self.detail = QTabWidget()
        named(self.detail, "Message details")
        self.detail.tabBar().setAccessibleName("Message details: text, headers, parts, source")
        # what a mail reader shows above a message: who, when, what is attached
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setStyleSheet("QLabel { background: palette(alternate-base); "
                                   "padding: 6px; border-bottom: 1px solid palette(mid); }")
        named(self.summary, "Message summary")
        message_page = QWidget()
        message_box = QVBoxLayout(message_page)
        message_box.setContentsMargins(0, 0, 0, 0)
        message_box.setSpacing(0)
        message_box.addWidget(self.summary)
        message_box.addWidget(self.remote_bar)
        message_box.addWidget(self.body, 1)
        self.detail.addTab(message_page, "Message")
        self.detail.addTab(headers_page, "Headers")
        self.detail.addTab(parts_page, "Parts")
        self.detail.addTab(self.source, "Source")
        # what is wrong with it: client support, lint, DKIM; links and spam score on request
        self.checks = ChecksPanel(name="Message checks")
        self.detail.addTab(self.checks, "Checks")

        # the same on the list's context menu (right click, or the Menu key)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.list_actions: dict[str, QAction] = {}
        for key, button in (("mark_unread", self.mark_unread), ("save_eml", self.save_eml),
                            ("copy_source", self.copy_source), ("open_draft", self.open_draft),
                            ("send_on", self.send_on)):
            act = QAction(button.text(), self.list)
            self.list.addAction(act)
            self.list_actions[key] = act
        self.find = QAction("Find in the inbox", self)
        self.find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        self.find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(self.find)
        keys = self.find.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.search.setToolTip(f"Search ({keys}): every word must appear in the subject, an "
                               "address or the text")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.stack)
        self.detail_box = QWidget()
        detail_layout = QVBoxLayout(self.detail_box)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.setSpacing(2)
        detail_layout.addLayout(actions)
        detail_layout.addWidget(self.detail, 1)
        split.addWidget(self.detail_box)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.split = split
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(top)
        box.addLayout(find_row)
        box.addWidget(split, 1)

    def set_empty(self, empty: bool) -> None:
        self.stack.setCurrentWidget(self.hint if empty else self.list)
