"""The local test inbox: start and stop the server off the GUI thread, list and show what
arrives, search it, keep read state, show and save parts, delete, save or copy a message, open
it as a draft or send it on. Every file read, parse, search and write runs on the worker pool;
a delete that fails says so and the list is read again from the folder, so it shows what is
really there. A new arrival never moves the selection or the view of the message being read."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QMessageBox,
    QSpinBox,
    QTreeWidgetItem,
    QWidget,
)

from mailgui.controllers import folders
from mailgui.controllers.checks import InboxChecks
from mailgui.jobs import JobRunner, failure_sentence
from mailgui.model.inbox import (
    DEFAULT_INBOX_PORT,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MESSAGES,
    InboxMessage,
    InboxServer,
    InboxStore,
)
from mailgui.model.inbox_details import (
    MessageDetails,
    compute_details,
    inline_parts,
    write_part,
)
from mailgui.model.inbox_tools import PartPreview, SearchIndex, part_preview, send_on
from mailgui.model.profiles import Profile
from mailgui.model.remote import remote_urls
from mailgui.model.sending import PasswordNeeded
from mailgui.views import style
from mailgui.views.common import BlockSignals, Role, human_size
from mailgui.views.inbox import InboxView

__all__ = ["InboxController", "inbox_limits", "read_details", "summary_html"]

ARRIVALS_EVERY_MS = 16  # new rows join the list at most once per frame (60 Hz)
# rows made in one frame: at most this long (ms) of the GUI thread, the rest in the next frame
# (the list's paint and the probe of a frame need the remainder of the 16 ms)
ARRIVALS_BUDGET_MS = 6.0
# the unread count (the pane's tab) follows a burst at most this often: a new tab text lays
# out the tab bar and the panes again (about 4 ms of the GUI thread); a lone arrival, and the
# last of a burst, are counted at once or within this time
COUNT_EVERY_MS = 100
WARM_AFTER_MS = 400  # after the server started: the viewer made ready for the first message
# Starting the preview's engine takes tens of ms of the GUI thread (200-270 ms measured while a
# 100 MB send kept both cores busy). So the warm-up waits for a calm window: nobody has typed
# for this long (the composer says when the draft is edited: ``note_input``) and no send is
# under way (``busy``): started in the middle of a send, the engine's start was the longest
# frame of that send. It used to wait 1.5 s after the last key, when the engine's start made
# Qt remake the main window's native window (keys typed then were lost); its view is born in a
# native window of its own now, so a pause in typing will do, and the engine is ready before
# a first send, made a second after start, brings a message. An application-wide event filter
# written in Python would see every key too, but PySide6 then wraps objects that are being
# destroyed, and crashes.
WARM_QUIET_MS = 500


def inbox_limits(settings: dict) -> tuple[int, int]:
    """The retention limits in the app's settings ("inbox_max_messages", "inbox_max_bytes";
    0 means no limit), else Mailpit's 500 messages and 1 GB."""
    out = []
    for key, default in (("inbox_max_messages", DEFAULT_MAX_MESSAGES),
                         ("inbox_max_bytes", DEFAULT_MAX_BYTES)):
        value = settings.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        out.append(value if ok else default)
    return out[0], out[1]


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


def _envelope_rows(message: InboxMessage, headers: dict[str, str]) -> list[str]:
    """MAIL FROM, every RCPT (those in no To or Cc header marked Bcc), the client, the time."""
    shown = " ".join(headers.get(k, "") for k in ("to", "cc")).lower()
    rcpts = []
    for rcpt in message.rcpt_tos:
        mark = "" if rcpt.lower() in shown else " <i>(Bcc: in no To or Cc header)</i>"
        rcpts.append(f"{html.escape(rcpt)}{mark}")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.received_at))
    return [
        f"<b>Envelope:</b> MAIL FROM {html.escape(message.mail_from or '<>')}"
        f" → RCPT {', '.join(rcpts) or '(none)'}",
        f"<b>Received:</b> {when} from {html.escape(message.peer or 'an unknown client')}",
    ]


def summary_html(details: MessageDetails, blocked_images: int = 0,
                 message: InboxMessage | None = None) -> str:
    """From, To, Cc, Date, Subject and the attachments, as a mail reader shows them; then the
    envelope, the client and the time it came (what the inbox server recorded)."""
    headers: dict[str, str] = {}
    notes: dict[str, str] = {}
    for i, (name, value) in enumerate(details.headers):
        headers.setdefault(name.lower(), value)
        if i < len(details.header_notes) and details.header_notes[i]:
            notes.setdefault(name.lower(), details.header_notes[i])

    def row(key: str, label: str) -> str:
        mark = (f' <span style="color:{style.ERROR}">⚠ {html.escape(notes[key])}</span>'
                if key in notes else "")
        return f"<b>{label}:</b> {html.escape(headers[key])}{mark}"

    rows = [row(key, label)
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
    if message is not None:
        rows += _envelope_rows(message, headers)
    return "<br>".join(rows)


class LimitsDialog(QDialog):
    """How many messages and how many MB the inbox keeps."""

    def __init__(self, parent: QWidget, max_messages: int, max_bytes: int) -> None:
        super().__init__(parent)
        self.setWindowTitle("Inbox retention")
        self.count = QSpinBox()
        self.count.setRange(0, 1_000_000)
        self.count.setSpecialValueText("no limit")
        self.count.setValue(max_messages)
        self.megabytes = QSpinBox()
        self.megabytes.setRange(0, 1_000_000)
        self.megabytes.setSuffix(" MB")
        self.megabytes.setSpecialValueText("no limit")
        self.megabytes.setValue(max_bytes // 1_000_000)
        form = QFormLayout(self)
        form.addRow("Keep at most (messages):", self.count)
        form.addRow("Keep at most (size):", self.megabytes)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def limits(self) -> tuple[int, int]:
        return self.count.value(), self.megabytes.value() * 1_000_000


class InboxController(QObject):
    received = Signal(object)  # an InboxMessage (queued from another thread, or direct)
    received_many = Signal(object)  # [InboxMessage]: one read of the server's reader thread
    removed = Signal(object)  # ids the retention limits removed (from the reader thread)
    started = Signal(int)
    failed = Signal(str)
    ended = Signal(str)  # the server process ended on its own (emitted from the reader thread)
    status = Signal(str)
    count_changed = Signal(int)  # unread messages
    limits_changed = Signal(int, int)  # max messages, max bytes (0: no limit), to keep
    open_draft = Signal(str)  # the .eml of a received message, to open as a new draft
    searched = Signal(int)  # a search is done: how many messages it found
    sent_on = Signal(str)  # Send on is done: the server's reply, or what went wrong
    checked = Signal(str)  # the server stored a message's checks (from the reader thread)

    def __init__(self, view: InboxView, runner: JobRunner, store: InboxStore,
                 port: int = DEFAULT_INBOX_PORT) -> None:
        super().__init__(view)
        self.view = view
        self.runner = runner
        self._last_input = 0.0  # when the person last typed (note_input)
        # whether the app is busy in a way the warm-up must not cut into (a send under way):
        # set by the main controller
        self.busy: Callable[[], bool] = lambda: False
        self.store = store
        # (the messages of one read from the server's pipe come in one signal: a burst
        # costs the GUI thread one queued call per read, not one per message)
        self.server = InboxServer(store, on_messages=self.received_many.emit,
                                  on_exit=self.ended.emit, on_removed=self.removed.emit,
                                  port=port, on_checked=self.checked.emit)
        self.messages: list[InboxMessage] = []
        self.read: set[str] = set()
        # arrivals wait here for the next frame: the list takes them in one go (a burst of
        # mail adds rows once per frame, not once per message)
        self._arrivals: list[InboxMessage] = []
        self._rows: dict[str, QTreeWidgetItem] = {}  # the list's row of each message shown
        self._arrival_timer = QTimer(self)
        self._arrival_timer.setSingleShot(True)
        self._arrival_timer.setInterval(ARRIVALS_EVERY_MS)
        self._arrival_timer.timeout.connect(self._take_arrivals)
        # the message shown is filled a piece per turn of the event loop (headers, parts,
        # source, text, HTML source, the preview): no one frame does it all; a newer
        # selection replaces the pieces still waiting
        self._show_steps: list[Callable[[], None]] = []
        self._step_timer = QTimer(self)
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(0)
        self._step_timer.timeout.connect(self._next_show_step)
        self._counted_at = 0.0  # when the arrivals last changed the unread count shown
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.timeout.connect(self._count_arrivals)
        # the rows' fonts, made once (a row is bold while unread)
        self._bold = QFont(view.list.font())
        self._bold.setBold(True)
        self._regular = QFont(view.list.font())
        self._regular.setBold(False)
        self.index = SearchIndex(store)
        self.matches: set[str] | None = None  # the search's ids; None: no search
        self._search_generation = 0
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self._search_now)
        self.error = ""
        self._port = 0
        self._shown: MessageDetails | None = None  # the message shown, once fully filled in
        self._filling: MessageDetails | None = None  # the message being filled in, piece by piece
        self._keep_id: str | None = None  # the message being read (stays under "Unread only")
        # Send on: the profiles and how to get a password (set by the main controller)
        self.profiles: Callable[[], list[Profile]] = list
        self.secrets: Callable[[], object] = lambda: None
        self.ask_password: Callable[[Profile, str, Callable[[str | None], None]], None] | None \
            = None
        self.session_password: Callable[[Profile], str | None] = lambda _profile: None
        self.checks = InboxChecks(self)  # the badge column and the Checks tab
        self.checked.connect(self.checks.checked)
        self.received.connect(self._received)
        self.received_many.connect(self._received_many)
        self.removed.connect(self._removed)
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
        view.search.textChanged.connect(lambda _t: self._search_timer.start())
        view.unread_only.toggled.connect(lambda _on: self._fill())
        view.mark_unread.clicked.connect(self.mark_unread)
        view.raw_headers.toggled.connect(lambda _on: self._show_headers())
        view.limits.clicked.connect(self.edit_limits)
        view.save_eml.clicked.connect(self.save_eml)
        view.copy_source.clicked.connect(self.copy_source)
        view.open_draft.clicked.connect(self.open_as_draft)
        view.send_on.clicked.connect(self.send_on_clicked)
        for key, act in view.list_actions.items():
            act.triggered.connect(getattr(view, key).click)
        view.find.triggered.connect(lambda: (view.search.setFocus(), view.search.selectAll()))
        view.set_empty(True)
        view.detail_box.hide()
        self._update_buttons()

    def attach_app(self, app: Any) -> None:
        """What the inbox needs of the app (the main controller): the settings that keep its
        limits, the profiles and passwords for Send on, the composer for Open as new draft."""
        self.profiles = app.profile_store.all
        broker = app.passwords.broker
        self.secrets = lambda: broker.worker_secrets
        self.session_password = lambda profile: broker.plan(profile).password
        self.ask_password = lambda profile, reason, answered: app.passwords.ask(
            profile, reason, answered)
        self.limits_changed.connect(lambda count, size: app.settings.update(
            inbox_max_messages=count, inbox_max_bytes=size))
        self.open_draft.connect(lambda path: app.open_eml(path))
        self.checks.attach_app(app)
        self._update_limits_tip()

    @property
    def running(self) -> bool:
        return self._port != 0 and self.server.running

    @property
    def port(self) -> int:
        """The port, once the GUI thread has been told (so the inbox profile knows it too)."""
        return self._port if self.server.running else 0

    @property
    def unread(self) -> int:
        read = self.read
        return len([m for m in self.messages if m.id not in read])  # (no generator: 2x faster)

    def start(self) -> None:
        """Start the server and load the stored messages, both on the worker pool."""
        self.runner.run(self.server.start, on_done=self._started, on_error=self._failed)
        self.runner.run(lambda: (self.store.list(), self.store.read_ids()),
                        on_done=lambda r: self._loaded(*r),
                        what="list the messages of the local test inbox")

    def stop(self) -> None:
        """Stop the server without waiting: its process ends behind (``finish``)."""
        self._port = 0
        self.server.stop(wait=False)
        self.checks.stop()

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
        QTimer.singleShot(WARM_AFTER_MS, self._warm_viewer)

    def note_input(self) -> None:
        """The person typed (the composer's draft changed): the viewer's warm-up waits."""
        self._last_input = time.monotonic()

    def _warm_viewer(self) -> None:
        """Once the window has settled, do now what the first message shown would otherwise
        do in the middle of a burst (tens of ms of the GUI thread): polish the viewer's widgets
        and start the preview's engine."""
        quiet = (time.monotonic() - self._last_input) * 1000
        if quiet < WARM_QUIET_MS:  # the person is typing: not now
            QTimer.singleShot(int(WARM_QUIET_MS - quiet) + 50, self._warm_viewer)
            return
        if self.busy():  # a send is under way: after it
            QTimer.singleShot(WARM_QUIET_MS, self._warm_viewer)
            return
        box = self.view.detail_box
        if self.view.list.currentItem() is not None or self._arrivals or box.isVisible():
            return  # a message is being shown already: nothing left to warm
        for widget in box.findChildren(QWidget):
            widget.ensurePolished()
        start = getattr(self.view.rendered, "start_engine", None)
        if start is not None:
            start()
        # shown once, hidden at the next turn of the loop: its layout and native parts are
        # made now, not when the first message comes
        box.setVisible(True)
        QTimer.singleShot(0, lambda: box.setVisible(self.view.list.currentItem() is not None))

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

    # -- retention -----------------------------------------------------------------------------

    @property
    def limits(self) -> tuple[int, int]:
        return self.store.max_messages, self.store.max_bytes

    def set_limits(self, max_messages: int, max_bytes: int) -> None:
        """New limits: the server applies them at once (what it removes comes back as
        ``removed``); the main controller keeps them in the settings."""
        self.server.set_limits(max_messages, max_bytes)
        self.limits_changed.emit(*self.limits)
        self._update_limits_tip()

    def _update_limits_tip(self) -> None:
        count, size = self.limits
        total = human_size(size) if size else "any size"
        self.view.limits.setToolTip(
            f"Keeps {count or 'any number of'} messages and {total} in all; the oldest go first")

    def choose_limits(self) -> tuple[int, int] | None:
        """Ask for the limits (tests replace this)."""
        dialog = LimitsDialog(self.view, *self.limits)
        return dialog.limits() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def edit_limits(self) -> None:
        chosen = self.choose_limits()
        if chosen is not None:
            self.set_limits(*chosen)

    def _removed(self, ids: list[str]) -> None:
        """The retention limits removed these: their rows go, one by one (the list is not
        rebuilt: at the limit, every arrival removes one)."""
        gone = set(ids)
        if self._arrivals:
            self._arrivals = [m for m in self._arrivals if m.id not in gone]
        self.index.forget(gone)
        self.checks.forget(gone)
        self.messages = [m for m in self.messages if m.id not in gone]
        if self.read & gone:
            self.read -= gone
        if self.matches is not None:
            self.matches -= gone
        tree = self.view.list
        selected = self.selected_id()
        with BlockSignals(tree):
            for msg_id in gone:
                item = self._rows.pop(msg_id, None)
                if item is not None:
                    tree.takeTopLevelItem(tree.indexOfTopLevelItem(item))
        if selected in gone:
            tree.setCurrentItem(None)
            self._selected(None)
        self.view.set_empty(not self.messages)
        self._update_found()
        self._update_buttons()
        self.count_changed.emit(self.unread)

    # -- the list ------------------------------------------------------------------------------

    def _loaded(self, messages: list[InboxMessage], read: set[str] | None = None) -> None:
        known = {m.id for m in self.messages}
        for message in messages:
            if message.id not in known:
                self.messages.append(message)
        self.messages.sort(key=lambda m: m.received_at)
        if read is not None:
            self.read |= read & {m.id for m in self.messages}
        self._fill()
        self.checks.load_badges([m.id for m in messages])

    def _visible(self, message: InboxMessage) -> bool:
        if self.view.unread_only.isChecked() and message.id in self.read:
            return message.id == self._keep_id  # the one being read stays in the list
        return self.matches is None or message.id in self.matches

    def _fill(self) -> None:
        """The list again, newest first, the selection (and the row under it) kept."""
        tree = self.view.list
        selected = self.selected_id()
        self._keep_id = selected
        bar = tree.verticalScrollBar()
        scroll = bar.value()
        with BlockSignals(tree):
            tree.clear()
            self._rows = {}
            shown = [m for m in self.messages if self._visible(m)]
            tree.addTopLevelItems([self._item(m) for m in reversed(shown)])
            again = self._find_item(selected) if selected else None
            if again is not None:
                tree.setCurrentItem(again)
            bar.setValue(scroll)
        if selected and again is None:
            self._selected(None)
        self.view.set_empty(not self.messages)
        self._update_found()
        self._update_buttons()
        self.count_changed.emit(self.unread)

    def _find_item(self, msg_id: str | None) -> QTreeWidgetItem | None:
        if msg_id is None:
            return None
        return self._rows.get(msg_id)

    def _update_found(self) -> None:
        shown = self.view.list.topLevelItemCount()
        filtered = self.matches is not None or self.view.unread_only.isChecked()
        self.view.found.setText(f"{shown} of {len(self.messages)}" if filtered else "")

    def _item(self, message: InboxMessage) -> QTreeWidgetItem:
        when = time.localtime(message.received_at)
        stamp = time.strftime("%H:%M:%S" if time.localtime()[:3] == when[:3] else "%m-%d %H:%M",
                              when)
        item = QTreeWidgetItem([
            stamp, message.from_header or message.mail_from,
            message.to_header or ", ".join(message.rcpt_tos),
            message.subject.strip() or "(no subject)", human_size(message.size),
        ])
        item.setToolTip(1, f"Envelope from: {message.mail_from}")
        item.setToolTip(2, "Envelope recipients: " + ", ".join(message.rcpt_tos))
        item.setData(0, Role.INBOX_ID, message.id)
        self._rows[message.id] = item  # (every row of the list is made here)
        self.checks.decorate(item, message.id)
        self._mark(item, message.id not in self.read)
        return item

    def _mark(self, item: QTreeWidgetItem, unread: bool) -> None:
        font = self._bold if unread else self._regular
        for column in range(item.columnCount()):
            item.setFont(column, font)
        item.setData(1, Role.UNREAD, unread)
        item.setStatusTip(0, "unread" if unread else "read")

    def _received(self, message: InboxMessage) -> None:
        """A message arrived (queued from the reader thread): it joins the list at the next
        frame, with whatever else arrives until then."""
        self._arrivals.append(message)
        if not self._arrival_timer.isActive():
            self._arrival_timer.start()

    def _received_many(self, messages: list[InboxMessage]) -> None:
        self._arrivals.extend(messages)
        if not self._arrival_timer.isActive():
            self._arrival_timer.start()

    def flush_arrivals(self) -> None:
        """Take the waiting arrivals into the list now, all of them (the frame timer takes
        a frame's worth at a time)."""
        self._arrival_timer.stop()
        self._take_arrivals(budget_ms=None)

    def _take_arrivals(self, budget_ms: float | None = ARRIVALS_BUDGET_MS) -> None:
        """The arrivals join the list: as many as ``budget_ms`` of rows allows (None: all);
        the rest wait for the next frame, in the order they came."""
        start = time.perf_counter()
        known = {m.id for m in self.messages}
        new: list[InboxMessage] = []
        items: list[QTreeWidgetItem] = []
        searching = self.matches is not None  # (then they show when the search finds them)
        taken = 0
        for message in self._arrivals:
            if budget_ms is not None and items and \
                    (time.perf_counter() - start) * 1000 >= budget_ms:
                break
            taken += 1
            if message.id not in known:
                known.add(message.id)
                new.append(message)
                if not searching and self._visible(message):
                    items.append(self._item(message))
        self._arrivals = self._arrivals[taken:]
        if self._arrivals:
            self._arrival_timer.start()  # the rest in the next frame
        if not new:
            return
        self.messages.extend(new)
        if searching:
            self._search_now()
        elif items:
            tree = self.view.list
            bar = tree.verticalScrollBar()
            at_top = bar.value() == bar.minimum()
            top = tree.itemAt(0, 0)
            with BlockSignals(tree):
                items.reverse()
                tree.insertTopLevelItems(0, items)
            if not at_top and top is not None:  # the rows being looked at stay put
                tree.scrollToItem(top, tree.ScrollHint.PositionAtTop)
        self.view.set_empty(False)
        self._update_found()
        self._update_buttons()
        wait = COUNT_EVERY_MS - (time.monotonic() - self._counted_at) * 1000
        if wait <= 0:
            self._count_arrivals()
        elif not self._count_timer.isActive():
            self._count_timer.start(int(wait) + 1)
        if self.view.list.currentItem() is None and self.view.list.topLevelItemCount():
            # nothing is being read: the first to arrive is shown (what you just sent, say),
            # as if each had come in a frame of its own; a message being read is never
            # replaced. (In the next frame: the rows are painted before the viewer fills.)
            first = next((m.id for m in new if self._visible(m)), None)
            QTimer.singleShot(ARRIVALS_EVERY_MS, self, lambda: self._show_first(first))

    def _count_arrivals(self) -> None:
        self._count_timer.stop()
        self._counted_at = time.monotonic()
        self.count_changed.emit(self.unread)

    def _show_first(self, msg_id: str | None) -> None:
        tree = self.view.list
        if tree.currentItem() is not None or not tree.topLevelItemCount():
            return
        tree.setCurrentItem(self._find_item(msg_id) or tree.topLevelItem(0))

    # -- search --------------------------------------------------------------------------------

    def _search_now(self) -> None:
        query = self.view.search.text().strip()
        self._search_generation += 1
        generation = self._search_generation
        if not query:
            self.matches = None
            self._fill()
            return
        messages = list(self.messages)
        self.runner.run(self.index.search, query, messages,
                        on_done=lambda ids: self._searched(generation, ids),
                        on_error=lambda exc: self.status.emit(failure_sentence("search", exc)))

    def _searched(self, generation: int, ids: set[str]) -> None:
        if generation != self._search_generation:
            return  # a newer search is under way
        self.matches = ids
        self._fill()
        self.searched.emit(len(ids))


    # -- read state ----------------------------------------------------------------------------

    def _set_read(self, msg_id: str, read: bool) -> None:
        if (msg_id in self.read) == read:
            return
        if read:
            self.read.add(msg_id)
        else:
            self.read.discard(msg_id)
        item = self._find_item(msg_id)
        if item is not None:
            self._mark(item, not read)
        self.runner.write(self.store.save_read_ids, set(self.read),
                          what="save which inbox messages are read")
        self.count_changed.emit(self.unread)

    def mark_unread(self) -> None:
        msg_id = self.selected_id()
        if msg_id is not None:
            self._set_read(msg_id, False)

    def _update_buttons(self) -> None:
        selected = self.view.list.currentItem() is not None
        v = self.view
        for button in (v.delete, v.mark_unread, v.save_eml, v.copy_source, v.open_draft,
                       v.send_on):
            button.setEnabled(selected)
        for act in v.list_actions.values():
            act.setEnabled(selected)
        v.clear.setEnabled(bool(self.messages))

    # -- the message shown ---------------------------------------------------------------------

    def message(self, msg_id: str | None) -> InboxMessage | None:
        return next((m for m in self.messages if m.id == msg_id), None)

    def _selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        self._update_buttons()
        v = self.view
        v.detail_box.setVisible(item is not None)  # (its buttons act on the selected message)
        if item is None:
            self._shown = None
            self._filling = None
            self._show_steps = []
            self.checks.selected(None)
            v.headers.clear()
            v.parts.clear()
            v.source.clear()
            v.text.clear()
            v.html_source.clear()
            v.rendered.clear()
            return
        msg_id = item.data(0, Role.INBOX_ID)
        self._keep_id = msg_id
        self._show_steps = []  # what was being filled in for another message stops
        self._filling = None
        self._set_read(msg_id, True)
        self.checks.selected(msg_id)
        self.runner.run(_details_for_view, self.store, msg_id, on_done=lambda r: self._show(*r),
                        on_error=lambda exc: self._unreadable(msg_id, exc))

    def _unreadable(self, msg_id: str, exc: BaseException) -> None:
        if self.selected_id() != msg_id:
            return
        self.view.rendered.show_text(f"Can't read it: {exc}")

    def _show(self, details: MessageDetails, urls: list[str] | None = None,
              parts: dict[str, tuple[str, bytes]] | None = None) -> None:
        v = self.view
        current = v.list.currentItem()
        if current is None or current.data(0, Role.INBOX_ID) != details.id:
            return
        self._shown = None  # (until the last piece is in)
        self._filling = details

        def summary() -> None:
            v.summary.setText(summary_html(details, message=self.message(details.id)))
            self._show_headers(details)

        def text() -> None:
            v.text.setPlainText(details.text or "(This message has no text/plain part.)")

        def html_source() -> None:
            v.html_source.setPlainText(details.html or "(This message has no HTML part.)")
            v.body.setTabEnabled(2, bool(details.html))

        def preview() -> None:
            if details.html:
                # remote resources load only when asked (the bar above it), for this message
                v.rendered.show_html(details.html, urls or [], parts)
            else:
                v.rendered.show_text(details.text)
            v.body.setTabText(0, "&HTML" if details.html else "&Message")

        def done() -> None:
            self._shown = details
            self._filling = None
            self.checks.details_shown(details)

        self._show_steps = [summary, lambda: self._show_parts(details),
                            lambda: v.source.setPlainText(details.source), text, html_source,
                            preview, done]
        self._next_show_step()

    def _next_show_step(self) -> None:
        if not self._show_steps:
            return
        step = self._show_steps.pop(0)
        step()
        if self._show_steps:
            self._step_timer.start()

    def _show_parts(self, details: MessageDetails) -> None:
        v = self.view
        v.parts.clear()
        self._show_part(None)
        stack: list[QTreeWidgetItem] = []
        for index, part in enumerate(details.parts):
            item = QTreeWidgetItem([
                part.content_type + (f"; {part.charset}" if part.charset else ""),
                part.filename, human_size(part.size) if part.size else "", part.disposition,
            ])
            item.setData(0, Role.PART_INDEX, index)
            item.setData(1, Role.IS_MULTIPART, part.content_type.startswith("multipart/"))
            while len(stack) > part.depth:
                stack.pop()
            if stack:
                stack[-1].addChild(item)
            else:
                v.parts.addTopLevelItem(item)
            stack.append(item)
        v.parts.expandAll()

    def _show_headers(self, details: MessageDetails | None = None) -> None:
        v = self.view
        details = details or self._shown or self._filling
        v.headers.clear()
        if details is None:
            return
        raw = v.raw_headers.isChecked() and len(details.raw_headers) == len(details.headers)
        rows = details.raw_headers if raw else details.headers
        for index, (name, value) in enumerate(rows):
            item = QTreeWidgetItem([name, value])
            note = details.header_notes[index] if index < len(details.header_notes) else ""
            if note:
                item.setText(0, f"\u26a0 {name}")
                item.setToolTip(0, note)
                item.setToolTip(1, note)
                item.setForeground(0, Qt.GlobalColor.darkRed)
            v.headers.addTopLevelItem(item)

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

    # -- parts ---------------------------------------------------------------------------------

    def _part_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        container = item is not None and bool(item.data(1, Role.IS_MULTIPART))
        self.view.save_part.setEnabled(item is not None and not container)
        details, msg_id = self._shown or self._filling, self.selected_id()
        if item is None or container or details is None or msg_id != details.id:
            self._show_part(None)
            return
        index = int(item.data(0, Role.PART_INDEX))
        part = details.parts[index]

        def job() -> tuple[PartPreview, QImage | None]:
            preview = part_preview(self.store, msg_id, index, part.content_type, part.charset,
                                   part.size)
            image = QImage.fromData(preview.data) if preview.kind == "image" else None
            return preview, image  # (a QImage is made off the GUI thread; a QPixmap is not)

        self.runner.run(job, on_done=lambda r: self._part_ready(msg_id, index, *r),
                        on_error=lambda exc: self._show_part(
                            None, failure_sentence("show the part", exc)))

    def _part_ready(self, msg_id: str, index: int, preview: PartPreview,
                    image: QImage | None) -> None:
        item = self.view.parts.currentItem()
        if self.selected_id() != msg_id or item is None or item.data(0, Role.PART_INDEX) != index:
            return
        self._show_part(preview, image=image)

    def _show_part(self, preview: PartPreview | None, note: str = "", *,
                   image: QImage | None = None) -> None:
        v = self.view
        if preview is None or preview.kind == "other" or (
                preview.kind == "image" and (image is None or image.isNull())):
            if preview is not None and preview.kind == "image":
                note = f"This {preview.content_type} image can't be shown: save it instead."
            v.part_note.setText(note or (preview.note if preview else "")
                                or "Select a part to see it here.")
            v.part_view.setCurrentWidget(v.part_note)
        elif preview.kind == "image":
            v.part_image.setPixmap(QPixmap.fromImage(image))
            v.part_view.setCurrentWidget(v.part_image_page)
        else:
            v.part_text.setPlainText(preview.text + (f"\n\n{preview.note}" if preview.note
                                                     else ""))
            v.part_view.setCurrentWidget(v.part_text)

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
        if msg_id is None or item is None or item.data(1, Role.IS_MULTIPART):
            return
        index = int(item.data(0, Role.PART_INDEX))
        name = item.text(1) or f"part-{index}"
        path = self.choose_part_path(name)
        if not path:
            return

        def save() -> tuple[str, int]:
            # decoded and written chunk by chunk: a 100 MB attachment never holds the GIL long
            _name, size = write_part(self.store.read(msg_id), index, Path(path))
            return path, size

        self.runner.run(
            save,
            on_done=lambda result: self.status.emit(
                f"Saved {human_size(result[1])} to {result[0]}."),
            on_error=lambda exc: self.status.emit(failure_sentence("save the part", exc)),
        )

    def selected_id(self) -> str | None:
        item = self.view.list.currentItem()
        return item.data(0, Role.INBOX_ID) if item is not None else None

    # -- the whole message: save, copy, open as a draft, send on --------------------------------

    def choose_eml_path(self, suggested: str) -> str:
        """Ask where to save the message (tests replace this)."""
        path, _filter = QFileDialog.getSaveFileName(self.view, "Save message",
                                                    folders.start_at(suggested),
                                                    "Email messages (*.eml)")
        folders.remember(path)
        return path

    def _suggested_name(self, message: InboxMessage | None) -> str:
        subject = (message.subject if message else "") or "message"
        safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in subject).strip(" .")
        return f"{safe[:60] or 'message'}.eml"

    def save_eml(self) -> None:
        msg_id = self.selected_id()
        if msg_id is None:
            return
        path = self.choose_eml_path(self._suggested_name(self.message(msg_id)))
        if not path:
            return
        from mailgui.model.paths import atomic_write_bytes

        def save() -> tuple[str, int]:
            data = self.store.read(msg_id)  # the bytes as received, unchanged
            atomic_write_bytes(Path(path), data)
            return path, len(data)

        self.runner.write(save, on_done=lambda r: self.status.emit(
            f"Saved the message ({human_size(r[1])}) to {r[0]}."),
            on_error=lambda exc: self.status.emit(failure_sentence("save the message", exc)))

    def copy_source(self) -> None:
        msg_id = self.selected_id()
        if msg_id is None:
            return

        def read() -> str:
            return self.store.read(msg_id).decode("utf-8", "replace")

        def copied(text: str) -> None:
            QGuiApplication.clipboard().setText(text)
            self.status.emit(f"Copied the source ({len(text):,} characters).")

        self.runner.run(read, on_done=copied,
                        on_error=lambda exc: self.status.emit(failure_sentence("copy", exc)))

    def open_as_draft(self) -> None:
        """Open the message as a new draft (as Thunderbird's Edit as New): the composer reads
        the .eml as it reads any."""
        msg_id = self.selected_id()
        if msg_id is not None:  # (a message just received may have no .eml yet: written)
            self.runner.run(self.store.file, msg_id,
                            on_done=lambda path: self.open_draft.emit(str(path)),
                            on_error=lambda exc: self.status.emit(
                                failure_sentence("open the message", exc)))

    def choose_profile(self, profiles: list[Profile]) -> Profile | None:
        """Ask which SMTP profile to send on through (tests replace this)."""
        names = [f"{p.name} ({p.describe()})" for p in profiles]
        name, ok = QInputDialog.getItem(self.view, "Send on via profile",
                                        "Send the message exactly as received through:",
                                        names, 0, False)
        return profiles[names.index(name)] if ok and name in names else None

    def send_on_clicked(self) -> None:
        msg_id = self.selected_id()
        message = self.message(msg_id)
        if message is None:
            return
        profiles = [p for p in self.profiles() if p.kind == "smtp"]
        if not profiles:
            self.status.emit("Send on needs an SMTP profile: add one in Profiles first.")
            return
        profile = self.choose_profile(profiles)
        if profile is not None:
            self.send_on(message, profile, self.session_password(profile))


    def send_on(self, message: InboxMessage, profile: Profile, password: str | None = None
                ) -> None:
        """Send the received bytes unchanged, with the received envelope, through ``profile``
        on the worker."""
        secrets = self.secrets()

        def job() -> str:
            return send_on(profile, password, secrets, message.mail_from,  # type: ignore[arg-type]
                           list(message.rcpt_tos), self.store.read(message.id))

        def failed(exc: BaseException) -> None:
            if isinstance(exc, PasswordNeeded) and self.ask_password is not None:
                self.ask_password(profile, exc.reason,
                                  lambda typed: typed is not None
                                  and self.send_on(message, profile, typed))
                return
            text = failure_sentence(f"send the message on via {profile.name}", exc)
            self.status.emit(text)
            self.sent_on.emit(text)

        def done(reply: str) -> None:
            text = f"Sent on via {profile.name}: the server said {reply}."
            self.status.emit(text)
            self.sent_on.emit(text)

        self.runner.run(job, on_done=done, on_error=failed)

    # -- delete --------------------------------------------------------------------------------

    def delete_selected(self) -> None:
        msg_id = self.selected_id()
        if msg_id is None:
            return
        self.messages = [m for m in self.messages if m.id != msg_id]
        self.runner.write(self.store.delete, msg_id,
                          on_done=lambda _r: self.server.forget([msg_id]),
                          on_error=lambda exc: self._delete_failed("delete the message", exc,
                                                                   msg_id))
        self._fill()

    def _delete_failed(self, what: str, exc: BaseException, msg_id: str | None = None) -> None:
        """Say so, and list again what the folder holds (what a restart would show), with
        the message that is still there selected again."""
        self.server.rescan()
        self.status.emit(failure_sentence(what, exc))
        self.runner.run(self.store.list,
                        on_done=lambda messages: self._relisted(messages, msg_id),
                        what="list the messages of the local test inbox")

    def _relisted(self, messages: list[InboxMessage], select: str | None = None) -> None:
        selected = select or self.selected_id()
        self.messages = sorted(messages, key=lambda m: m.received_at)
        self._fill()
        item = self._find_item(selected)
        if item is not None:
            self.view.list.setCurrentItem(item)

    def confirm_clear(self) -> bool:
        answer = QMessageBox.question(self.view, "Delete all",
                                      f"Delete all {len(self.messages)} received messages?")
        return answer == QMessageBox.StandardButton.Yes

    def clear(self) -> None:
        self.flush_arrivals()  # what has arrived is deleted too, and asked about
        if not self.messages or not self.confirm_clear():
            return
        self.messages = []
        # (the server is told which went, from the worker: also when some could not)
        self.runner.write(self.store.clear, self.server.forget, on_done=lambda _r: None,
                          on_error=lambda exc: self._delete_failed("delete the messages", exc))
        self._fill()

