"""The local test inbox: start and stop the server off the GUI thread, list and show what
arrives, save a part, delete. Every file read and write runs on the worker pool; a delete that
fails says so and the list is read again from the folder, so it shows what is really there."""

from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QTreeWidgetItem

from mailgui.controllers import folders
from mailgui.jobs import JobRunner, failure_sentence
from mailgui.model.inbox import DEFAULT_INBOX_PORT, InboxMessage, InboxServer, InboxStore
from mailgui.model.inbox_details import (
    MessageDetails,
    compute_details,
    inline_parts,
    write_part,
)
from mailgui.model.remote import remote_urls
from mailgui.views.common import human_size
from mailgui.views.inbox import InboxView

__all__ = ["InboxController", "read_details", "summary_html"]


def read_details(store: InboxStore, msg_id: str) -> MessageDetails:
    """What the viewer shows of one received message (worker side). The inbox server stored
    it when the message came in, so this only loads a small JSON file. A message stored by an
    older mailgui is read and measured here once (big bodies in chunks, never by the email
    package), and its details are kept for next time."""
    details = store.details(msg_id)
    if details is not None:
        return details
    details = compute_details(store.read(msg_id), msg_id)
    try:
        store.save_details(details)
    except OSError:
        pass
    return details


def _details_for_view(store: InboxStore, msg_id: str
                      ) -> tuple[MessageDetails, list[str], dict[str, tuple[str, bytes]]]:
    """Worker side: the details, the HTML's remote URLs (a Python parse of up to 1 MB of
    HTML, which the GUI thread would otherwise do at every selection) and the inline parts
    its ``cid:`` URLs show."""
    details = read_details(store, msg_id)
    if not details.html:
        return details, [], {}
    parts = inline_parts(store.read(msg_id)) if "cid:" in details.html.lower() else {}
    return details, remote_urls(details.html), parts


def summary_html(details: MessageDetails, blocked_images: int = 0) -> str:
    """From, To, Cc, Date, Subject and the attachments, as a mail reader shows them."""
    headers: dict[str, str] = {}
    for name, value in details.headers:
        headers.setdefault(name.lower(), value)
    rows = [f"<b>{label}:</b> {html.escape(headers[key])}"
            for key, label in (("from", "From"), ("to", "To"), ("cc", "Cc"), ("date", "Date"),
                               ("subject", "Subject")) if headers.get(key)]
    files = [f"{html.escape(p.filename or p.content_type)} ({human_size(p.size)})"
             for p in details.parts
             if p.disposition == "attachment" or (p.filename and p.disposition != "inline")]
    if files:
        rows.append(f"<b>Attachments:</b> {', '.join(files)} \u2014 see Parts to save one")
    if blocked_images:
        rows.append(f"<i>{blocked_images} remote image{'s' if blocked_images != 1 else ''} "
                    "not loaded (nothing is fetched from the network unless you ask)</i>")
    return "<br>".join(rows)


class InboxController(QObject):
    received = Signal(object)  # InboxMessage, emitted from the server's reader thread -> queued
    started = Signal(int)
    failed = Signal(str)
    ended = Signal(str)  # the server process ended on its own (emitted from the reader thread)
    status = Signal(str)
    count_changed = Signal(int)

    def __init__(self, view: InboxView, runner: JobRunner, store: InboxStore,
                 port: int = DEFAULT_INBOX_PORT) -> None:
        super().__init__(view)
        self.view = view
        self.runner = runner
        self.store = store
        self.server = InboxServer(store, on_message=self.received.emit, on_exit=self.ended.emit,
                                  port=port)
        self.messages: list[InboxMessage] = []
        self.error = ""
        self._port = 0
        self.received.connect(self._received)
        self.ended.connect(self._ended)
        view.list.currentItemChanged.connect(self._selected)
        view.rendered.blocked_changed.connect(self._blocked_changed)
        view.load_remote.clicked.connect(self.load_remote_images)
        view.delete.clicked.connect(self.delete_selected)
        view.list_delete.triggered.connect(self.delete_selected)
        view.clear.clicked.connect(self.clear)
        view.parts.currentItemChanged.connect(self._part_selected)
        view.parts.itemDoubleClicked.connect(lambda *_a: self.save_selected_part())
        view.save_part.clicked.connect(self.save_selected_part)
        view.set_empty(True)
        view.detail.hide()
        self._update_buttons()

    @property
    def running(self) -> bool:
        return self._port != 0 and self.server.running

    @property
    def port(self) -> int:
        """The port, once the GUI thread has been told (so the inbox profile knows it too)."""
        return self._port if self.server.running else 0

    def start(self) -> None:
        """Start the server and load the stored messages, both on the worker pool."""
        self.runner.run(self.server.start, on_done=self._started, on_error=self._failed)
        self.runner.run(self.store.list, on_done=self._loaded,
                        what="list the messages of the local test inbox")

    def stop(self) -> None:
        """Stop the server without waiting: its process ends behind (``finish``)."""
        self._port = 0
        self.server.stop(wait=False)

    def finish(self, timeout: float | None = None) -> bool:
        """Wait for a stopped server's process to be gone; True if it is."""
        return self.server.wait_stopped(timeout)

    def _started(self, port: int) -> None:
        self._port = port
        fallback = self.server.fallback_reason
        self.view.status.setText(
            f"Listening on <b>127.0.0.1:{port}</b> (SMTP, no TLS, no login). Any address works; "
            "nothing leaves this computer."
            + (f" Not on the usual port: {html.escape(fallback)}." if fallback else "")
        )
        self.started.emit(port)

    def _failed(self, exc: BaseException) -> None:
        self.error = str(exc)
        self.view.status.setText(f"The local test inbox could not start: {exc}")
        self.view.status.setStyleSheet("color: #9b1c1c;")
        self.failed.emit(self.error)

    def _ended(self, reason: str) -> None:
        self.error = reason
        self.view.status.setText(f"The local test inbox stopped: {reason}. Restart mailgui to "
                                 "receive messages again.")
        self.view.status.setStyleSheet("color: #9b1c1c;")

    def _loaded(self, messages: list[InboxMessage]) -> None:
        known = {m.id for m in self.messages}
        for message in messages:
            if message.id not in known:
                self.messages.append(message)
        self.messages.sort(key=lambda m: m.received_at)
        self._fill()

    def _fill(self) -> None:
        tree = self.view.list
        tree.clear()
        for message in self.messages:
            tree.insertTopLevelItem(0, self._item(message))
        self.view.set_empty(not self.messages)
        self._update_buttons()
        self.count_changed.emit(len(self.messages))

    def _item(self, message: InboxMessage) -> QTreeWidgetItem:
        when = time.localtime(message.received_at)
        stamp = time.strftime("%H:%M:%S" if time.localtime()[:3] == when[:3] else "%m-%d %H:%M",
                              when)
        item = QTreeWidgetItem([
            stamp, message.from_header or message.mail_from,
            message.to_header or ", ".join(message.rcpt_tos),
            message.subject or "(no subject)", human_size(message.size),
        ])
        item.setToolTip(1, f"Envelope from: {message.mail_from}")
        item.setToolTip(2, "Envelope recipients: " + ", ".join(message.rcpt_tos))
        item.setData(0, 256, message.id)
        return item

    def _received(self, message: InboxMessage) -> None:
        if any(m.id == message.id for m in self.messages):
            return
        self.messages.append(message)
        self.view.list.insertTopLevelItem(0, self._item(message))
        self.view.set_empty(False)
        self.view.list.setCurrentItem(self.view.list.topLevelItem(0))
        self._update_buttons()
        self.count_changed.emit(len(self.messages))

    def _update_buttons(self) -> None:
        self.view.delete.setEnabled(self.view.list.currentItem() is not None)
        self.view.clear.setEnabled(bool(self.messages))

    def _selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        self._update_buttons()
        v = self.view
        v.detail.setVisible(item is not None)
        if item is None:
            v.headers.clear()
            v.parts.clear()
            v.source.clear()
            v.rendered.clear()
            return
        msg_id = item.data(0, 256)
        self.runner.run(_details_for_view, self.store, msg_id, on_done=lambda r: self._show(*r),
                        on_error=lambda exc: v.rendered.show_text(f"Can't read it: {exc}"))

    def _show(self, details: MessageDetails, urls: list[str] | None = None,
              parts: dict[str, tuple[str, bytes]] | None = None) -> None:
        v = self.view
        current = v.list.currentItem()
        if current is None or current.data(0, 256) != details.id:
            return
        v.headers.clear()
        for name, value in details.headers:
            v.headers.addTopLevelItem(QTreeWidgetItem([name, value]))
        v.parts.clear()
        stack: list[QTreeWidgetItem] = []
        for index, part in enumerate(details.parts):
            item = QTreeWidgetItem([
                part.content_type + (f"; {part.charset}" if part.charset else ""),
                part.filename, human_size(part.size) if part.size else "", part.disposition,
            ])
            item.setData(0, 256, index)
            item.setData(1, 256, part.content_type.startswith("multipart/"))
            while len(stack) > part.depth:
                stack.pop()
            if stack:
                stack[-1].addChild(item)
            else:
                v.parts.addTopLevelItem(item)
            stack.append(item)
        v.parts.expandAll()
        v.source.setPlainText(details.source)
        if details.html:
            # remote resources load only when asked, for this message (the bar above it)
            v.rendered.show_html(details.html, urls or [], parts)
        else:
            v.rendered.show_text(details.text)
        # (the bar above the preview says how many remote images it blocked)
        v.summary.setText(summary_html(details))

    def _blocked_changed(self, count: int) -> None:
        v = self.view
        # the simple preview (no browser engine) never loads remote images in the inbox
        can_load = v.rendered.fallback is None
        v.load_remote.setVisible(can_load)
        if count:
            v.remote_label.setText(
                f"{count} remote image{'s' if count != 1 else ''} blocked for your privacy.")
        v.remote_bar.setVisible(bool(count))

    def load_remote_images(self) -> None:
        """Load the remote images of the message shown, and of no other."""
        self.view.rendered.allow_remote()

    def _part_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        self.view.save_part.setEnabled(item is not None and not item.data(1, 256))

    def choose_part_path(self, suggested: str) -> str:
        """Ask where to save a part (tests replace this)."""
        path, _filter = QFileDialog.getSaveFileName(self.view, "Save part",
                                                    folders.start_at(suggested))
        folders.remember(path)
        return path

    def save_selected_part(self) -> None:
        """Save the selected part of the selected message; reading and writing run on the
        worker pool."""
        msg_id = self.selected_id()
        item = self.view.parts.currentItem()
        if msg_id is None or item is None or item.data(1, 256):
            return
        index = int(item.data(0, 256))
        name = item.text(1) or f"part-{index}"
        path = self.choose_part_path(name)
        if not path:
            return

        def save() -> tuple[str, int]:
            # decoded and written chunk by chunk: a 100 MB attachment never holds the GIL long
            _name, size = write_part(self.store.path(msg_id), index, Path(path))
            return path, size

        self.runner.run(
            save,
            on_done=lambda result: self.status.emit(
                f"Saved {human_size(result[1])} to {result[0]}."),
            on_error=lambda exc: self.status.emit(failure_sentence("save the part", exc)),
        )

    def selected_id(self) -> str | None:
        item = self.view.list.currentItem()
        return item.data(0, 256) if item is not None else None

    def delete_selected(self) -> None:
        msg_id = self.selected_id()
        if msg_id is None:
            return
        self.messages = [m for m in self.messages if m.id != msg_id]
        self.runner.write(self.store.delete, msg_id,
                          on_error=lambda exc: self._delete_failed("delete the message", exc,
                                                                   msg_id))
        self._fill()

    def _delete_failed(self, what: str, exc: BaseException, msg_id: str | None = None) -> None:
        """Say so, and list again what the folder holds (what a restart would show), with
        the message that is still there selected again."""
        self.status.emit(failure_sentence(what, exc))
        self.runner.run(self.store.list,
                        on_done=lambda messages: self._relisted(messages, msg_id),
                        what="list the messages of the local test inbox")

    def _relisted(self, messages: list[InboxMessage], select: str | None = None) -> None:
        selected = select or self.selected_id()
        self.messages = sorted(messages, key=lambda m: m.received_at)
        self._fill()
        for index in range(self.view.list.topLevelItemCount()):
            item = self.view.list.topLevelItem(index)
            if item.data(0, 256) == selected:
                self.view.list.setCurrentItem(item)

    def confirm_clear(self) -> bool:
        answer = QMessageBox.question(self.view, "Delete all",
                                      f"Delete all {len(self.messages)} received messages?")
        return answer == QMessageBox.StandardButton.Yes

    def clear(self) -> None:
        if not self.messages or not self.confirm_clear():
            return
        self.messages = []
        self.runner.write(self.store.clear,
                          on_error=lambda exc: self._delete_failed("delete the messages", exc))
        self._fill()
