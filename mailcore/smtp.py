"""SMTP client connections: ``smtplib.SMTP`` with pipelining, streaming and a
transcript.

:class:`SMTP` and :class:`SMTP_SSL` are subclasses of the standard library's
classes, so everything that works on an ``smtplib`` connection (and every
``smtplib`` exception) works here. They add:

* :meth:`SMTP.send_serialized`, which sends a :class:`mailcore.wire.Serialized`
  message: MAIL, RCPT and DATA in one round trip when the server offers
  PIPELINING (RFC 2920), and the content written in chunks as it is produced;
* a transcript: set ``transcript`` to a callable ``(event, text)`` and it is
  told every line the client sends and the server answers, with AUTH secrets
  replaced by ``********`` and the message content summarised; after a
  successful AUTH an ``"auth"`` event says who logged in and with which
  mechanism (never the password);
* progress: ``send_serialized(..., progress=f)`` calls ``f(bytes_done,
  bytes_total)`` while the content is written (see :meth:`_write_content`);
* abort: pass ``abort_handle=AbortHandle()`` and ``handle.abort()`` (from any
  thread) shuts down the connection's socket, also while it is still being
  connected, so a blocked send wakes at once.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from mailcore.wire import Serialized

__all__ = [
    "SMTP",
    "SMTP_SSL",
    "AbortHandle",
    "ProgressCallback",
    "SMTPAborted",
    "SendReply",
    "TranscriptCallback",
]

logger = logging.getLogger("mailcore.smtp")

TranscriptCallback = Callable[[str, str], None]
ProgressCallback = Callable[[int, int], None]
CRLF = b"\r\n"
REDACTED = "********"
# With a progress callback, content is written (and reported) at most this many bytes at a time.
PROGRESS_WRITE_SIZE = 512 * 1024


class SMTPAborted(smtplib.SMTPServerDisconnected):
    """The send was stopped by ``abort()`` (not by the network or the server)."""

    def __init__(self, message: str = "sending was aborted") -> None:
        super().__init__(message)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, never SSLSocket.shutdown: the TLS layer stays untouched
    # for the thread that is using it, which just gets an error on its next read or write.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class AbortHandle:
    """Shuts down, from any thread, the sockets of the connections that registered with it.

    Connections register a duplicate of their TCP socket (``socket.dup()``) as soon as the
    socket exists, before ``connect()``; a shutdown of the duplicate shuts the TCP connection
    down for every descriptor, through STARTTLS and implicit TLS alike, so a thread blocked in
    connect(), in a read of the greeting, in a TLS handshake or in a write wakes at once with an
    ``OSError``. After :meth:`abort` every socket registered later is shut down at once
    (and :class:`SMTPAborted` raised) until :meth:`reset`.
    """

    # How long an abort waits for the server's answer to a final dot before it cuts the line
    # all the same (a server that never answers, or stopped reading, would block for ever).
    COMMIT_GRACE = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._aborted = False
        self._held = 0
        self.cut_while_held = False  # the grace ran out: the outcome of a message is unknown

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Shut down every registered socket and remember it. Thread-safe, never blocks.

        While :meth:`hold` is in force (a message's final dot has been sent and its
        answer is awaited), the shutdown waits for :meth:`unhold`: cutting the line then
        could not stop the message, only lose the news that it was delivered. It waits
        ``COMMIT_GRACE`` seconds at most: a server that never answers (or stopped reading
        before the end) is cut off then, and the send raises SMTPAborted saying the
        message's fate is unknown.
        """
        with self._lock:
            self._aborted = True
            if not self._held:
                self._shutdown_all()
                return
        timer = threading.Timer(self.COMMIT_GRACE, self._grace_over)
        timer.daemon = True
        timer.start()

    def _grace_over(self) -> None:
        with self._lock:
            if self._aborted and self._held:
                self.cut_while_held = True
                self._shutdown_all()

    def hold(self) -> None:
        """Defer shutdowns until :meth:`unhold` (see :meth:`abort`)."""
        with self._lock:
            self._held += 1

    def unhold(self) -> None:
        with self._lock:
            self._held -= 1
            if not self._held and self._aborted:
                self._shutdown_all()

    def _shutdown_all(self) -> None:
        # Under the lock: a socket cannot be closed (and its descriptor reused) meanwhile.
        for sock in self._sockets:
            _shutdown(sock)

    def reset(self) -> None:
        """Forget an abort: sockets registered from now on are left alone."""
        with self._lock:
            self._aborted = False
            self.cut_while_held = False

    def check(self) -> None:
        """Raise :class:`SMTPAborted` if :meth:`abort` was called (and not reset)."""
        if self._aborted:
            raise SMTPAborted()

    def register(self, sock: socket.socket) -> None:
        """Watch ``sock``; if already aborted, shut it down and raise SMTPAborted."""
        with self._lock:
            self._sockets.add(sock)
            if self._aborted:
                _shutdown(sock)
                raise SMTPAborted()

    def release(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` and close it."""
        with self._lock:
            self._sockets.discard(sock)
            try:
                sock.close()
            except OSError:
                pass


class SendReply(tuple):
    """What the server said about one message: ``(refused, code, text)``.

    ``refused`` maps each refused recipient to ``(code, text)`` (as
    ``smtplib.SMTP.sendmail`` returns), ``code``/``text`` are the server's
    final answer to the message (``250``, ``"2.0.0 Ok: queued as 4F7A"``).
    """

    __slots__ = ()

    def __new__(cls, refused: dict[str, tuple[int, bytes]], code: int, text: bytes) -> SendReply:
        return tuple.__new__(cls, (refused, code, text))

    refused = property(lambda self: self[0])
    code = property(lambda self: self[1])
    text = property(lambda self: self[2])


# A dot-atom local part @ an ASCII domain of 1-63 character labels: the form
# for which sanitize_address() and smtplib.quoteaddr() change nothing.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDRESS = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}})*\Z"
)


def is_simple_address(addr: str) -> bool:
    return len(addr) <= 254 and _SIMPLE_ADDRESS.match(addr) is not None


def quoteaddr(addr: str) -> str:
    """``smtplib.quoteaddr``, without the parser for the common case."""
    if is_simple_address(addr):
        return f"<{addr}>"
    return smtplib.quoteaddr(addr)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _stuff_dots(chunk: bytes, at_line_start: bool) -> bytes:
    """Double every dot that starts a line (RFC 5321 section 4.5.2)."""
    chunk = chunk.replace(b"\r\n.", b"\r\n..")
    if at_line_start and chunk[:1] == b".":
        chunk = b"." + chunk
    return chunk


class _Transcribing:
    """The parts shared by the plain and the implicit-TLS connection."""

    def __init__(
        self,
        *args: Any,
        transcript: TranscriptCallback | None = None,
        abort_handle: AbortHandle | None = None,
        **kwargs: Any,
    ) -> None:
        # Set before smtplib's __init__, which connects when given a host.
        self.transcript = transcript
        self.abort_handle = abort_handle
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    transcript: TranscriptCallback | None = None
    # Also tell the transcript every line of message content ("content" events);
    # off by default: the content is summarised in one "data" event.
    transcript_data = False
    abort_handle: AbortHandle | None = None
    _in_auth = False
    _in_content = False
    _control: socket.socket | None = None  # a dup() of the TCP socket, for AbortHandle
    _auth_mechanism: str | None = None

    # -- sockets --------------------------------------------------------------------
    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        """``smtplib.SMTP._get_socket``, with the socket registered with ``abort_handle``
        before it connects, so that even a slow TCP connect can be aborted."""
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        if self.debuglevel > 0:  # type: ignore[attr-defined]
            self._print_debug("connect: to", (host, port), self.source_address)  # type: ignore[attr-defined]
        return self._create_connection(host, port, timeout)

    def _create_connection(self, host: str, port: int, timeout: Any) -> socket.socket:
        """What ``socket.create_connection`` does (every address in turn, the last error
        raised), plus the registration."""
        handle = self.abort_handle
        source_address = self.source_address  # type: ignore[attr-defined]
        error: OSError | None = None
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for family, socktype, proto, _canonname, address in infos:
            if handle is not None:
                handle.check()
            sock = socket.socket(family, socktype, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                self._watch(sock)
                sock.connect(address)
                return sock
            except BaseException as exc:
                self._unwatch()
                sock.close()
                if handle is not None and handle.aborted:
                    if isinstance(exc, SMTPAborted):
                        raise
                    raise SMTPAborted() from exc
                if not isinstance(exc, OSError):
                    raise
                error = exc
        if error is not None:
            try:
                raise error
            finally:
                error = None  # no reference cycle through the traceback
        raise OSError("getaddrinfo returns an empty list")

    def _watch(self, sock: socket.socket) -> None:
        handle = self.abort_handle
        if handle is None:
            return
        self._unwatch()
        control = sock.dup()
        self._control = control
        handle.register(control)

    def _unwatch(self) -> None:
        control = self._control
        if control is None:
            return
        self._control = None
        handle = self.abort_handle
        if handle is not None:
            handle.release(control)
        else:  # pragma: no cover - the handle was removed meanwhile
            control.close()

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            # The duplicate keeps the TCP connection open: close it with the socket.
            self._unwatch()

    # -- transcript -------------------------------------------------------
    def _note(self, event: str, text: str) -> None:
        hook = self.transcript
        if hook is not None:
            try:
                hook(event, text)
            except Exception:  # noqa: BLE001 - a broken observer must not break sending
                logger.exception("transcript callback failed")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", event, text)

    def _observed(self) -> bool:
        return self.transcript is not None or logger.isEnabledFor(logging.DEBUG)

    def send(self, s: Any) -> None:
        if self._in_content:
            super().send(s)  # type: ignore[misc]
            return
        if self._observed():
            text = s.decode("ascii", "replace") if isinstance(s, bytes) else str(s)
            for line in text.rstrip("\r\n").split("\r\n"):
                upper = line.upper()
                if upper.startswith("AUTH "):
                    mechanism = line.split(" ", 2)[1] if " " in line else ""
                    line = f"AUTH {mechanism} {REDACTED}" if line.count(" ") >= 2 else line
                    self._in_auth = True
                elif self._in_auth:
                    line = REDACTED
                self._note("client", line)
        elif isinstance(s, str | bytes) and s[:5].upper() in ("AUTH ", b"AUTH "):
            self._in_auth = True
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()  # type: ignore[misc]
        if code != 334:
            self._in_auth = False
        if self._observed():
            lines = message.decode("utf-8", "replace").split("\n") if message else [""]
            for index, line in enumerate(lines):
                sep = " " if index == len(lines) - 1 else "-"
                self._note("server", f"{code}{sep}{line}".rstrip())
        return code, message

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        if self._observed():
            self._note("connect", f"{host}:{port}")
        started = time.monotonic()
        result = super().connect(host, port, source_address)  # type: ignore[misc]
        if self._observed():
            version = getattr(self.sock, "version", None)
            tls = f" over {version()}" if callable(version) and version() else ""
            cipher = getattr(self.sock, "cipher", None)
            if tls and callable(cipher) and cipher():
                tls += f" {cipher()[0]}"
            self._note("info", f"connected in {(time.monotonic() - started) * 1000:.0f} ms{tls}")
        return result

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> Any:
        """``smtplib.SMTP.auth``, but credentials are sent as UTF-8 (RFC 4616, RFC 4954)
        instead of failing on a non-ASCII password with an error that quotes a character of
        it; and the mechanism is remembered for the transcript."""
        mechanism = mechanism.upper()
        refused = getattr(self, "_credentials_refused", None)
        if refused is not None:
            # PLAIN or LOGIN got 535, the credentials are wrong (RFC 4954): smtplib would try
            # them again with the next mechanism, one more failed login towards a lockout.
            raise refused
        self._auth_mechanism = mechanism
        initial_response = authobject() if initial_response_ok else None
        if initial_response is not None:
            response = _b64(initial_response)
            code, resp = self.docmd("AUTH", mechanism + " " + response)  # type: ignore[attr-defined]
            self._auth_challenge_count = 1
        else:
            code, resp = self.docmd("AUTH", mechanism)  # type: ignore[attr-defined]
            self._auth_challenge_count = 0
        # If the server responds with a challenge, send the response.
        while code == 334:
            self._auth_challenge_count += 1
            challenge = base64.decodebytes(resp)
            code, resp = self.docmd(_b64(authobject(challenge)))  # type: ignore[attr-defined]
            # If the server keeps sending challenges, something is wrong.
            if self._auth_challenge_count > smtplib._MAXCHALLENGE:
                raise smtplib.SMTPException(
                    "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
                )
        if code in (235, 503):
            return code, resp
        error = smtplib.SMTPAuthenticationError(code, resp)
        if code == 535 and mechanism in ("PLAIN", "LOGIN"):
            # The password itself was checked and refused. (After CRAM-MD5 the next
            # mechanism is still tried: servers that store only a hash of the password
            # refuse CRAM-MD5 with 535 and accept PLAIN.)
            self._credentials_refused = error
        raise error

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """``smtplib.SMTP.auth_cram_md5`` with the password as UTF-8."""
        if challenge is None:
            return None
        password = self.password.encode("utf-8")  # type: ignore[attr-defined]
        return self.user + " " + hmac.HMAC(password, challenge, "md5").hexdigest()  # type: ignore[attr-defined]

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> Any:
        """``smtplib.SMTP.login``, then an ``"auth"`` transcript event naming the user and
        the mechanism that succeeded (never the password)."""
        self._auth_mechanism = None
        self._credentials_refused: smtplib.SMTPAuthenticationError | None = None
        try:
            result = super().login(  # type: ignore[misc]
                user, password, initial_response_ok=initial_response_ok
            )
        finally:
            self._credentials_refused = None
        code = result[0] if isinstance(result, tuple) and result else None
        if self._observed():
            # 503 ("already authenticated") names no mechanism of this login.
            mechanism = self._auth_mechanism if code == 235 else None
            how = f" ({mechanism})" if mechanism else ""
            self._note("auth", f"authenticated as {user}{how}")
        return result

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        result = super().starttls(*args, **kwargs)  # type: ignore[misc]
        if self._observed():
            sock = self.sock
            version = sock.version() if hasattr(sock, "version") else "TLS"
            cipher = sock.cipher()[0] if hasattr(sock, "cipher") and sock.cipher() else ""
            self._note("tls", f"TLS started: {version} {cipher}".rstrip())
        return result

    # -- sending ------------------------------------------------------------
    def pipelining(self) -> bool:
        """True if the server offers PIPELINING (RFC 2920)."""
        self.ehlo_or_helo_if_needed()
        return bool(self.does_esmtp and self.has_extn("pipelining"))

    def _envelope(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        data: Serialized,
        mail_options: Iterable[str] = (),
        rcpt_options: Iterable[str] = (),
    ) -> tuple[list[str], list[str]]:
        """The MAIL and RCPT commands for one message (and the recipients)."""
        if data.linesep != "\r\n":
            raise ValueError("SMTP needs the message serialised with CRLF line ends")
        self.ehlo_or_helo_if_needed()
        mail_options = list(mail_options)
        rcpt_options = list(rcpt_options)
        esmtp_opts = []
        if self.does_esmtp and self.has_extn("size"):
            esmtp_opts.append("size=%d" % data.size)
        if self.does_esmtp:  # as smtplib: a HELO-only server gets no ESMTP options
            esmtp_opts.extend(mail_options)
        else:
            rcpt_options = []
        if any(x.lower() == "smtputf8" for x in mail_options):
            if not self.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        to_addrs = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        commands = ["mail FROM:%s%s" % (quoteaddr(from_addr), _options(esmtp_opts))]
        commands += ["rcpt TO:%s%s" % (quoteaddr(a), _options(rcpt_options)) for a in to_addrs]
        return commands, to_addrs

    def _encode_commands(self, commands: list[str]) -> bytes:
        return "".join(c + "\r\n" for c in commands).encode(self.command_encoding)

    def _read_envelope_replies(
        self, from_addr: str, to_addrs: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Read the replies to pipelined MAIL, RCPT... and DATA; raise (with
        the conversation back in step) unless DATA got its 354."""
        mail_reply = self.getreply()
        senderrs: dict[str, tuple[int, bytes]] = {}
        for addr in to_addrs:
            code, resp = self.getreply()
            if code not in (250, 251):
                senderrs[addr] = (code, resp)
        data_reply = self.getreply()
        self._check_envelope(from_addr, to_addrs, mail_reply, senderrs, data_reply)
        return senderrs

    def _check_envelope(
        self,
        from_addr: str,
        to_addrs: list[str],
        mail_reply: tuple[int, bytes],
        senderrs: dict[str, tuple[int, bytes]],
        data_reply: tuple[int, bytes] | None,
    ) -> None:
        code, resp = mail_reply
        if code != 250:
            if code != 421:
                self._abandon(data_reply)
            self._end_transaction(code)
            raise smtplib.SMTPSenderRefused(code, resp, from_addr)
        if len(senderrs) == len(to_addrs):
            self._abandon(data_reply)
            self._rset()
            raise smtplib.SMTPRecipientsRefused(senderrs)
        assert data_reply is not None
        code, resp = data_reply
        if code != 354:
            self._end_transaction(code)
            raise smtplib.SMTPDataError(code, resp)

    def _check_final(self, reply: tuple[int, bytes]) -> None:
        code, resp = reply
        if code != 250:
            self._end_transaction(code)
            raise smtplib.SMTPDataError(code, resp)

    def _end_transaction(self, code: int) -> None:
        """After a refusal: close on 421 (the server is leaving), else RSET."""
        if code == 421:
            self.close()
        else:
            self._rset()

    def send_serialized(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        data: Serialized,
        mail_options: Iterable[str] = (),
        rcpt_options: Iterable[str] = (),
        progress: ProgressCallback | None = None,
    ) -> SendReply:
        """Send one message, as ``sendmail`` does but pipelined and streamed.

        Raises the same exceptions as ``smtplib.SMTP.sendmail``:
        SMTPSenderRefused, SMTPRecipientsRefused (all refused), SMTPDataError;
        a partial refusal is returned in ``SendReply.refused``. ``progress`` is
        called as the content is written (see :meth:`_write_content`). ``data`` must
        have CRLF line ends (``serialize(message, linesep="\\r\\n")``): a bare LF
        would end the content early on a lenient server.
        """
        commands, to_addrs = self._envelope(from_addr, to_addrs, data, mail_options, rcpt_options)
        if self.pipelining():
            self.send(self._encode_commands([*commands, "data"]))
            senderrs = self._read_envelope_replies(from_addr, to_addrs)
        else:
            mail_reply = self.docmd(commands[0])
            data_reply = None
            senderrs = {}
            if mail_reply[0] == 250:
                for addr, cmd in zip(to_addrs, commands[1:]):
                    code, resp = self.docmd(cmd)
                    if code not in (250, 251):
                        senderrs[addr] = (code, resp)
                        if code == 421:
                            self.close()
                            raise smtplib.SMTPRecipientsRefused(senderrs)
                if len(senderrs) < len(to_addrs):
                    data_reply = self.docmd("data")
            self._check_envelope(from_addr, to_addrs, mail_reply, senderrs, data_reply)
        tail = self._write_content(data, progress)
        with self._committed():
            self._send_tail(tail)
            reply = self.getreply()
        self._check_final(reply)
        return SendReply(senderrs, *reply)

    def send_pipelined(
        self,
        jobs: Iterator[tuple[Any, str, Sequence[str], Serialized]],
        progress: ProgressCallback | None = None,
    ) -> Iterator[tuple[Any, SendReply | smtplib.SMTPException]]:
        """Send many messages with one round trip each: the end of one
        message's content goes in the same write as the next message's MAIL,
        RCPT and DATA (RFC 2920 allows the content to open a group).

        ``jobs`` yields ``(token, from_addr, to_addrs, data)``; this yields
        ``(token, SendReply or the SMTPException for that message)`` in order.
        If the caller stops early (raises on a failure) while a later message's
        DATA is already open, the connection is closed: nothing half-sent is
        ever delivered. Needs a server that offers PIPELINING. ``progress`` is
        called for each message's content as in :meth:`send_serialized`.
        """
        pending: tuple[Any, dict, bytes] | None = None  # content written, final dot not sent
        data_open = False
        deferred: Exception | None = None  # preparing a later message failed

        def take() -> tuple[Any, str, Sequence[str], Serialized] | None:
            nonlocal deferred
            try:
                return next(jobs, None)
            except Exception as exc:  # noqa: BLE001 - raised once the messages before are done
                deferred = exc
                return None

        try:
            job = next(jobs, None)
            while job is not None:
                token, from_addr, to_addrs, data = job
                commands, to_addrs = self._envelope(from_addr, to_addrs, data)
                head = self._encode_commands([*commands, "data"])
                finishing = pending
                pending = None
                previous = None
                if finishing is not None:
                    with self._committed():
                        self._send_tail(finishing[2], head)
                        data_open = False
                        # While the server reads and answers, prepare the next message.
                        upcoming = take()
                        previous = (finishing[0], self._final_result(finishing[1]))
                    if self.sock is None:  # 421 after the previous message: server gone
                        yield previous
                        break
                else:
                    self.send(head)
                    upcoming = take()
                try:
                    senderrs = self._read_envelope_replies(from_addr, to_addrs)
                    data_open = True
                except smtplib.SMTPException as exc:
                    if previous is not None:
                        yield previous
                    yield token, exc
                    if self.sock is None:
                        break
                    job = upcoming
                    continue
                if previous is not None:
                    yield previous
                pending = (token, senderrs, self._write_content(data, progress))
                job = upcoming
            if pending is not None:
                token, senderrs, tail = pending
                pending = None
                with self._committed():
                    self._send_tail(tail)
                    data_open = False
                    final = self._final_result(senderrs)
                yield token, final
            if deferred is not None:
                raise deferred
        finally:
            if data_open or pending is not None:
                # Stopped in the middle of a message: end the connection
                # rather than let half a message through.
                self.close()

    def _final_result(
        self, senderrs: dict[str, tuple[int, bytes]]
    ) -> SendReply | smtplib.SMTPException:
        code, resp = self.getreply()
        if code == 250:
            return SendReply(senderrs, code, resp)
        # The final dot ends the transaction whatever the answer, so no RSET:
        # the next message's commands are already on their way.
        if code == 421:
            self.close()
        return smtplib.SMTPDataError(code, resp)

    def _abandon(self, data_reply: tuple[int, bytes] | None) -> None:
        """If the server accepted DATA although the transaction failed, end
        the (empty) content so the conversation stays in step."""
        if data_reply is not None and data_reply[0] == 354:
            self.send(b".\r\n")
            self.getreply()

    def _write_content(self, data: Serialized, progress: ProgressCallback | None = None) -> bytes:
        """Write the message content (dot-stuffed), all but the last piece;
        return that piece with the final dot, for the caller to send (alone,
        or together with the next commands).

        With ``progress``, it is called as ``progress(bytes_done, bytes_total)``
        (``bytes_total`` is ``data.size``; bytes are counted before dot-stuffing)
        before the first write, after every write (of at most
        ``PROGRESS_WRITE_SIZE`` bytes) and, once all of the content is written,
        with ``bytes_done == bytes_total``; the returned piece is then only the
        final dot. Every call comes before the final dot is sent: if the callback
        raises, the connection is closed and the exception propagates, so the
        message is never delivered.
        """
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        started = time.monotonic()
        at_line_start = True
        last = b""
        total = 0
        buffer: list[bytes] = []
        buffered = 0
        size = data.size if progress is not None else 0
        done = 0  # content bytes written (before stuffing), for progress
        waiting = 0  # content bytes in buffer (before stuffing)
        show_content = self.transcript_data and self.transcript is not None
        partial = b""  # the content's unfinished last line, for the transcript
        self._in_content = True
        try:
            if progress is not None:
                self._report(progress, 0, size)
            for chunk, may_need_stuffing in data.stuffable_chunks():
                raw_length = len(chunk)
                if may_need_stuffing:
                    if last == b"\r" and chunk[:2] == b"\n.":
                        chunk = b"\n.." + chunk[2:]
                    chunk = _stuff_dots(chunk, at_line_start)
                at_line_start = chunk[-2:] == CRLF or (last == b"\r" and chunk == b"\n")
                last = chunk[-1:]
                total += len(chunk)
                if show_content:
                    partial = self._note_content(partial + chunk)
                # Small pieces are gathered into one write; large ones go at once.
                buffer.append(chunk)
                buffered += len(chunk)
                waiting += raw_length
                if buffered >= 65536:
                    if progress is None:
                        self.send(b"".join(buffer))
                    else:
                        done = self._send_reporting(b"".join(buffer), done, waiting, size, progress)
                    buffer.clear()
                    buffered = 0
                    waiting = 0
            if progress is not None:
                if buffer:
                    done = self._send_reporting(b"".join(buffer), done, waiting, size, progress)
                    buffer.clear()
                if done != size:
                    self._report(progress, size, size)
        finally:
            self._in_content = False
        buffer.append(b".\r\n" if at_line_start and total else b"\r\n.\r\n")
        if show_content and partial:
            self._note("content", partial.decode("utf-8", "replace"))
        if self._observed():
            elapsed = (time.monotonic() - started) * 1000
            self._note("data", f"[{total:,} bytes of message content in {elapsed:.0f} ms]")
            self._note("client", ".")
        return b"".join(buffer)

    def _note_content(self, data: bytes) -> bytes:
        """Tell the transcript each whole line of message content (as sent, dot-stuffed);
        return the unfinished rest."""
        *lines, rest = data.split(b"\r\n")
        for line in lines:
            self._note("content", line.decode("utf-8", "replace"))
        return rest

    def _send_reporting(
        self, blob: bytes, done: int, raw_length: int, size: int, progress: ProgressCallback
    ) -> int:
        """Write ``blob`` (``raw_length`` content bytes before stuffing) in pieces of at most
        PROGRESS_WRITE_SIZE, reporting after each; return the new ``done``."""
        view = memoryview(blob)
        written = 0
        for start in range(0, len(view), PROGRESS_WRITE_SIZE):
            piece = view[start : start + PROGRESS_WRITE_SIZE]
            self.send(piece)
            written += len(piece)
            self._report(progress, min(done + min(written, raw_length), size), size)
        return min(done + raw_length, size)

    def _report(self, progress: ProgressCallback, done: int, total: int) -> None:
        try:
            progress(done, total)
        except BaseException:
            # Stop like an abort: the connection goes, the final dot is never sent.
            self.close()
            raise

    @contextlib.contextmanager
    def _committed(self) -> Iterator[None]:
        """From sending a final dot until the server's answer: the message may be delivered
        now, so an abort waits until we know (the answer, or the socket's timeout)."""
        handle = self.abort_handle
        if handle is None:
            yield
            return
        handle.hold()
        try:
            yield
        except OSError as exc:
            if handle.cut_while_held and not isinstance(exc, SMTPAborted):
                raise SMTPAborted(
                    "sending was aborted while the server was to confirm the end of the "
                    "message: it may or may not have been delivered") from exc
            raise
        finally:
            handle.unhold()

    def _send_tail(self, tail: bytes, head: bytes = b"") -> None:
        """One write: the end of a message's content (``tail``, not shown in
        the transcript) and the next commands (``head``, shown)."""
        if head and self._observed():
            for line in head.decode(self.command_encoding, "replace").rstrip("\r\n").split("\r\n"):
                self._note("client", line)
        self._in_content = True
        try:
            self.send(tail + head)
        finally:
            self._in_content = False


def _options(options: Sequence[str]) -> str:
    return (" " + " ".join(options)) if options else ""


class SMTP(_Transcribing, smtplib.SMTP):
    """``smtplib.SMTP`` with pipelined, streamed sending, a transcript and abort."""


class SMTP_SSL(_Transcribing, smtplib.SMTP_SSL):  # noqa: N801 - mirrors smtplib's name
    """``smtplib.SMTP_SSL`` (implicit TLS) with the same additions."""

    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        # smtplib.SMTP_SSL._get_socket: the (registered) TCP socket, wrapped in TLS with
        # the host name checked; the registered duplicate also covers the handshake.
        sock = super()._get_socket(host, port, timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            self._unwatch()  # wrap_socket has closed sock
            raise
