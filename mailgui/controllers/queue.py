"""The Queue panel's logic: the counts of the chosen queue profile read about once a second
on the worker pool (never on the GUI thread; one read at a time, a stale one dropped), its
dead letters, Retry, and pushing N copies of the draft, each with its own Message-ID."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from mailgui.jobs import JobRunner
from mailgui.model import queueing
from mailgui.model.draft import Draft
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.views.queue import QueuePanel

REFRESH_MS = 1000


class BrokerPasswordNeeded(RuntimeError):
    """The broker wants a password that neither the keyring nor this session holds."""


def _password(profile: Profile, given: str | None, secrets: SecretStore | None) -> str:
    """The broker's password: ``given`` (this session's), else the keyring's (read here, on
    the worker)."""
    from mailgui.model.sending import PasswordNeeded, resolve_password

    try:
        return resolve_password(profile, given, secrets)
    except PasswordNeeded as need:
        raise BrokerPasswordNeeded(
            f"The broker of \u201c{profile.name}\u201d needs its password, and none is at "
            f"hand ({need.reason.rstrip('.')}). Type it in Profiles.") from None


def _read(profile: Profile, given: str | None,
          secrets: SecretStore | None) -> queueing.QueueReading:
    return queueing.read_queue(profile, _password(profile, given, secrets))


def _retry(profile: Profile, given: str | None, secrets: SecretStore | None,
           ids: list[str]) -> int:
    password = _password(profile, given, secrets)
    return sum(queueing.retry_dead(profile, password, mid) for mid in ids)


def _push(draft: Draft, profile: Profile, given: str | None, secrets: SecretStore | None,
          count: int) -> int:
    return len(queueing.push_copies(draft, profile, _password(profile, given, secrets), count))


def _sentence(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # sending.PasswordNeeded
    return str(reason or exc) or type(exc).__name__


class QueueController(QObject):
    """``profile`` gives the queue profile to show (None: the target is not a queue),
    ``draft`` a snapshot of the draft to push, ``secrets`` the keyring to read the broker's
    password from (None: there is none), ``session_password`` a password this session holds
    for a profile (typed where there is no keyring), on the GUI thread."""

    status = Signal(str)  # a status-bar message
    refreshed = Signal(object)  # each QueueReading shown (for whoever wants to know)

    def __init__(self, panel: QueuePanel, runner: JobRunner,
                 profile: Callable[[], Profile | None], draft: Callable[[], Draft],
                 secrets: Callable[[], SecretStore | None],
                 session_password: Callable[[Profile], str | None] | None = None,
                 interval_ms: int = REFRESH_MS) -> None:
        super().__init__(panel)
        self.panel = panel
        self.runner = runner
        self.profile_source = profile
        self.draft_source = draft
        self.secrets = secrets
        self.session_password = session_password or (lambda _profile: None)
        self.generation = 0  # a reading started for an earlier profile is dropped
        self.reading = False
        self.pushing = False
        self.shown: Profile | None = None
        self.last: tuple[float, int] | None = None  # (when, sent) of the reading before
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        panel.push.clicked.connect(self.push)
        panel.retry.clicked.connect(self.retry_selected)
        panel.finished.connect(lambda _r: self.timer.stop())

    def open(self) -> QueuePanel:
        self.target_changed()
        self.panel.show()
        self.panel.raise_()
        self.timer.start()
        self.refresh()
        return self.panel

    def target_changed(self, *_args: object) -> None:
        """The "Send via" target changed: show its queue, or say it is not one."""
        profile = self.profile_source()
        if profile is not None and profile.kind != "queue":
            profile = None
        if (profile is None) != (self.shown is None) or (
                profile is not None and self.shown is not None
                and (profile.id, profile.queue_broker_url, profile.queue_name)
                != (self.shown.id, self.shown.queue_broker_url, self.shown.queue_name)):
            self.generation += 1
            self.reading = False
            self.last = None
            self.panel.clear_counts()
            self.panel.show_letters([])
        self.shown = profile
        if profile is None:
            self.panel.show_where("\u201cSend via\u201d is not a queue: choose a Queue (Celery) "
                                  "profile to see its queue.", can_push=False)
            self.panel.show_state("")
            return
        self.panel.show_where(f"{profile.name}: queue \u201c{profile.queue_name}\u201d at "
                              f"{queueing.shown_url(profile)} (workers deliver with their "
                              "own settings)", can_push=not self.pushing)

    def refresh(self) -> None:
        """Read the counts on the worker pool, unless a read is still on its way."""
        profile = self.shown
        if profile is None or self.reading or not self.panel.isVisible():
            return
        self.reading = True
        generation = self.generation
        self.runner.run(_read, profile, self.session_password(profile), self.secrets(),
                        on_done=lambda r, g=generation: self._read(g, r),
                        on_error=lambda exc, g=generation: self._failed(g, exc))

    def _read(self, generation: int, reading: queueing.QueueReading) -> None:
        if generation != self.generation:
            return
        self.reading = False
        self.panel.show_counts(reading.queued, reading.sent, reading.retrying, reading.dead)
        self.panel.show_letters(reading.letters)
        now = time.monotonic()
        rate = None
        if self.last is not None and now > self.last[0] and reading.sent >= self.last[1]:
            rate = (reading.sent - self.last[1]) / (now - self.last[0])
        self.last = (now, reading.sent)
        if not self.pushing:
            self.panel.show_state(self._summary(reading, rate))
        self.refreshed.emit(reading)

    @staticmethod
    def _summary(reading: queueing.QueueReading, rate: float | None = None) -> str:
        if reading.queued or reading.retrying:
            text = f"Draining: {reading.queued + reading.retrying:,} to go"
            if rate:
                text += f", about {rate:,.0f} sent a second"
            if reading.retrying:
                text += f"; {reading.retrying:,} waiting to be tried again"
            return text + "."
        return "Nothing waiting." if not reading.dead else (
            f"Nothing waiting; {reading.dead:,} dead letter(s): select them and press Retry.")

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation != self.generation:
            return
        self.reading = False
        self.panel.show_state(_sentence(exc), ok=False)

    def push(self) -> None:
        """Queue N copies of the draft (built and queued on the worker)."""
        profile = self.shown
        if profile is None or self.pushing:
            return
        count = self.panel.copies.value()
        self.pushing = True
        self.panel.show_where(self.panel.where.text(), can_push=False)
        self.panel.show_state(f"Pushing {count:,} copies of the draft\u2026")
        self.runner.run(_push, self.draft_source(), profile, self.session_password(profile),
                        self.secrets(), count,
                        on_done=self._pushed, on_error=self._push_failed)

    def _pushed(self, count: int) -> None:
        self.pushing = False
        self.target_changed()
        text = f"Queued {count:,} copies of the draft."
        self.panel.show_state(text, ok=True)
        self.status.emit(text)
        self.refresh()

    def _push_failed(self, exc: BaseException) -> None:
        self.pushing = False
        self.target_changed()
        self.panel.show_state(_sentence(exc), ok=False)

    def retry_selected(self) -> None:
        profile = self.shown
        ids = self.panel.selected_ids()
        if profile is None or not ids:
            return
        self.panel.retry.setEnabled(False)
        self.runner.run(_retry, profile, self.session_password(profile), self.secrets(), ids,
                        on_done=lambda n: self._retried(n, len(ids)),
                        on_error=lambda exc: self.panel.show_state(_sentence(exc), ok=False))

    def _retried(self, done: int, asked: int) -> None:
        missing = asked - done
        text = f"Queued {done:,} dead letter(s) again." + (
            f" {missing:,} were no longer in the dead-letter list." if missing else "")
        self.panel.show_state(text, ok=True)
        self.refresh()
