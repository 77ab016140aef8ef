"""The profile editor's "Test connection" row: run the test on the worker pool, show its steps
and transcript, cancel it (a server may never answer), ask for a password and retry the profile
that was tested. An OAuth2 profile is tested with its saved sign-in (an access token fresh from
the keyring's refresh token): no password is used or asked for."""

from __future__ import annotations

from PySide6.QtCore import QObject

from mailgui.controllers.passwords import PasswordsController
from mailgui.jobs import JobRunner, TestConnectionJob
from mailgui.model.errors import describe_error
from mailgui.model.passwords import asked_again_sentence
from mailgui.model.profiles import Profile
from mailgui.model.sending import ConnectionOutcome, transcript_line
from mailgui.model.transcripts import unanswered_note
from mailgui.views.profiles import ProfileDialog


class ConnectionTestController(QObject):
    def __init__(self, dialog: ProfileDialog, runner: JobRunner,
                 passwords: PasswordsController) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.runner = runner
        self.passwords = passwords
        self.job: TestConnectionJob | None = None
        self._step = ""  # the step the result line shows while the test runs

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, profile: Profile, password: str | None = None) -> TestConnectionJob | None:
        """Test ``profile`` (as the form shows it) with ``password`` (typed in the form), else
        the session's or the keyring's; without a keyring the password is asked first. Returns
        the job, or None if none started (one runs, or the prompt is open or was cancelled)."""
        if self.job is not None:
            return None
        if profile.uses_oauth:
            password = None  # the token source logs in (on the worker)
        plan = self.passwords.broker.plan(profile, password)
        if plan.ask:
            self.passwords.ask(profile, plan.ask,
                               lambda answer: self._begin(profile, answer)
                               if answer is not None else None, parent=self.dialog)
            return self.job
        return self._begin(profile, plan.password)

    def cancel(self) -> None:
        """Stop the test that runs (Cancel test, the dialog closing); it ends "cancelled"."""
        if self.job is None:
            return
        self.job.cancel()
        self.dialog.show_test_cancelling()

    def drop(self, profile: Profile | None) -> None:
        """The form now shows ``profile``: a test of another one belongs to no form."""
        job = self.job
        if job is not None and (profile is None or job.profile.id != profile.id):
            job.cancel()
            self._over(job)

    def _begin(self, profile: Profile, password: str | None) -> TestConnectionJob | None:
        if self.job is not None:
            return None
        self._step = "connecting"
        self.dialog.show_test_running(f"Connecting to {profile.host}:{profile.port}\u2026")
        job = TestConnectionJob(profile, password=password,
                                secrets=self.passwords.broker.worker_secrets)
        job.signals.transcript.connect(
            lambda ev, text, j=job: self._transcript(j, ev, text))
        job.signals.finished.connect(lambda outcome, j=job: self._tested(j, outcome))
        job.signals.failed.connect(lambda exc, j=job: self._crashed(j, exc))
        self.job = job
        self.runner.start(job)
        return job

    def _transcript(self, job: TestConnectionJob, event: str, text: str) -> None:
        if job is not self.job:
            return
        self.dialog.add_test_line(transcript_line(event, text))
        step = ""
        if event == "tls":
            step = "tls"
        elif event == "client" and text.upper().startswith("AUTH"):
            step = "login"
        elif event == "client" and text.upper().startswith("STARTTLS"):
            step = "starttls"
        elif event == "server" and self._step not in ("login", "tls"):
            step = "talking"
        if step:
            self._step = step
            where = f"{job.profile.host}:{job.profile.port}"
            self.dialog.show_test_step({
                "tls": f"TLS is on; talking to {where}\u2026",
                "login": f"Logging in to {where}"
                         f"{' with OAuth2' if job.profile.uses_oauth else ''}, waiting for its "
                         "answer\u2026",
                "starttls": f"Starting TLS with {where}\u2026",
                "talking": f"Connected to {where}, talking\u2026",
            }[step])

    def _over(self, job: TestConnectionJob) -> bool:
        """Forget ``job``; False if its result is not to be shown (superseded)."""
        if job is not self.job:
            return False
        self.job = None
        self.dialog.show_test_idle()
        return True

    def _tested(self, job: TestConnectionJob, outcome: ConnectionOutcome) -> None:
        if not self._over(job):
            return
        if job.canceller.cancelled:
            self.dialog.show_message("Not tested: cancelled.")
            return
        if outcome.password_needed:
            # the password of the profile that was tested, for that profile again
            self.passwords.ask(job.profile, outcome.password_needed,
                               lambda answer: self._retry(job.profile, answer),
                               parent=self.dialog)
            return
        if not outcome.ok:  # a conversation cut after the client's line says what it was
            note = unanswered_note(outcome.transcript, outcome.kind == "timeout")
            if note:
                self.dialog.add_test_line(note)
        sentence = outcome.sentence
        if outcome.kind == "auth" and self.passwords.broker.refused(job.profile):
            sentence = asked_again_sentence(job.profile)
        self._show_result(outcome.ok, sentence, outcome.reply)

    def _retry(self, profile: Profile, password: str | None) -> None:
        if password is None:
            self.dialog.show_message("Not tested: no password.")
        else:
            self._begin(profile, password)

    def _crashed(self, job: TestConnectionJob, exc: BaseException) -> None:
        if self._over(job):
            self._show_result(False, describe_error(exc, job.profile).sentence, "")

    def _show_result(self, ok: bool, sentence: str, reply: str) -> None:
        reply = f"\n{reply}" if reply and not ok else ""
        self.dialog.show_message(("\u2714 " if ok else "\u2716 ") + sentence + reply, ok)
