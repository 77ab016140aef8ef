"""Send a draft through a profile, test a profile's connection: plain Python, run by a worker.

``send_draft`` is a few steps (DKIM key, password, build, deliver, measure, sentence); what
differs from one mailcore backend to another is one row of ``DELIVERIES``. A profile that signs
has its DKIM key read from the keyring here, on the worker, and its backend signs the bytes it
writes (``dkim=``); without its key nothing is sent. An OAuth2 profile gives its backend an
``oauth.TokenSource`` (a fresh access token just before AUTH, refreshed on the worker); when
the server says the token expired, the token is refreshed and the send tried once more (AUTH
comes before MAIL: nothing was sent). A refused refresh says "sign in again" and the draft
stays.

Where the message is built and encoded: the rows of ``DELIVERIES`` marked ``child`` (SMTP, the
local test inbox, the file and dummy backends) do it in the sender process
(``send_process``), so that encoding a big message never holds the GUI process's GIL; the
keyring is read here on the worker first, and the password, the DKIM signer and OAuth2 tokens
reach the child only over its pipe. The child runs the same steps (``transmit_here``, then
``_failed`` on a failure), so the outcome, its sentence and its ``ErrorInfo`` are those an
in-process send makes. The other rows (console, memory, and any row added without ``child``)
run here on the worker, as ever.

Cancelling is real: ``Canceller.cancel()`` (called from the GUI thread) calls mailcore's
``EmailBackend.abort()`` (in the child: it is told over the pipe, and killed if it does not
answer within ``send_process.KILL_AFTER``), which shuts down the connection's socket (also
while it is still connecting, waiting for the greeting or in STARTTLS) and wakes the sender at
once; between the chunks of the message content the progress callback checks the flag too, so
a cancelled send never delivers half a message.
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
from mailcore.message import message_needs_smtputf8
from mailcore.wire import serialize
from mailgui.model import queueing
from mailgui.model.addresses import split_addresses
from mailgui.model.dkim import DKIMUnavailable, signer_for
from mailgui.model.draft import Draft
from mailgui.model.errors import Cancelled, ErrorInfo, describe_error, reply_text
from mailgui.model.message import build_message
from mailgui.model.oauth import TokenSource
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringFailed, KeyringUnavailable, SecretStore
from mailgui.model.send_process import SenderGone
from mailgui.model.sentlog import SentEntry, SentLog

__all__ = [
    "DELIVERIES",
    "Canceller",
    "ConnectionOutcome",
    "Delivery",
    "PasswordNeeded",
    "SendOutcome",
    "TeeStream",
    "noting_token",
    "token_expired",
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


# -- how each backend delivers ----------------------------------------------------------------


@dataclass
class _Send:
    """One send in progress, on the worker: what the steps below share."""

    draft: Draft
    profile: Profile
    outcome: SendOutcome
    canceller: Canceller
    note: Transcript
    tell: Progress
    console: Callable[[str], None] | None
    backend: Any = None  # once made: closed by send_draft whatever happens
    dkim: Any = None  # the DKIMSigner of a profile that signs (read from the keyring)
    token: TokenSource | None = None  # an OAuth2 profile's access tokens
    written: int = 0  # bytes the backend reported writing (file backend)
    _last_report: float = 0.0

    def on_progress(self, done: int, total: int) -> None:
        """On the worker, while the content is written: raising stops the send before its
        end, and nothing is delivered."""
        self.canceller.check()
        self.written = total
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_EVERY or done >= total:
            self._last_report = now
            self.tell("sending", done, total)


def noting_token(source: TokenSource, note: Transcript) -> Callable[[], str]:
    """``source`` as mailcore calls it, with a transcript line when it had to refresh (the
    token itself is never written anywhere)."""
    def token() -> str:
        before = source.refreshed
        value = source()
        if source.refreshed != before:
            note("info", "OAuth2: got a fresh access token from the provider")
        return value

    return token


def _smtp_backend(send: _Send, password: str) -> Any:
    signing = {"dkim": send.dkim} if send.dkim is not None else {}
    token = noting_token(send.token, send.note) if send.token is not None else None
    return SMTPBackend(transcript=send.note, progress=send.on_progress, **signing,
                       **send.profile.backend_kwargs(password, oauth_token=token))


def token_expired(exc: BaseException) -> bool:
    """True if the server refused an OAuth2 access token as expired or invalid (mailcore's
    ``SMTPOAuthTokenError.expired``, also as the cause of what was raised)."""
    from mailcore import errors

    kind = getattr(errors, "SMTPOAuthTokenError", None)
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if kind is not None and isinstance(seen, kind):
            return bool(seen.expired)
        seen = seen.__cause__ or seen.__context__
    return False


def _console_backend(send: _Send, password: str) -> Any:
    # what it prints goes to stdout, and to the app's Console pane when one is given
    stream = TeeStream(send.console or (lambda _text: None))
    return mailcore.get_connection(send.profile.backend_name, stream=stream,
                                   **send.profile.backend_kwargs())


def _file_backend(send: _Send, password: str) -> Any:
    return mailcore.get_connection(send.profile.backend_name, progress=send.on_progress,
                                   **send.profile.backend_kwargs())


def _plain_backend(send: _Send, password: str) -> Any:
    return mailcore.get_connection(send.profile.backend_name, **send.profile.backend_kwargs())


def _written_file(send: _Send, backend: Any) -> None:
    send.outcome.written_file = str(backend.filename or "")
    if send.written:
        send.outcome.size = send.written  # the message as written, LF line ends


def _captured(send: _Send, backend: Any) -> None:
    if mailcore.outbox:
        send.outcome.captured = mailcore.outbox[-1]


@dataclass(frozen=True)
class Delivery:
    """What ``send_draft`` does differently for one mailcore backend."""

    make: Callable[[_Send, str], Any]  # the backend, given the password
    where: str  # "Sent {where} for 2 recipients."; "" says "via {profile name}"
    linesep: str  # the line ends the backend writes (the size it reports when it reports none)
    conversation: bool = False  # an SMTP conversation: the transcript notes the profile
    after: Callable[[_Send, Any], None] | None = None  # results of its own (file, copy)
    # built and sent in the sender process (``send_process``): the encoding of a big message
    # never holds the GUI process's GIL. ``make`` and ``after`` then run in the child, on
    # its own ``_Send`` (note, tell, token and cancel go over the pipe); False: on the worker
    # thread, as any row a module adds (its backend object stays in this process)
    child: bool = False


DELIVERIES: dict[str, Delivery] = {  # by Profile.backend_name
    # SMTP (and the local test inbox, which is SMTP to the inbox's process) and the file
    # backend write the whole encoded message: in the sender process
    "smtp": Delivery(_smtp_backend, "", "\r\n", conversation=True, child=True),
    "file": Delivery(_file_backend, "to a file", "\n", after=_written_file, child=True),
    # the dummy backend writes nothing, but its size is measured by encoding the message
    "dummy": Delivery(_plain_backend, "to the dummy backend (discarded)", "\r\n",
                      child=True),
    # these hand what they made to the window: the message object (the Memory pane), the
    # printed text (the Console pane); in this process
    "console": Delivery(_console_backend, "to the console", "\n"),
    "locmem": Delivery(_plain_backend, "to memory", "\r\n", after=_captured),
    # the queue: a few KB to Redis per message, the delivery is the workers'; in this process
    "celery": Delivery(queueing.queue_backend, queueing.WHERE, "\r\n", after=queueing.queued),
}


def _introduce(send: _Send, message: Any) -> None:
    """The first lines of an SMTP transcript: which profile, which message."""
    profile = send.profile
    where = "local test inbox" if profile.kind == "inbox" else profile.describe()
    send.note("info", f"profile {profile.name}: {where}")
    send.note("info", f"message {send.draft.message_id}, "
                      f"Date: {send.outcome.date or '(set by mailcore)'}")


def _measure(send: _Send, backend: Any, message: Any, delivery: Delivery) -> None:
    """Message-ID, size, the server's reply and refusals, as the backend reports them (the
    size measured here when it reports none)."""
    outcome = send.outcome
    results = getattr(backend, "last_results", None) or []
    if results:
        result = results[0]
        outcome.message_id = result.message_id or send.draft.message_id
        outcome.size = result.size
        outcome.reply = reply_text(result.code, result.reply)
        outcome.refused = {a: reply_text(*r) for a, r in result.refused.items()}
    if delivery.after is not None:
        delivery.after(send, backend)
    if not results and not outcome.size:
        outcome.size = serialize(message, linesep=delivery.linesep,
                                 utf8=message_needs_smtputf8(message)).size


def _sent_sentence(outcome: SendOutcome, profile: Profile, delivery: Delivery) -> str:
    if not outcome.ok:
        return "Nothing was sent (no recipient)."
    n = len(outcome.recipients) - len(outcome.refused)
    where = delivery.where or f"via {profile.name}"
    sentence = f"Sent {where} for {n} recipient{'s' if n != 1 else ''}."
    if outcome.refused:
        sentence += " Refused: " + ", ".join(outcome.refused) + "."
    return sentence


def _failed(send: _Send, exc: BaseException) -> None:
    if send.canceller.cancelled:
        exc = Cancelled("cancelled")
    if isinstance(exc, DKIMUnavailable):
        info = ErrorInfo("dkim", str(exc))
    elif isinstance(exc, SenderGone):  # its text is the sentence
        info = ErrorInfo("sender-process", str(exc))
    else:
        info = describe_error(exc, send.profile)
    if info.kind.startswith("oauth"):  # nothing went out: say the draft is still there
        info = info.with_hint(f"{info.hint} Your draft is unchanged.".strip())
    outcome = send.outcome
    outcome.error = info
    outcome.sentence = info.sentence
    outcome.reply = info.reply
    outcome.cancelled = info.kind == "cancelled"
    send.note("info", f"error: {info.sentence}")


def _deliver(send: _Send, password: str | None, secrets: SecretStore | None) -> None:
    """Read the DKIM key, resolve the password (both from the keyring, here on the worker),
    then build the message and send it: in the sender process for a delivery that runs there
    (``Delivery.child``), else here. Raises what the send raised (DKIMUnavailable first: no
    password is asked for a send that can't be signed); a password to ask for is not an error
    (``outcome.password_needed``)."""
    profile, outcome, canceller = send.profile, send.outcome, send.canceller
    canceller.check()
    send.dkim = signer_for(profile, secrets)
    if profile.uses_oauth:
        send.token = TokenSource(profile, secrets)
    try:
        password_value = resolve_password(profile, password, secrets)
    except PasswordNeeded as need:
        canceller.check()  # cancelled meanwhile: say so, and ask for nothing
        outcome.password_needed = need.reason
        outcome.sentence = need.reason
        return
    if DELIVERIES[profile.backend_name].child:
        from mailgui.model import send_process

        send_process.transmit(send, password_value)
    else:
        transmit_here(send, password_value)


def transmit_here(send: _Send, password: str) -> None:
    """Build the message and send it through the profile's backend, in this process (the
    sender process runs this too). Raises what the send raised."""
    profile, outcome, canceller = send.profile, send.outcome, send.canceller
    send.tell("building")
    profile.check_tls_files()
    message = build_message(send.draft, profile)
    outcome.recipients = message.recipients()
    outcome.date = next(
        (str(v) for k, v in message.extra_headers.items() if k.lower() == "date"), "")
    canceller.check()
    delivery = DELIVERIES[profile.backend_name]
    if delivery.conversation:
        _introduce(send, message)
    if send.dkim is not None:
        send.note("info", f"DKIM: signing as d={send.dkim.domain}, s={send.dkim.selector}")
    send.tell("connecting")
    send.backend = backend = delivery.make(send, password)
    canceller.attach(backend)
    try:
        sent = backend.send_messages([message])
    except Exception as exc:
        if send.token is None or not token_expired(exc) or canceller.cancelled:
            raise
        # refused at AUTH, before MAIL: nothing went out. Once more with a fresh token.
        send.note("info", "OAuth2: the server refused the access token as expired; getting "
                          "a fresh one and trying once more")
        send.token.invalidate()
        _close_quietly(backend, failed=True)
        send.backend = backend = delivery.make(send, password)
        canceller.attach(backend)
        sent = backend.send_messages([message])
    _measure(send, backend, message, delivery)
    outcome.ok = bool(sent)
    outcome.sentence = _sent_sentence(outcome, profile, delivery)


def child_send(draft: Draft, profile: Profile, canceller: Canceller, *, note: Transcript,
               tell: Callable[..., None], dkim: Any, token: Any) -> _Send:
    """The sender process's ``_Send`` for a request (``send_process``): its own outcome,
    transcript and progress going back over the pipe."""
    outcome = SendOutcome(False, profile.name, draft.subject, [], message_id=draft.message_id)
    send = _Send(draft, profile, outcome, canceller, note, tell, None)
    send.dkim, send.token = dkim, token
    return send


def run_transmit(send: _Send, password: str) -> None:
    """``transmit_here`` with what ``send_draft`` does around it: a failure becomes the
    outcome's sentence, the backend is closed whatever happens. Never raises."""
    try:
        transmit_here(send, password)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a sentence
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        _failed(send, exc)
    finally:
        _close_quietly(send.backend, failed=not send.outcome.ok)


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
    """Build the draft's message with ``build_message`` and send it through ``profile``
    (how each backend does it: ``DELIVERIES``).

    Never raises for a send failure: the outcome carries the sentence and the server's reply.
    """
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
    send = _Send(draft, profile, outcome, canceller or Canceller(), note, tell, console)
    try:
        _deliver(send, password, secrets)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a sentence
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        _failed(send, exc)
    finally:
        _close_quietly(send.backend, failed=not outcome.ok)
    if outcome.password_needed:
        return outcome
    outcome.transcript = lines
    outcome.seconds = time.monotonic() - started
    tell("done", 1, 1)
    if sent_log is not None:
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
        source = TokenSource(profile, secrets) if profile.uses_oauth else None

        def connect() -> Any:
            token = noting_token(source, note) if source is not None else None
            made = SMTPBackend(transcript=watch,
                               **profile.backend_kwargs(password_value, oauth_token=token))
            if canceller is not None:
                canceller.attach(made)
            return made

        backend = connect()
        try:
            backend.open()
        except Exception as exc:
            if source is None or not token_expired(exc) or (
                    canceller is not None and canceller.cancelled):
                raise
            note("info", "OAuth2: the server refused the access token as expired; getting a "
                         "fresh one and trying once more")
            source.invalidate()
            _close_quietly(backend, failed=True)
            backend = connect()
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
