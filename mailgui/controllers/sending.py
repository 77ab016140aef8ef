"""Send: check the draft, get a password if needed, run the send job, show progress, cancel,
show the outcome (the banner and result line as ``model.send_outcome.present`` words them; the
Transcript, Console, Memory and Sent panes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QTreeWidgetItem

from mailgui.controllers.passwords import PasswordsController
from mailgui.controllers.send_target import SendTargetController
from mailgui.jobs import JobRunner, SendJob
from mailgui.model import send_process
from mailgui.model.draft import Draft
from mailgui.model.message import draft_problems
from mailgui.model.passwords import asked_again_sentence
from mailgui.model.profiles import Profile
from mailgui.model.send_outcome import CANCELLED, NO_PASSWORD, BannerAction, Presentation, present
from mailgui.model.sending import SendOutcome, transcript_line
from mailgui.model.sentlog import SentEntry, SentLog
from mailgui.model.source import fold_bytes
from mailgui.model.transcripts import unanswered_note
from mailgui.views.main_window import MainWindow

ABANDON_AFTER_MS = 1500
# the sender process starts this long after the window is made (after its first paint, off
# the start-up's CPU), so the first Send does not wait for its interpreter; a Send before
# then starts it itself
WARM_SENDER_AFTER_MS = 1500
SENT_ROWS = 2000  # the Sent pane lists the newest sends only (the log file keeps them all)
# A Send shows that it started (Send off, Cancel on, the busy bar) in the turn of the loop of
# the click, and that turn's paint; the job starts on the next turn, so the click's frame
# does not also carry the transcript's reset, the source preview and the hand-over to the
# worker. (Measured in bench/gui_bench.py, case 1a: the start of a send was its worst frame.)
LAUNCH_AFTER_MS = 1
# the send's transcript lines and progress arrive in bursts (a server's EHLO reply is a
# dozen lines within a millisecond): the window shows them at most once per frame
SHOW_EVERY_MS = 16


def memory_source(message: object) -> str:
    from mailcore.message import message_needs_smtputf8
    from mailcore.wire import serialize

    return fold_bytes(serialize(message, linesep="\r\n",
                                utf8=message_needs_smtputf8(message)).chunks())[0]


class DraftSource(Protocol):
    """What sending needs of the draft being composed (``ComposeController`` is one)."""

    def snapshot(self, *, dated: bool = False) -> Draft:
        """A copy of the draft as the window shows it. ``dated``: first give the draft itself
        the Date of now (Send: it keeps that Date, Message-ID and boundaries, so the source
        pane shows the very bytes that go out)."""

    def renew(self) -> None:
        """The draft was sent: its next send is a new message (a new Message-ID)."""

    def has_attachment(self, path: str) -> bool:
        """True if the draft still attaches the file at ``path``."""

    def refresh_attachment_info(self) -> None:
        """Look at the attached files again (on the worker): a send failed on one."""


class SendController(QObject):
    finished = Signal(object)  # SendOutcome
    started = Signal()

    def __init__(self, window: MainWindow, runner: JobRunner, drafts: DraftSource,
                 target: SendTargetController, passwords: PasswordsController,
                 sent_log: SentLog, inbox_running: Callable[[], bool]) -> None:
        super().__init__(window)
        self.window = window
        self.runner = runner
        self.drafts = drafts
        self.target = target
        self.passwords = passwords
        self.sent_log = sent_log
        self.inbox_running = inbox_running
        self.job: SendJob | None = None
        self.asking_password = False  # a prompt for this send's password is open
        self.last_profile: Profile | None = None  # the profile of the last finished send
        self.abandoned: set[SendJob] = set()
        self.captured: list[tuple[float, object]] = []
        self.last_outcome: SendOutcome | None = None
        self.last_folder = ""
        self._lines: list[str] = []  # transcript lines not yet shown
        self._progress_pending: tuple[str, int, int] | None = None  # the newest, not shown
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_EVERY_MS)
        self._show_timer.timeout.connect(self._show_pending)
        w = window
        w.act_send.triggered.connect(lambda: self.send())
        w.act_cancel.triggered.connect(self.cancel)
        w.cancel.clicked.connect(self.cancel)
        w.banner.action_clicked.connect(self._banner_action)
        w.console.clear.clicked.connect(w.console.text.clear)
        w.memory.clear.clicked.connect(self.clear_memory)
        w.memory.list.currentItemChanged.connect(self._memory_selected)
        w.sent.list.currentItemChanged.connect(self._sent_selected)
        self._banner_action_fn: Callable[[], None] | None = None
        # what the banner shown is about, so it goes when that does: ("target", profile id)
        # for a failure of "Send via" or of a send through it, ("attachment", path) for a
        # file the send could not read; None for the rest
        self.banner_cause: tuple[str, str] | None = None
        target.target_changed.connect(self._target_changed)
        self.sent_entries: list[SentEntry] = []  # the rows of the Sent pane, oldest first
        self.sent_hidden = 0  # entries of the log that are not listed
        self.runner.run(sent_log.tail, SENT_ROWS,
                        on_done=lambda result: self._sent_loaded(*result),
                        what="read the Sent log")
        warm = QTimer(self)
        warm.setSingleShot(True)
        warm.setInterval(WARM_SENDER_AFTER_MS)
        warm.timeout.connect(self.warm_sender)
        warm.start()

    def warm_sender(self) -> None:
        """Start the sender process on the pool, unless a send is under way (it starts one
        itself). A failure to start is not shown here: the next Send reports it."""
        if self.job is None:
            self.runner.run(send_process.warm, on_error=lambda _exc: None)

    @property
    def sending(self) -> bool:
        """True from Send until the outcome is shown (a password prompt included)."""
        return self.job is not None or self.asking_password

    # -- the banner ---------------------------------------------------------------------------
    def banner(self, kind: str, text: str, detail: str = "", action: str = "",
               action_fn: Callable[[], None] | None = None,
               detail_label: str = "Server reply") -> None:
        self._banner_action_fn = action_fn
        self.banner_cause = None  # (the callers that know a cause set it after)
        self.window.banner.show_message(kind, text, detail, action, detail_label)

    def _clear_banner_of(self, kind: str, gone: Callable[[str], bool]) -> None:
        cause = self.banner_cause
        if cause is not None and cause[0] == kind and gone(cause[1]):
            self.banner_cause = None
            self.window.banner.hide()

    def _target_changed(self, profile: Profile | None) -> None:
        """Another "Send via": a banner about the one before (its failure) goes."""
        new = profile.id if profile is not None else ""
        self._clear_banner_of("target", lambda old: old != new)

    def draft_changed(self) -> None:
        """The draft changed: a banner about an attachment that is no longer attached goes."""
        self._clear_banner_of("attachment", lambda path: not self.drafts.has_attachment(path))

    def _banner_action(self) -> None:
        if self._banner_action_fn is not None:
            self._banner_action_fn()

    def _show(self, shown: Presentation) -> None:
        """Apply what ``send_outcome`` says the window shows."""
        b = shown.banner
        action_fn = {BannerAction.OPEN_FOLDER: self.open_output_folder,
                     BannerAction.TRANSCRIPT: lambda: self.window.show_pane(
                         self.window.transcript)}.get(b.action)
        self.banner(b.severity, b.text, b.details, b.action.value, action_fn, b.details_label)
        if shown.status:
            self.window.show_status(shown.status, shown.status_ms)
        if shown.result:
            self.window.transcript.show_result(shown.result, shown.ok)
        if shown.folder:
            self.last_folder = shown.folder

    # -- sending --------------------------------------------------------------------------
    def send(self, password: str | None = None) -> SendJob | None:
        """Send the draft through "Send via". Returns the job, or None if nothing was started
        (a problem, shown in the banner; or the password prompt is open: the send starts when
        it is answered)."""
        if self.sending:
            return None
        profile = self.target.current()
        if profile is None:
            self.banner("error", "Choose where to send the message in \u201cSend via\u201d.")
            self.banner_cause = ("target", "")
            return None
        problems = draft_problems(self.drafts.snapshot(), profile)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.banner("error", f"Not sent: {first.message}{more}")
            self.window.compose.show_field(first.field)
            return None
        if profile.kind == "inbox" and not (self.inbox_running() and profile.port):
            self.banner("error", "The local test inbox is not running, so nothing can be "
                        "delivered to it. Restart mailgui or choose another target.")
            self.banner_cause = ("target", profile.id)
            return None
        plan = self.passwords.broker.plan(profile, password)
        if not plan.ask:
            return self._start_draft(profile, plan.password)

        def answered(typed: str | None) -> None:
            if typed is None:
                self.banner("warning", NO_PASSWORD.banner.text)
            else:
                self._start_draft(profile, typed)

        self._ask(profile, plan.ask, answered)
        return self.job

    def _start_draft(self, profile: Profile, password: str | None) -> SendJob:
        # The message is dated when it is sent (see DraftSource.snapshot).
        return self._start(self.drafts.snapshot(dated=True), profile, password)

    def _start(self, snapshot: Draft, profile: Profile, password: str | None) -> SendJob:
        """Send ``snapshot`` (a copy of the draft) through ``profile`` on the worker pool."""
        job = SendJob(snapshot, profile, password=password,
                      secrets=self.passwords.broker.worker_secrets, sent_log=self.sent_log)
        job.signals.progress.connect(lambda ph, d, t, j=job: self._progress(j, ph, d, t))
        job.signals.transcript.connect(lambda ev, text, j=job: self._transcript(j, ev, text))
        job.signals.finished.connect(lambda outcome, j=job: self._finished(j, outcome))
        job.signals.failed.connect(lambda exc, j=job: self._crashed(j, exc))
        self.job = job
        self._lines.clear()
        self._progress_pending = None
        self._busy(True, f"Sending via {profile.name}\u2026")
        banner = self.window.banner
        if banner.isVisible():
            # the banner of before says the message is going out, in its place and at its
            # height until the outcome replaces it: hiding it made the form jump up, and
            # the outcome made it jump back
            banner.setMinimumHeight(banner.height())
            self.banner("info", f"Sending via {profile.name}\u2026")
        QTimer.singleShot(LAUNCH_AFTER_MS, lambda j=job: self._launch(j))
        return job

    def _launch(self, job: SendJob) -> None:
        """The second turn of a Send (see LAUNCH_AFTER_MS). A Cancel in between is already
        in the job's canceller: the job starts and ends at once, cancelled, as it would a
        moment later."""
        if job is not self.job:
            return
        self.window.transcript.start(f"Sending via {job.profile.name}\u2026")
        self.started.emit()
        self.runner.start(job)

    def _busy(self, busy: bool, text: str = "") -> None:
        # While a message goes out, where it goes can't change ("Send via", the profile
        # editor's Use button): what the window shows is where it is going.
        self.target.lock(busy)
        self.window.show_sending(busy, text)
        if not busy:
            self.window.banner.setMinimumHeight(0)  # (the outcome's banner follows)

    def _progress(self, job: SendJob, phase: str, done: int, total: int) -> None:
        if job is self.job:
            self._progress_pending = (phase, done, total)
            self._show_soon()

    def _transcript(self, job: SendJob, event: str, text: str) -> None:
        if job is self.job:
            self._lines.append(transcript_line(event, text))
            self._show_soon()

    def _show_soon(self) -> None:
        if not self._show_timer.isActive():
            self._show_timer.start()

    def _show_pending(self) -> None:
        """Show the transcript lines and the progress that came since the last frame."""
        self._show_timer.stop()
        if self._lines:
            self.window.transcript.add_line("\n".join(self._lines))
            self._lines.clear()
        shown, self._progress_pending = self._progress_pending, None
        if shown is None or self.job is None or self.job.canceller.cancelled:
            return  # (Cancelling… stays until the outcome)
        phase, done, total = shown
        if phase == "sending" and total:
            self.window.show_progress(done, total)
        elif phase == "connecting":
            self.window.show_waiting("Connecting\u2026")
        elif phase == "building":
            self.window.show_waiting("Preparing\u2026")

    def cancel(self) -> None:
        job = self.job
        if job is None:
            return
        job.cancel()
        self.window.show_waiting("Cancelling\u2026", can_cancel=False)
        self.window.show_status("Cancelling\u2026")
        # The job's backend is aborted at once (even while connecting); only a host name lookup
        # can't be interrupted: stop waiting for it. The job then fails before sending anything.
        QTimer.singleShot(ABANDON_AFTER_MS, lambda j=job: self._abandon(j))

    def _abandon(self, job: SendJob) -> None:
        if job is not self.job:
            return
        self.abandoned.add(job)
        self.job = None
        self._busy(False)
        self._show(CANCELLED)

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
        self._show_pending()  # the transcript's last lines, before the outcome
        self.job = None
        self.last_profile = job.profile
        self.last_outcome = outcome
        if outcome.password_needed and job.canceller.cancelled:
            # Cancelled while the keyring was asked: no prompt, nothing is sent.
            outcome.password_needed = ""
            outcome.cancelled = True
            outcome.sentence = CANCELLED.banner.sentence
            self._busy(False)
            self._show(CANCELLED)
            self.finished.emit(outcome)
        elif outcome.password_needed:
            self._ask_and_resend(job, outcome.password_needed)
        else:
            self._busy(False)
            self._ended(job.profile, outcome)

    def _ask_and_resend(self, job: SendJob, reason: str) -> None:
        """Ask for the password of the profile this job went to, and send the same snapshot
        there again: never whatever "Send via" or the draft shows now."""
        self.window.show_waiting("Waiting for the password\u2026", can_cancel=False)

        def answered(password: str | None) -> None:
            if password is None:
                self._busy(False)
                self._show(NO_PASSWORD)
            else:
                self._start(job.draft, job.profile, password)

        self._ask(job.profile, reason, answered)

    def _ask(self, profile: Profile, reason: str, answered: Callable[[str | None], None]) -> None:
        """Open the password prompt for this send; ``sending`` stays True until it is
        answered (the prompt returns at once: no nested event loop)."""
        def got(password: str | None) -> None:
            self.asking_password = False
            answered(password)

        self.asking_password = True
        self.passwords.ask(profile, reason, got)

    def _ended(self, profile: Profile, outcome: SendOutcome) -> None:
        """The send is over (sent, failed, cancelled): log it, fill the panes, say so."""
        if (not outcome.ok and outcome.error is not None and outcome.error.kind == "auth"
                and self.passwords.broker.refused(profile)):
            outcome.sentence = asked_again_sentence(profile)
        if not outcome.ok and not outcome.cancelled:
            timed_out = outcome.error is not None and outcome.error.kind == "timeout"
            note = unanswered_note(outcome.transcript, timed_out)
            if note:
                outcome.transcript.append(note)  # (the Sent log keeps it too)
                self.window.transcript.add_line(note)
        self._log_entry(outcome)
        w = self.window
        if outcome.console_text:
            w.console.add_output(outcome.subject or "(no subject)", outcome.console_text)
            w.show_pane(w.console)
        if outcome.captured is not None:
            self.captured.append((time.time(), outcome.captured))
            w.memory.add_message(time.time(), outcome.captured)
            w.show_pane(w.memory)
        self._show(present(outcome))
        if not outcome.ok and not outcome.cancelled:
            failure = outcome.error.failure if outcome.error is not None else None
            path = failure.path if failure is not None else ""
            if outcome.error is not None and outcome.error.kind == "file" and path:
                self.banner_cause = ("attachment", str(path))
                self.drafts.refresh_attachment_info()  # its row says what is wrong now
            else:
                self.banner_cause = ("target", profile.id)
        if outcome.ok:
            self.drafts.renew()  # the next send of this draft is a new message
        self.finished.emit(outcome)

    def open_output_folder(self) -> None:
        folder = self.last_folder
        if not folder:
            profile = self.target.current()
            folder = profile.file_path if profile and profile.kind == "file" else ""
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    # -- panes ------------------------------------------------------------------------------
    def _log_entry(self, outcome: SendOutcome) -> None:
        entry = outcome.sent_entry()
        self.sent_entries.append(entry)
        self.window.sent.add_entry(entry, keep=SENT_ROWS)
        while len(self.sent_entries) > SENT_ROWS:
            self.sent_entries.pop(0)
            self.sent_hidden += 1
        self._show_sent_note()

    def _sent_loaded(self, entries: list[SentEntry], total: int | None = None) -> None:
        """The Sent log as read by the worker (oldest first; ``total`` entries in the
        file), listed newest first. Only the newest SENT_ROWS are listed, in one pass."""
        entries = list(entries)
        combined = entries + self.sent_entries  # sends of this session come last
        self.sent_entries = combined[-SENT_ROWS:]
        self.sent_hidden = (max(0, (total or 0) - len(entries))
                            + len(combined) - len(self.sent_entries))
        self.window.sent.show_entries(reversed(self.sent_entries))
        self._show_sent_note()

    def _show_sent_note(self) -> None:
        shown = len(self.sent_entries)
        self.window.sent.show_note(
            f"Showing the newest {shown:,} of {shown + self.sent_hidden:,} sends. "
            f"The whole log is in {self.sent_log.path}." if self.sent_hidden else "")

    def _sent_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        if item is not None:
            self.window.sent.show_details(self.window.sent.entry_of(item))

    def _memory_selected(self, item: QTreeWidgetItem | None, _prev: object = None) -> None:
        memory = self.window.memory
        if item is None:
            memory.source.clear()
            return
        self.runner.run(memory_source, memory.message_of(item),
                        on_done=memory.source.setPlainText, what="show the kept message")

    def clear_memory(self) -> None:
        import mailcore

        mailcore.outbox.clear()
        self.captured.clear()
        self.window.memory.clear_all()
