"""Send a draft through a profile, test a profile's connection: plain Python, run by a worker.

Cancelling is real: ``Canceller.cancel()`` (called from the GUI thread) calls mailcore's
``EmailBackend.abort()``, which shuts down the connection's socket (also while it is still
connecting, waiting for the greeting or in STARTTLS) and wakes the worker at once; between the
chunks of the message content the progress callback checks the flag too, so a cancelled send
never delivers half a message.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mailcore
from mailcore.backends.smtp import EmailBackend as SMTPBackend
from mailcore.wire import serialize
from mailgui.model.addresses import split_addresses
from mailgui.model.draft import Draft
from mailgui.model.errors import Cancelled, ErrorInfo, describe_error, reply_text
from mailgui.model.message import build_message
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringFailed, KeyringUnavailable, SecretStore
from mailgui.model.sentlog import SentEntry, SentLog

__all__ = [
    "Canceller",
    "ConnectionOutcome",
    "PasswordNeeded",
    "SendOutcome",
    "TeeStream",
    "transcript_line",
    "resolve_password",
    "send_draft",
    "check_connection",
]

Transcript = Callable[[str, str], None]
Progress = Callable[[str, int, int], None]  # (phase, done, total); total 0 = unknown
PROGRESS_EVERY = 0.05  # seconds between progress reports to the GUI


def transcript_line(event: str, text: str) -> str:
    """One transcript line as shown and logged: "C: ..." (client), "S: ..." (server),
    "* ..." (notes: connection, TLS, login, data summary)."""
    if event == "client":
        return f"C: {text}"
    if event == "server":
        return f"S: {text}"
    if event == "connect":
        return f"* connecting to {text}"
    return f"* {text}"


class Canceller:
    """A cancel flag plus the backends to abort when it is raised. Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._backends: list[Any] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")

    def attach(self, backend: Any) -> None:
        """Abort ``backend`` on cancel (at once if already cancelled: its send then fails
        before it starts)."""
        if not hasattr(backend, "abort"):
            return
        with self._lock:
            self._backends.append(backend)
            cancelled = self._event.is_set()
        if cancelled:
            backend.abort()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            backends = list(self._backends)
        for backend in backends:
            backend.abort()  # never blocks


class TeeStream(io.TextIOBase):
    """What the console backend writes goes to stdout and to ``sink`` (the app's log pane)."""

    def __init__(self, sink: Callable[[str], None], echo: Any = None) -> None:
        self._sink = sink
        self._echo = echo if echo is not None else sys.stdout

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._echo is not None:
            try:
                self._echo.write(text)
            except (OSError, ValueError):
                self._echo = None
        self._sink(text)
        return len(text)

    def flush(self) -> None:
        if self._echo is not None:
            try:
                self._echo.flush()
            except (OSError, ValueError):
                self._echo = None


class PasswordNeeded(Exception):  # noqa: N818 - it is a request, not an error
    """The profile needs a password and none is available: ask the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve_password(profile: Profile, password: str | None, secrets: SecretStore | None) -> str:
    """The password to use: the one given, else the keyring's. PasswordNeeded if neither;
    KeyringFailed if the keyring raised something unexpected (a D-Bus error...)."""
    if not profile.needs_password:
        return ""
    if password is not None:
        return password
    if secrets is None:
        raise PasswordNeeded("no keyring")
    try:
        stored = secrets.get(profile.id)
    except KeyringUnavailable as exc:
        status = secrets.status()
        if not status.usable:
            raise PasswordNeeded(status.sentence) from exc
        why = str(exc) or "no reason given"
        raise PasswordNeeded(
            f"The password of {profile.name} could not be read from the system keyring "
            f"({why}).") from exc
    except Exception as exc:  # noqa: BLE001 - a keyring backend may raise anything
        raise KeyringFailed(
            f"The system keyring failed while reading the password of {profile.name} "
            f"({type(exc).__name__}). Try again, or restart the keyring service.") from exc
    if stored is None:
        raise PasswordNeeded(f"No password is saved in the keyring for {profile.name}.")
    return stored


def _close_quietly(backend: Any, *, failed: bool) -> None:
    """Release the backend's connection or file. After a failure (AUTH or STARTTLS refused,
    a timeout...) a half-open connection may be left for the next open() or close(): the
    backend is first aborted, so that close() drops it at once instead of waiting for the
    answer to a polite QUIT."""
    if backend is None:
        return
    if failed and hasattr(backend, "abort"):
        try:
            backend.abort()
        except Exception:  # noqa: BLE001, S110 - best effort, never hides the real outcome
            pass
    try:
        backend.close()
    except Exception:  # noqa: BLE001, S110 - best effort, never hides the real outcome
        pass


@dataclass
class SendOutcome:
    ok: bool
    profile_name: str
    subject: str
    recipients: list[str]
    message_id: str = ""
    size: int = 0
    sentence: str = ""
    reply: str = ""
    error: ErrorInfo | None = None
    refused: dict[str, str] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)
    cancelled: bool = False
    password_needed: str = ""  # why, when a password must be asked for
    date: str = ""  # the Date header of the message (the time it was sent)
    written_file: str = ""  # the file backend's output file
    captured: Any = None  # the memory backend's copy of the message
    console_text: str = ""  # what the console backend printed (long parts folded)
    seconds: float = 0.0

    def sent_entry(self) -> SentEntry:
        result = "cancelled" if self.cancelled else "failed"
        if self.ok:
            result = "partly refused" if self.refused else "sent"
        detail = self.reply if self.ok else f"{self.sentence} {self.reply}".strip()
        return SentEntry(
            profile=self.profile_name, subject=self.subject, recipients=list(self.recipients),
            message_id=self.message_id, result=result, detail=detail, size=self.size,
            transcript=list(self.transcript), date=self.date,
        )


def _make_backend(profile: Profile, password: str, transcript: Transcript,
                  progress: Callable[[int, int], None], console: TeeStream | None) -> Any:
    kwargs = profile.backend_kwargs(password)
    if profile.is_smtp:
        return SMTPBackend(transcript=transcript, progress=progress, **kwargs)
    if profile.kind == "file":
        kwargs["progress"] = progress
    if profile.kind == "console":
        kwargs["stream"] = console or TeeStream(lambda _text: None)
    return mailcore.get_connection(profile.backend_name, **kwargs)


def send_draft(
    draft: Draft,
    profile: Profile,
    *,
    password: str | None = None,
    secrets: SecretStore | None = None,
    canceller: Canceller | None = None,
    transcript: Transcript | None = None,
    progress: Progress | None = None,
    console: Callable[[str], None] | None = None,
    sent_log: SentLog | None = None,
) -> SendOutcome:
    """Build the draft's message with ``build_message`` and send it through ``profile``.

    Never raises for a send failure: the outcome carries the sentence and the server's reply.
    """
    canceller = canceller or Canceller()
    lines: list[str] = []
    started = time.monotonic()

    def note(event: str, text: str) -> None:
        lines.append(transcript_line(event, text))
        if transcript is not None:
            transcript(event, text)

    def tell(phase: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(phase, done, total)

    # the recipients as typed, for the Sent log even when the message can't be built
    typed = [item for field in (draft.to, draft.cc, draft.bcc)
             for item, _start, _end in split_addresses(field)]
    outcome = SendOutcome(False, profile.name, draft.subject, typed,
                          message_id=draft.message_id)
    backend: Any = None
    try:
        canceller.check()
        try:
            password_value = resolve_password(profile, password, secrets)
        except PasswordNeeded as need:
            canceller.check()  # cancelled meanwhile: say so, and ask for nothing
            outcome.password_needed = need.reason
            outcome.sentence = need.reason
            return outcome
        tell("building")
        profile.check_tls_files()
        message = build_message(draft, profile)
        outcome.recipients = message.recipients()
        outcome.date = next(
            (str(v) for k, v in message.extra_headers.items() if k.lower() == "date"), "")
        last_report = 0.0
        written_total = 0

        def on_progress(done: int, total: int) -> None:
            # On the worker, while the content is written: raising stops the send before
            # its end, and nothing is delivered.
            nonlocal last_report, written_total
            canceller.check()
            written_total = total
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY or done >= total:
                last_report = now
                tell("sending", done, total)

        canceller.check()
        if profile.is_smtp:
            note("info", f"profile {profile.name}: "
                         f"{profile.describe() if profile.kind == 'smtp' else 'local test inbox'}")
            note("info", f"message {draft.message_id}, Date: {outcome.date or '(set by mailcore)'}")
        tell("connecting")
        tee = TeeStream(console) if console is not None else None
        backend = _make_backend(profile, password_value, note, on_progress, tee)
        canceller.attach(backend)
        sent = backend.send_messages([message])
        results = getattr(backend, "last_results", None) or []
        if results:
            result = results[0]
            outcome.message_id = result.message_id or draft.message_id
            outcome.size = result.size
            outcome.reply = reply_text(result.code, result.reply)
            outcome.refused = {a: reply_text(*r) for a, r in result.refused.items()}
        elif profile.kind == "file" and written_total:
            outcome.size = written_total  # the message as written, LF line ends
        else:
            # the console and file backends write LF line ends, SMTP carries CRLF
            linesep = "\n" if profile.kind in ("console", "file") else "\r\n"
            outcome.size = serialize(message, linesep=linesep).size
        if profile.kind == "file":
            outcome.written_file = str(backend.filename or "")
        if profile.kind == "memory" and mailcore.outbox:
            outcome.captured = mailcore.outbox[-1]
        outcome.ok = bool(sent)
        n = len(outcome.recipients) - len(outcome.refused)
        if outcome.ok:
            where = {"console": "to the console", "file": "to a file",
                     "memory": "to memory", "dummy": "to the dummy backend (discarded)"}.get(
                profile.kind, f"via {profile.name}")
            outcome.sentence = f"Sent {where} for {n} recipient{'s' if n != 1 else ''}."
            if outcome.refused:
                outcome.sentence += " Refused: " + ", ".join(outcome.refused) + "."
        else:
            outcome.sentence = "Nothing was sent (no recipient)."
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a sentence
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        if canceller.cancelled:
            exc = Cancelled("cancelled")
        info = describe_error(exc, profile)
        outcome.error = info
        outcome.sentence = info.sentence
        outcome.reply = info.reply
        outcome.cancelled = info.kind == "cancelled"
        note("info", f"error: {info.sentence}")
    finally:
        _close_quietly(backend, failed=not outcome.ok)
    outcome.transcript = lines
    outcome.seconds = time.monotonic() - started
    tell("done", 1, 1)
    if sent_log is not None and not outcome.password_needed:
        try:
            sent_log.append(outcome.sent_entry())
        except OSError as exc:
            outcome.sentence += f" (The Sent log could not be written: {exc.strerror}.)"
    return outcome


@dataclass
class ConnectionOutcome:
    ok: bool
    sentence: str
    reply: str = ""
    transcript: list[str] = field(default_factory=list)
    password_needed: str = ""
    kind: str = ""  # ErrorInfo.kind of a failure ("auth", "tls", ...)


def check_connection(
    profile: Profile,
    *,
    password: str | None = None,
    secrets: SecretStore | None = None,
    canceller: Canceller | None = None,
    transcript: Transcript | None = None,
) -> ConnectionOutcome:
    """Connect, do STARTTLS and AUTH as configured, then QUIT. Never raises."""
    lines: list[str] = []

    def note(event: str, text: str) -> None:
        lines.append(transcript_line(event, text))
        if transcript is not None:
            transcript(event, text)

    if not profile.is_smtp:
        return ConnectionOutcome(True, f"{profile.kind_label} needs no connection.")
    authenticated: list[str] = []

    def watch(event: str, text: str) -> None:
        if event == "auth":
            authenticated.append(text)  # "authenticated as alice (PLAIN)"
        note(event, text)

    backend: Any = None
    ok = False
    try:
        if canceller is not None:
            canceller.check()
        try:
            password_value = resolve_password(profile, password, secrets)
        except PasswordNeeded as need:
            if canceller is not None:
                canceller.check()  # cancelled meanwhile: ask for nothing
            return ConnectionOutcome(False, need.reason, password_needed=need.reason)
        profile.check_tls_files()
        backend = SMTPBackend(transcript=watch, **profile.backend_kwargs(password_value))
        if canceller is not None:
            canceller.attach(backend)
        backend.open()
        conn = backend.connection
        sock = getattr(conn, "sock", None)
        tls = sock.version() if hasattr(sock, "version") and sock.version() else None
        parts = [f"Connected to {profile.host}:{profile.port}"]
        parts.append(f"encrypted with {tls}" if tls else "not encrypted")
        parts.extend(authenticated)
        ehlo = reply_text(conn.ehlo_resp and 250, conn.ehlo_resp) if conn.ehlo_resp else ""
        backend.close()  # QUIT, politely
        ok = True
        return ConnectionOutcome(True, ", ".join(parts) + ".", ehlo, lines)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        if canceller is not None and canceller.cancelled:
            exc = Cancelled("cancelled")
        info = describe_error(exc, profile)
        return ConnectionOutcome(False, info.sentence, info.reply, lines, kind=info.kind)
    finally:
        _close_quietly(backend, failed=not ok)
