"""The Queue panel: a queue profile's counts (queued, sent, retrying, dead), its dead letters
with the servers' replies, Retry, and pushing N copies of the draft. Layout and the small
methods that show a state; ``controllers/queue.py`` holds the logic."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mailgui.views import style
from mailgui.views.common import mono_font, named

MESSAGE_ID = Qt.ItemDataRole.UserRole  # column 0 of a dead letter's row: its Message-ID
COUNTS = (("queued", "Queued"), ("sent", "Sent"), ("retrying", "Retrying"), ("dead", "Dead"))


class QueuePanel(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Queue \u2014 mailgui")
        self.resize(760, 520)
        self.where = QLabel("No queue profile chosen.")
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        named(self.where, "Queue")

        counts = QGridLayout()
        self.counts: dict[str, QLabel] = {}
        for column, (key, title) in enumerate(COUNTS):
            box = QFrame()
            box.setFrameShape(QFrame.Shape.StyledPanel)
            inner = QVBoxLayout(box)
            number = QLabel("\u2013")
            number.setAlignment(Qt.AlignmentFlag.AlignCenter)
            font = number.font()
            font.setPointSizeF(font.pointSizeF() * 2)
            font.setBold(True)
            number.setFont(font)
            named(number, f"{title} messages")
            caption = QLabel(title)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setStyleSheet(style.muted_label())
            inner.addWidget(number)
            inner.addWidget(caption)
            counts.addWidget(box, 0, column)
            self.counts[key] = number

        self.copies = QSpinBox()
        self.copies.setRange(1, 100_000)
        self.copies.setValue(100)
        self.copies.setGroupSeparatorShown(True)
        named(self.copies, "Copies to push", "Each copy gets a Message-ID of its own")
        self.push = QPushButton("Push copies of the draft")
        named(self.push, "Push copies of the draft to the queue")
        push_row = QHBoxLayout()
        push_row.addWidget(QLabel("Copies:"))
        push_row.addWidget(self.copies)
        push_row.addWidget(self.push)
        push_row.addStretch(1)

        self.letters = QTableWidget(0, 4)
        self.letters.setHorizontalHeaderLabels(["Message-ID", "Server\u2019s reply", "To",
                                                "Tries"])
        self.letters.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.letters.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.letters.verticalHeader().hide()
        self.letters.setWordWrap(False)  # one line a letter; the whole text in the tooltip
        self.letters.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.letters.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.letters.setColumnWidth(0, 220)
        self.letters.setColumnWidth(2, 180)
        named(self.letters, "Dead letters")
        self.retry = QPushButton("Retry")
        self.retry.setEnabled(False)
        named(self.retry, "Retry the selected dead letters")
        dead_row = QHBoxLayout()
        dead_title = QLabel("Dead letters (not tried again)")
        dead_row.addWidget(dead_title)
        dead_row.addStretch(1)
        dead_row.addWidget(self.retry)

        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        named(self.state, "Queue state")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addLayout(counts)
        layout.addLayout(push_row)
        layout.addLayout(dead_row)
        layout.addWidget(self.letters, 1)
        layout.addWidget(self.state)
        layout.addWidget(self.buttons)
        self.letters.itemSelectionChanged.connect(
            lambda: self.retry.setEnabled(bool(self.selected_ids())))

    # -- showing --------------------------------------------------------------------------
    def show_where(self, text: str, can_push: bool) -> None:
        self.where.setText(text)
        self.push.setEnabled(can_push)
        self.copies.setEnabled(can_push)

    def show_counts(self, queued: int, sent: int, retrying: int, dead: int) -> None:
        for key, value in (("queued", queued), ("sent", sent), ("retrying", retrying),
                           ("dead", dead)):
            self.counts[key].setText(f"{value:,}")

    def clear_counts(self) -> None:
        for label in self.counts.values():
            label.setText("\u2013")

    def show_letters(self, letters: list) -> None:
        """Dead letters, newest last; the selection kept where the same rows are there."""
        chosen = set(self.selected_ids())
        self.letters.setRowCount(len(letters))
        for row, letter in enumerate(letters):
            when = time.strftime("%H:%M:%S", time.localtime(letter.failed_at))
            cells = (letter.message_id, letter.reply, ", ".join(letter.recipients),
                     str(letter.attempts))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{text}\n(last tried {when})" if column == 1 else text)
                if column == 0:
                    item.setData(MESSAGE_ID, letter.message_id)
                    item.setFont(mono_font())
                self.letters.setItem(row, column, item)
            if letter.message_id in chosen:
                self.letters.selectRow(row)
        self.retry.setEnabled(bool(self.selected_ids()))

    def selected_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.letters.selectedIndexes()})
        ids = []
        for row in rows:
            item = self.letters.item(row, 0)
            if item is not None:
                ids.append(str(item.data(MESSAGE_ID)))
        return ids

    def show_state(self, text: str, ok: bool | None = None) -> None:
        self.state.setText(text)
        self.state.setStyleSheet(style.result_label(ok))
