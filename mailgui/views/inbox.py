"""The local test inbox pane (Mailpit-like): list of received messages, headers, parts,
rendered text and source of the selected one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from mailgui.views.common import delete_key, hint_label, named, source_editor
from mailgui.views.compose import HtmlPreview, _notice_bar
from mailgui.views.webpreview import WebPreview


class InboxView(QWidget):
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
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.delete)
        top.addWidget(self.clear)

        self.list = QTreeWidget()
        named(self.list, "Received messages")
        self.list_delete = delete_key(self.list)
        self.list.setHeaderLabels(["Received", "From", "To", "Subject", "Size"])
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
        parts_box = QVBoxLayout(parts_page)
        parts_box.setContentsMargins(0, 0, 0, 0)
        parts_box.addWidget(self.parts, 1)
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
        message_box.addWidget(self.rendered, 1)
        self.detail.addTab(message_page, "Message")
        self.detail.addTab(self.headers, "Headers")
        self.detail.addTab(parts_page, "Parts")
        self.detail.addTab(self.source, "Source")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.stack)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.split = split
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(top)
        box.addWidget(split, 1)

    def set_empty(self, empty: bool) -> None:
        self.stack.setCurrentWidget(self.hint if empty else self.list)
