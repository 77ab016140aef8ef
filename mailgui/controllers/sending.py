"""Send: check the draft, get a password if needed, run the send job, show progress, cancel,
show the outcome (banner, transcript, Sent log, console and memory panes)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QTreeWidgetItem

from mailgui.controllers.compose import ComposeController
from mailgui.controllers.profiles import ProfilesController
from mailgui.jobs import JobRunner, SendJob
from mailgui.model.draft import Draft, new_date
from mailgui.model.message import draft_problems
from mailgui.model.profiles import Profile
from mailgui.model.sending import SendOutcome, transcript_line
from mailgui.model.sentlog import SentEntry, SentLog
from mailgui.model.source import fold_bytes
from mailgui.views.common import human_size
from mailgui.views.main_window import MainWindow

ABANDON_AFTER_MS = 1500
SENT_ROWS = 2000  # the Sent pane lists the newest sends only (the log file keeps them all)


def memory_source(message: object) -> str:
    from mailcore.wire import serialize

    return fold_bytes(serialize(message, linesep="\r\n").chunks())[0]


def _from_server(reply: str) -> bool:
    """True if ``reply`` is an SMTP answer ("535 5.7.8 ...") rather than a local error."""
    return bool(re.match(r"\d{3}\b", reply)) or ": " in reply and bool(
        re.search(r": \d{3}\b", reply))


class SendController(QObject):
    finished = Signal(object)  # SendOutcome
    started = Signal()

    def __init__(self, window: MainWindow, runner: JobRunner, compose: ComposeController,
                 profiles: ProfilesController, sent_log: SentLog,
                 inbox_running: Callable[[], bool]) -> None:
        super().__init__(window)
        self.window = window
        self.runner = runner
        self.compose = compose
        self.profiles = profiles
        self.sent_log = sent_log
        self.inbox_running = inbox_running
        self.job: SendJob | None = None
        self.job_profile: Profile | None = None
        self.last_profile: Profile | None = None  # the profile of the last finished send
        self.asking_password = False
        self.abandoned: set[SendJob] = set()
        self.captured: list[tuple[float, object]] = []
        self.last_outcome: SendOutcome | None = None
        self.last_folder = ""
        w = window
        w.act_send.triggered.connect(lambda: self.send())
        w.act_cancel.triggered.connect(self.cancel)
        w.cancel.clicked.connect(self.cancel)
        w.compose.banner.action_clicked.connect(self._banner_action)
        w.console.clear.clicked.connect(w.console.text.clear)
        w.memory.clear.clicked.connect(self.clear_memory)
        w.memory.list.currentItemChanged.connect(self._memory_selected)
        w.sent.list.currentItemChanged.connect(self._sent_selected)
        self._banner_action_fn: Callable[[], None] | None = None
        self.sent_entries: list[SentEntry] = []  # the rows of the Sent pane, oldest first
        self.sent_hidden = 0  # entries of the log that are not listed
        self.runner.run(sent_log.tail, SENT_ROWS,
                        on_done=lambda result: self._sent_loaded(*result))

    @property
    def sending(self) -> bool:
        return self.job is not None or self.asking_password

    # -- sending --------------------------------------------------------------------------
    def banner(self, kind: str, text: str, detail: str = "", action: str = "",
               action_fn: Callable[[], None] | None = None,
               detail_label: str = "Server reply") -> None:
        self._banner_action_fn = action_fn
        self.window.compose.banner.detail_button.setText(detail_label)
        self.window.compose.banner.detail_button.setAccessibleName(detail_label)
        self.window.compose.banner.show_message(kind, text, detail, action)

    def _banner_action(self) -> None:
        if self._banner_action_fn is not None:
            self._banner_action_fn()

    def send(self, password: str | None = None) -> SendJob | None:
        if self.sending:
            return None
        draft = self.compose.draft
        profile = self.profiles.current()
        if profile is None:
            self.banner("error", "Choose where to send the message in \u201cSend via\u201d.")
            return None
        problems = draft_problems(draft, profile)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.banner("error", f"Not sent: {first.message}{more}")
            edits = self.window.compose.address_edits
            if first.field in edits:
                edits[first.field].setFocus()
            elif first.field == "headers":
                self.window.compose.tabs.setCurrentIndex(2)
            return None
        if profile.kind == "inbox" and not (self.inbox_running() and profile.port):
            self.banner("error", "The local test inbox is not running, so nothing can be "
                        "delivered to it. Restart mailgui or choose another target.")
            return None
        if password is None:
            password = self.profiles.session_passwords.get(profile.id)
        if profile.needs_password and password is None and self.profiles.keyring_usable is False:
            password = self.profiles.ask_password(profile, self.profiles.keyring_status.sentence)
            if password is None:
                self.banner("warning", "Not sent: no password was given.")
                return None
        # The message is dated when it is sent. The draft keeps that Date (with its Message-ID
        # and boundaries), so the source pane shows the very bytes that go out.
        draft.date = new_date()
        self.compose.changed.emit()
        return self._start(draft.copy(), profile, password)

    def _start(self, snapshot: Draft, profile: Profile, password: str | None) -> SendJob:
        """Send ``snapshot`` (a copy of the draft) through ``profile`` on the worker pool."""
        secrets = self.profiles.secrets if self.profiles.keyring_usable is not False else None
        job = SendJob(snapshot, profile, password=password, secrets=secrets,
                      sent_log=self.sent_log)
        job.signals.progress.connect(lambda ph, d, t, j=job: self._progress(j, ph, d, t))
        job.signals.transcript.connect(lambda ev, text, j=job: self._transcript(j, ev, text))
        job.signals.finished.connect(lambda outcome, j=job: self._finished(j, outcome))
        job.signals.failed.connect(lambda exc, j=job: self._crashed(j, exc))
        self.job = job
        self.job_profile = profile
        self._busy(True, f"Sending via {profile.name}\u2026")
        self.window.transcript.text.clear()
        self.window.transcript.result.setText(f"Sending via {profile.name}\u2026")
        self.window.compose.banner.hide()
        self.started.emit()
        self.runner.start(job)
        return job

    def _busy(self, busy: bool, text: str = "") -> None:
        w = self.window
        # While a message goes out, where it goes can't change ("Send via", the profile
        # editor's Use button): what the window shows is where it is going.
        self.profiles.lock_target(busy)
        w.act_send.setEnabled(not busy)
        w.act_cancel.setEnabled(busy)
        w.cancel.setVisible(busy)
        w.cancel.setEnabled(busy)
        w.progress.setVisible(busy)
        if busy:
            w.progress.setRange(0, 0)
            w.progress.setFormat(text)
            w.statusBar().showMessage(text)

    def _progress(self, job: SendJob, phase: str, done: int, total: int) -> None:
        if job is not self.job:
            return
        bar = self.window.progress
        if phase == "sending" and total:
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * done / total))
            bar.setFormat(f"{human_size(done)} of {human_size(total)}")
        elif phase == "connecting":
            bar.setRange(0, 0)
            bar.setFormat("Connecting\u2026")
        elif phase == "building":
            bar.setRange(0, 0)
            bar.setFormat("Preparing\u2026")

    def _transcript(self, job: SendJob, event: str, text: str) -> None:
        if job is not self.job:
            return
        self.window.transcript.text.appendPlainText(transcript_line(event, text))

    def cancel(self) -> None:
        job = self.job
        if job is None:
            return
        job.cancel()
        self.window.cancel.setEnabled(False)
        self.window.progress.setRange(0, 0)
        self.window.progress.setFormat("Cancelling\u2026")
        self.window.statusBar().showMessage("Cancelling\u2026")
        # The job's backend is aborted at once (even while connecting); only a host name lookup
        # can't be interrupted: stop waiting for it. The job then fails before sending anything.
        QTimer.singleShot(ABANDON_AFTER_MS, lambda j=job: self._abandon(j))

    def _abandon(self, job: SendJob) -> None:
        if job is not self.job:
            return
        self.abandoned.add(job)
        self.job = None
        self._busy(False)
        self.banner("warning", "Sending was cancelled. Your draft is unchanged.")
        self.window.transcript.result.setText("Cancelled.")
        self.window.statusBar().showMessage("Cancelled.", 5000)

    def _crashed(self, job: SendJob, exc: BaseException) -> None:
        outcome = SendOutcome(False, job.profile.name, job.draft.subject, [],
                              sentence=f"Unexpected error while sending: {exc}")
        self._finished(job, outcome)

    def _finished(self, job: SendJob, outcome: SendOutcome) -> None:
        if job in self.abandoned:
            self.abandoned.discard(job)
            self._log_entry(outcome)
            return
        if job is not self.job:
            return
        self.job = None
        profile = job.profile
        self.last_profile = profile
        self.last_outcome = outcome
        w = self.window
        if outcome.password_needed and job.canceller.cancelled:
            # Cancelled while the keyring was asked: no prompt, nothing is sent.
            self._busy(False)
            outcome.password_needed = ""
            outcome.cancelled = True
            outcome.sentence = "Sending was cancelled. Your draft is unchanged."
            self.banner("warning", outcome.sentence)
            w.transcript.result.setText("Cancelled.")
            w.statusBar().showMessage("Cancelled.", 5000)
            self.finished.emit(outcome)
            return
        if outcome.password_needed:
            # Ask for the password of the profile this job went to, and send the same
            # snapshot there again: never whatever "Send via" or the draft shows now.
            w.cancel.setEnabled(False)
            w.progress.setRange(0, 0)
            w.progress.setFormat("Waiting for the password\u2026")
            self.asking_password = True
            try:
                password = self.profiles.ask_password(profile, outcome.password_needed)
            finally:
                self.asking_password = False
            if password is None:
                self._busy(False)
                self.banner("warning", "Not sent: no password was given.")
                w.statusBar().showMessage("Not sent.", 5000)
                return
            self._start(job.draft, profile, password)
            return
        self._busy(False)
        if not outcome.ok and outcome.error is not None and outcome.error.kind == "auth":
            outcome.sentence = self.profiles.password_refused(profile.id, outcome.sentence)
        self._log_entry(outcome)
        reply = outcome.reply
        if outcome.console_text:
            w.console.text.appendPlainText(
                f"# {time.strftime('%H:%M:%S')} \u2014 {outcome.subject or '(no subject)'}")
            w.console.text.appendPlainText(outcome.console_text.rstrip("\n") + "\n")
            w.show_pane(w.console)
        if outcome.captured is not None:
            self.captured.append((time.time(), outcome.captured))
            self._add_memory_row(time.time(), outcome.captured)
            w.show_pane(w.memory)
        if outcome.ok:
            kind = "warning" if outcome.refused else "success"
            detail = reply
            if outcome.refused:
                detail = "\n".join(f"{a}: {r}" for a, r in outcome.refused.items()) + (
                    f"\n{reply}" if reply else "")
            text = outcome.sentence
            if outcome.message_id:
                # under Details: a long Message-ID in the sentence widened the whole pane
                detail = f"Message-ID: {outcome.message_id}" + (f"\n{detail}" if detail else "")
            action, action_fn = "", None
            if outcome.written_file:
                self.last_folder = str(outcome.written_file).rsplit("/", 1)[0]
                text += f" Written to {outcome.written_file}."
                action, action_fn = "Open folder", self.open_output_folder
            self.banner(kind, text, detail, action, action_fn, detail_label="Details")
            w.statusBar().showMessage(outcome.sentence, 8000)
            # the next send of this draft is a new message
            self.compose.draft.renew()
            self.compose.changed.emit()
        elif outcome.cancelled:
            self.banner("warning", outcome.sentence)
            w.statusBar().showMessage("Cancelled.", 5000)
        else:
            self.banner("error", f"Not sent. {outcome.sentence}", reply, "Transcript",
                        lambda: w.show_pane(w.transcript),
                        detail_label="Server reply" if _from_server(reply) else "Details")
            w.statusBar().showMessage("Not sent.", 8000)
        size = f" \u00b7 {human_size(outcome.size)}" if outcome.size else ""
        mark = "\u2714" if outcome.ok else "\u2716"
        w.transcript.result.setText(
            f"{mark} {outcome.sentence}{size}"
            f" \u00b7 {outcome.seconds:.2f} s"
            + (f"\n{'Server' if _from_server(reply) else 'Details'}: {reply}" if reply else "")
        )
        w.transcript.result.setStyleSheet("color: #1e6b34;" if outcome.ok else "color: #9b1c1c;")
        self.finished.emit(outcome)

    def open_output_folder(self) -> None:
        folder = self.last_folder
        if not folder:
            profile = self.profiles.current()
            folder = profile.file_path if profile and profile.kind == "file" else ""
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    # -- panes ------------------------------------------------------------------------------
    def _log_entry(self, outcome: SendOutcome) -> None:
        entry = outcome.sent_entry()
        self.sent_entries.append(entry)
        tree = self.window.sent.list
        tree.insertTopLevelItem(0, self._sent_item(entry))
        while len(self.sent_entries) > SENT_ROWS:
            self.sent_entries.pop(0)
            tree.takeTopLevelItem(tree.topLevelItemCount() - 1)
            self.sent_hidden += 1
        self.window.sent.set_empty(False)
        self._show_sent_note()

    def _sent_loaded(self, entries: list[SentEntry], total: int | None = None) -> None:
        """The Sent log as read by the worker (oldest first; ``total`` entries in the
        file), listed newest first. Only the newest SENT_ROWS are listed, in one pass."""
        entries = list(entries)
        combined = entries + self.sent_entries  # sends of this session come last
        self.sent_entries = combined[-SENT_ROWS:]
        self.sent_hidden = (max(0, (total or 0) - len(entries))
                            + len(combined) - len(self.sent_entries))
        tree = self.window.sent.list
        tree.setUpdatesEnabled(False)
        try:
            tree.clear()
            tree.addTopLevelItems([self._sent_item(e) for e in reversed(self.sent_entries)])
        finally:
            tree.setUpdatesEnabled(True)
        if self.sent_entries:
            self.window.sent.set_empty(False)
        self._show_sent_note()

    def _sent_item(self, entry: SentEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem([
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time)), entry.profile,
            entry.subject, ", ".join(entry.recipients), entry.result, entry.message_id,
        ])
        item.setData(0, 257, entry)
        return item

    def _show_sent_note(self) -> None:
        note = self.window.sent.note
        if not self.sent_hidden:
            note.hide()
            return
        shown = len(self.sent_entries)
        note.setText(f"Showing the newest {shown:,} of {shown + self.sent_hidden:,} sends. "
                     f"The whole log is in {self.sent_log.path}.")
        note.show()

    def _sent_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        if item is None:
            return
        entry: SentEntry = item.data(0, 257)
        lines = [
            f"* {entry.result} via {entry.profile}: {entry.subject!r}",
            f"* to {', '.join(entry.recipients) or '-'}",
            f"* Message-ID {entry.message_id}  size {entry.size:,} bytes",
            f"* Date: {entry.date}" if entry.date else "",
            f"* {entry.detail}" if entry.detail else "",
            *entry.transcript,
        ]
        self.window.sent.detail.setPlainText("\n".join(x for x in lines if x))

    def _add_memory_row(self, when: float, message: object) -> None:
        tree = self.window.memory.list
        item = QTreeWidgetItem([time.strftime("%H:%M:%S", time.localtime(when)),
                                getattr(message, "subject", ""),
                                ", ".join(getattr(message, "to", []))])
        item.setData(0, 256, message)
        tree.addTopLevelItem(item)
        tree.setCurrentItem(item)
        self.window.memory.set_empty(False)

    def _memory_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        if item is None:
            self.window.memory.source.clear()
            return
        self.runner.run(memory_source, item.data(0, 256),
                        on_done=self.window.memory.source.setPlainText)

    def clear_memory(self) -> None:
        import mailcore

        mailcore.outbox.clear()
        self.captured.clear()
        self.window.memory.list.clear()
        self.window.memory.source.clear()
        self.window.memory.set_empty(True)
