"""The side panes: MIME source, transcript of the last send, console output, memory outbox,
Sent log. Layout, and the small methods that show what a controller hands them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mailgui.model.sentlog import SentEntry
from mailgui.views import style
from mailgui.views.common import (
    Pane,
    Role,
    TranscriptHighlighter,
    hint_label,
    mono_font,
    named,
    source_editor,
)


def _tree(name: str, headers: list[str]) -> QTreeWidget:
    tree = QTreeWidget()
    named(tree, name)
    tree.setHeaderLabels(headers)
    tree.setRootIsDecorated(False)
    tree.setAlternatingRowColors(True)
    tree.setUniformRowHeights(True)
    tree.header().setStretchLastSection(True)
    return tree


class SourceView(Pane):
    """The MIME source of the draft: the bytes mailcore would send."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("The source appears here as you write.")
        named(self.status, "Source status")
        self.status.setWordWrap(True)
        self.show_all = QCheckBox("Show all")
        named(self.show_all, "Show all lines of attachments",
              "Unfold long base64 parts (may be slow for big attachments)")
        self.copy = QPushButton("Copy")
        named(self.copy, "Copy source to clipboard")
        self.save = QPushButton("Save as .eml\u2026")
        named(self.save, "Save source as eml file")
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.show_all)
        top.addWidget(self.copy)
        top.addWidget(self.save)
        self.text = source_editor("MIME source")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(style.problem_label())
        named(self.error, "Source problem")
        self.error.hide()
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(top)
        box.addWidget(self.error)
        box.addWidget(self.text, 1)


class TranscriptView(Pane):
    """The result of the latest send (or connection test) and its SMTP conversation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = QLabel("Nothing sent yet in this session.")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        named(self.result, "Result of the last send")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(mono_font())
        self.text.setPlaceholderText(
            "The SMTP conversation of each send appears here: C: is mailgui, S: the server.\n"
            "Passwords are never shown."
        )
        self.highlighter = TranscriptHighlighter(self.text.document())
        named(self.text, "SMTP transcript")
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.result)
        box.addWidget(self.text, 1)

    def start(self, text: str) -> None:
        """A new send: its first line, an empty conversation."""
        self.text.clear()
        self.show_result(text)

    def add_line(self, line: str) -> None:
        self.text.appendPlainText(line)

    def show_result(self, text: str, ok: bool | None = None) -> None:
        """The result line, green if it worked, red if not, plain if neither is known yet."""
        self.result.setText(text)
        self.result.setStyleSheet(style.result_label(ok))


class ConsoleView(Pane):
    """What the console backend printed (also written to stdout)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(mono_font())
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setMaximumBlockCount(50000)
        self.text.setPlaceholderText(
            "Choose \u201cConsole\u201d in \u201cSend via\u201d: messages are printed here "
            "(and on standard output) instead of being sent."
        )
        named(self.text, "Console output")
        self.clear = QPushButton("Clear")
        named(self.clear, "Clear console output")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.clear)
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.text, 1)
        box.addLayout(row)

    def add_output(self, title: str, text: str) -> None:
        """What one send printed, under a "# time — subject" line."""
        self.text.appendPlainText(f"# {time.strftime('%H:%M:%S')} \u2014 {title}")
        self.text.appendPlainText(text.rstrip("\n") + "\n")


class MessageListView(Pane):
    """A list of messages above a source viewer, with a hint while the list is empty."""

    def __init__(self, name: str, columns: list[str], hint: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = _tree(name, columns)
        self.hint = hint_label(hint)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.list)
        self.source = source_editor(f"{name} source")
        self.source.setPlaceholderText("Select a message above to see its source.")
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(self.stack)
        self.split.addWidget(self.source)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 2)
        self.clear = QPushButton("Clear")
        named(self.clear, f"Clear {name}")
        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        self.buttons.addWidget(self.clear)
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.split, 1)
        box.addLayout(self.buttons)

    def set_empty(self, empty: bool) -> None:
        self.stack.setCurrentWidget(self.hint if empty else self.list)


class MemoryView(MessageListView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Memory outbox", ["Time", "Subject", "To"],
            "Choose \u201cMemory\u201d in \u201cSend via\u201d: messages are kept here "
            "(mailcore.outbox) for this session, and you can look at each one.",
            parent,
        )

    def add_message(self, when: float, message: object) -> None:
        """List a message the memory backend kept, and select it."""
        item = QTreeWidgetItem([time.strftime("%H:%M:%S", time.localtime(when)),
                                getattr(message, "subject", ""),
                                ", ".join(getattr(message, "to", []))])
        item.setData(0, Role.MESSAGE, message)
        self.list.addTopLevelItem(item)
        self.list.setCurrentItem(item)
        self.set_empty(False)

    @staticmethod
    def message_of(item: QTreeWidgetItem) -> object:
        return item.data(0, Role.MESSAGE)

    def clear_all(self) -> None:
        self.list.clear()
        self.source.clear()
        self.set_empty(True)


class SentLogView(Pane):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = _tree("Sent log",
                          ["Time", "Via", "Subject", "Recipients", "Result", "Message-ID"])
        self.list.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.list.setColumnWidth(0, 150)
        self.list.setColumnWidth(1, 110)
        self.list.setColumnWidth(2, 160)
        self.list.setColumnWidth(3, 160)
        self.list.setColumnWidth(4, 90)
        self.hint = hint_label("Every message you send is listed here, with its "
                               "Message-ID, the server's answer and the SMTP conversation.")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.list)
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setFont(mono_font())
        self.detail.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.detail.setPlaceholderText("Select a send above to see its details and its SMTP "
                                       "conversation.")
        self.highlighter = TranscriptHighlighter(self.detail.document())
        named(self.detail, "Sent log details")
        self.note = QLabel()  # says when only the newest sends are listed
        self.note.setWordWrap(True)
        self.note.setStyleSheet(style.muted_label())
        named(self.note, "Sent log note")
        self.note.hide()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.stack)
        split.addWidget(self.detail)
        box = QVBoxLayout(self.pane_body)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.note)
        box.addWidget(split, 1)

    def set_empty(self, empty: bool) -> None:
        self.stack.setCurrentWidget(self.hint if empty else self.list)

    # -- the rows, newest first ---------------------------------------------------------------
    @staticmethod
    def _item(entry: SentEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem([
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time)), entry.profile,
            entry.subject, ", ".join(entry.recipients), entry.result, entry.message_id,
        ])
        item.setData(0, Role.SENT_ENTRY, entry)
        return item

    def show_entries(self, newest_first: Iterable[SentEntry]) -> None:
        """List ``newest_first`` in place of what is listed, in one pass."""
        self.list.setUpdatesEnabled(False)
        try:
            self.list.clear()
            self.list.addTopLevelItems([self._item(e) for e in newest_first])
        finally:
            self.list.setUpdatesEnabled(True)
        if self.list.topLevelItemCount():
            self.set_empty(False)

    def add_entry(self, entry: SentEntry, keep: int) -> None:
        """List ``entry`` on top, keeping the newest ``keep`` rows."""
        self.list.insertTopLevelItem(0, self._item(entry))
        while self.list.topLevelItemCount() > keep:
            self.list.takeTopLevelItem(self.list.topLevelItemCount() - 1)
        self.set_empty(False)

    @staticmethod
    def entry_of(item: QTreeWidgetItem) -> SentEntry:
        return item.data(0, Role.SENT_ENTRY)

    def show_details(self, entry: SentEntry) -> None:
        """The selected send: its result, recipients, Message-ID, size, and conversation."""
        lines = [
            f"* {entry.result} via {entry.profile}: {entry.subject!r}",
            f"* to {', '.join(entry.recipients) or '-'}",
            f"* Message-ID {entry.message_id}  size {entry.size:,} bytes",
            f"* Date: {entry.date}" if entry.date else "",
            f"* {entry.detail}" if entry.detail else "",
            *entry.transcript,
        ]
        self.detail.setPlainText("\n".join(x for x in lines if x))

    def show_note(self, text: str) -> None:
        """Says when only the newest sends are listed ("" hides it)."""
        self.note.setText(text)
        self.note.setVisible(bool(text))
