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
  connected, so a blocked send wakes at once;
* limits on what a server can make the client wait for or hold: the timeout bounds
  the wait for a whole reply (not each read), and one reply may have at most
  ``max_reply_lines`` lines of at most ``max_reply_line`` bytes, ``max_reply_bytes``
  in all (see :meth:`getreply`). Each limit raises its own exception from
  :mod:`mailcore.errors` and closes the connection;
* typed errors: a 421 at any stage raises :class:`~mailcore.errors.SMTPServiceUnavailableError`
  with the server's code and text; STARTTLS and AUTH problems, a message too large for
  the server and a certificate for other host names each have their own type.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import io
import ipaddress
import json
import logging
import os
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from mailcore.errors import (
    _NAME_MISMATCH,
    CertificateHostnameError,
    SMTPAborted,
    SMTPAuthNotSupportedError,
    SMTPConnectionLostError,
    SMTPConnectTimeoutError,
    SMTPMessageRefusedError,
    SMTPMessageTooLargeError,
    SMTPOAuthTokenError,
    SMTPReplyLineTooLongError,
    SMTPReplyTimeoutError,
    SMTPReplyTooLargeError,
    SMTPReplyTooManyLinesError,
    SMTPServiceUnavailableError,
    SMTPStartTLSNotSupportedError,
    SMTPStartTLSRefusedError,
    SMTPTimeoutError,
    SMTPUTF8RequiredError,
    SMTPWriteTimeoutError,
)
from mailcore.wire import Serialized

__all__ = [
    "LMTP",
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

# What one reply may hold (the defaults of SMTP.max_reply_*). RFC 5321 allows reply lines of
# 512 octets, CRLF included; real replies stay far below these, which only keep a hostile or
# broken server from making the client hold (or parse) without end.
MAX_REPLY_LINE = 8192  # bytes of one line, CRLF included: 16 times RFC 5321's, as smtplib
MAX_REPLY_LINES = 1000  # lines of one reply: a rich EHLO reply has about 20
MAX_REPLY_BYTES = 64 * 1024  # bytes of one reply
# The buffer of the reply reader: bytes asked of the socket per read (smtplib's asks 8192).
_READ_SIZE = 16384
# Waiting for a reply that is due within microseconds (a server on this machine or next to it),
# the reader first watches the socket on the CPU for up to SPIN_MAX_NS before it sleeps: a
# sleeping process is woken only after its CPU has been woken, which on a virtual machine whose
# idle CPUs halt costs about as much again as the reply itself (measured: a client doing no
# work, one connection, pipelined, to smtp-sink: 8-11k messages/s sleeping, 16-22k watching).
# The watch adapts per connection, as Linux's haltpoll does for idle CPUs: it starts at
# SPIN_START_NS, doubles (up to SPIN_MAX_NS) after a wait that a longer watch would have caught,
# halves after one that was longer than SPIN_MAX_NS, and stops below SPIN_START_NS / 4, to
# start again after the next wait shorter than SPIN_MAX_NS. A distant server thus costs a few
# short watches per connection, and never more than SPIN_MAX_NS of CPU per reply. Between two
# looks the watch yields the CPU (sched_yield): another process that is ready to run (the
# server, another worker) runs at once; with none, the CPU stays awake for this one. A yield
# that gave the CPU away ends the watch: with more busy processes than CPUs, watching only
# takes CPU from the others (4 queue workers, Redis and smtp-sink on 2 cores, runs minutes
# apart on a noisy machine: 6.8-7.6k messages/s watching without yielding, 8.4-8.6k
# yielding, 7.1-7.3k not watching at all). A yield only sees the processes queued on its own
# CPU, though, and a watching process counts as busy to the scheduler: with more processes
# ready to run than CPUs no CPU halts, so there is nothing to save and the watch is skipped
# (machine_busy: the number of processes ready to run, from /proc/loadavg, smoothed, read at
# most every BUSY_CHECK_NS). 4 queue workers, Redis and smtp-sink on 2 cores had 3-7 processes ready
# to run besides the one looking, a direct send to smtp-sink 0-1; in 5 interleaved pairs of
# runs on one afternoon, the 4 workers delivered 6.1-7.7k messages/s without watching and
# 5.5-6.9k watching (with the yield), at 136-170 against 161-197 us of CPU a message.
SPIN_MAX_NS = 200_000
SPIN_START_NS = 50_000
SPIN_YIELDED_NS = 20_000  # a yield that took longer: another process ran (see _watch)
BUSY_CHECK_NS = 10_000_000
_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)
_CPUS = os.cpu_count() or 1
# [time of the next look (ns), ready-to-run processes besides this one (smoothed; None before
# the first look), busy?, the open /proc/loadavg or None]; shared by the process's connections
# (a race between threads costs one look too many)
_BUSY: list[Any] = [0, None, False, None]


def machine_busy(now_ns: int) -> bool:
    """Whether there are more processes ready to run besides this one than CPUs (Linux's
    /proc/loadavg; elsewhere never), looked at no more often than every BUSY_CHECK_NS. (More,
    not as many: a look comes right after a command was sent, when the server that reads it,
    and Redis for a queue worker, have just been woken; they sleep again in microseconds.)"""
    state = _BUSY
    if now_ns < state[0]:
        return state[2]
    state[0] = now_ns + BUSY_CHECK_NS
    try:
        if state[3] is None:
            state[3] = os.open("/proc/loadavg", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        running = int(os.pread(state[3], 128, 0).split()[3].split(b"/")[0]) - 1
    except (OSError, ValueError, IndexError, AttributeError):
        state[0], state[2] = float("inf"), False  # not Linux: the yield alone decides
        return False
    previous = state[1]
    state[1] = smoothed = running if previous is None else previous * 0.75 + running * 0.25
    state[2] = busy = smoothed > _CPUS
    return busy


# The commands whose reply an error names (``command``, see mailcore.errors); others leave the
# last one in place.
_COMMANDS = frozenset(("EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET",
                       "NOOP", "QUIT", "VRFY", "EXPN", "HELP"))
# At most this long (seconds) for each step of reading a certificate's names after a mismatch.
_PROBE_TIMEOUT = 10.0


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


def is_8bit(data: Serialized) -> bool:
    """True if the message has a byte outside ASCII (an 8bit part, or UTF-8 headers): then
    MAIL says ``BODY=8BITMIME`` to a server that offers it (``Serialized.eight_bit``)."""
    return bool(data.eight_bit)


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


class _DotStuffer:
    """Dot-stuffing (RFC 5321 4.5.2) of content written in chunks: a line that begins with
    "." gets one more, also when the line break before it ended the chunk before; then the
    end of the data (``end()``: the final dot, after a line break of its own if needed)."""

    __slots__ = ("at_line_start", "last", "total")

    def __init__(self) -> None:
        self.at_line_start = True
        self.last = b""
        self.total = 0  # bytes given out, stuffed

    def feed(self, chunk: bytes, may_need_stuffing: bool = True) -> bytes:
        last = self.last
        if may_need_stuffing:
            if last == b"\r" and chunk[:2] == b"\n.":
                chunk = b"\n.." + chunk[2:]
            chunk = _stuff_dots(chunk, self.at_line_start)
        self.at_line_start = chunk[-2:] == CRLF or (last == b"\r" and chunk == b"\n")
        self.last = chunk[-1:]
        self.total += len(chunk)
        return chunk

    def end(self) -> bytes:
        return b".\r\n" if self.at_line_start and self.total else b"\r\n.\r\n"


def _small_content(data: Serialized, limit: int = 65536) -> bytes | None:
    """What :meth:`SMTP._write_content` returns (without a progress callback) for a message
    of which it writes nothing itself: all of the content, dot-stuffed, with the final dot.
    For a message made of bytes only (no file or base64 body to read) whose stuffed content
    stays under the size at which ``_write_content`` starts writing; None otherwise."""
    byte_pieces = getattr(data, "byte_pieces", None)  # (a Serialized; anything else: None)
    pieces = byte_pieces() if byte_pieces is not None else None
    if pieces is None:
        return None
    stuffer = _DotStuffer()
    buffer: list[bytes] = []
    for chunk in pieces:
        if not chunk:
            continue
        buffer.append(stuffer.feed(chunk))
        if stuffer.total >= limit:
            return None
    buffer.append(stuffer.end())
    return b"".join(buffer)


class _ReplyStream(io.RawIOBase):
    """The socket as smtplib's ``SMTP.file`` reads it (through an ``io.BufferedReader``,
    whose C ``readline`` splits the lines), with a deadline for each reply: ``getreply``
    clears ``deadline`` as a reply starts; the first read the reply needs sets it from the
    socket's timeout, and each further read waits only for what is left of it. Reads happen
    only when the buffer holds no whole line, so a reply already received costs no clock
    and no ``settimeout``.

    smtplib drops ``SMTP.file`` (sets it to None) on connect and after STARTTLS, so nothing
    read before the TLS handshake is ever taken for a reply after it.
    """

    def __init__(self, sock: socket.socket, watch: bool = True) -> None:
        super().__init__()
        self.sock: socket.socket | None = sock
        self.deadline: float | None = None
        self.timeout: float | None = None  # the socket's, as this reply started
        self.received = 0  # bytes read from the socket since the reply's first read
        # the watch before sleeping (-1: never; select.poll is not on every system)
        self.spin_ns = SPIN_START_NS if watch and hasattr(select, "poll") else -1
        self.caught = 0  # replies that came while the socket was watched
        self.missed = 0  # watches that ran out (the read then slept)
        self.yielded = 0  # watches ended because other processes wanted the CPU
        self.skipped = 0  # waits not watched because every CPU was busy (machine_busy)
        self._poll: Any = None

    def readable(self) -> bool:
        return True

    def _watch(self, sock: Any, window: int) -> None:
        """Watch the socket on the CPU for up to ``window`` ns before a read that would
        sleep (see SPIN_MAX_NS): until it is readable, the watch runs out, or another
        process took the CPU in a yield. The read that follows does any waiting left."""
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
        if pending is not None and pending():
            return
        poll = self._poll
        if poll is None:
            registered = select.poll()
            registered.register(sock.fileno(), select.POLLIN)
            poll = self._poll = registered.poll
        if poll(0) or not window:
            return
        clock = time.perf_counter_ns
        start = now = clock()
        if machine_busy(start):
            self.skipped += 1
            return
        while not poll(0):
            if now - start >= window:
                self.missed += 1
                return
            _yield()  # a process waiting for this CPU gets it; none: back at once, awake
            then, now = now, clock()
            if now - then > SPIN_YIELDED_NS:
                # Another process had the CPU meanwhile: it is wanted, and busy, so it will
                # not halt, and sleeping costs no waking. Sleep (the read) and let them run.
                self.yielded += 1
                return
        self.caught += 1

    def _adapt(self, waited: int) -> None:
        """``waited``: ns from the watch's start until the socket had data."""
        window = self.spin_ns
        if waited <= SPIN_MAX_NS:  # a watch this long catches such a reply
            if window < SPIN_MAX_NS:
                self.spin_ns = min(SPIN_MAX_NS, max(window * 2, SPIN_START_NS))
        else:
            window //= 2
            self.spin_ns = window if window >= SPIN_START_NS // 4 else 0

    def readinto(self, buffer: Any) -> int:
        sock = self.sock
        if sock is None:
            raise OSError("the connection is closed")
        if self.spin_ns < 0:
            return self._recv_into(sock, buffer)
        started = time.perf_counter_ns()
        self._watch(sock, self.spin_ns)
        count = self._recv_into(sock, buffer)
        self._adapt(time.perf_counter_ns() - started)
        return count

    def _recv_into(self, sock: Any, buffer: Any) -> int:
        timeout = sock.gettimeout()
        if timeout is None:
            count = sock.recv_into(buffer)
        elif self.deadline is None:  # the first read of a reply
            self.timeout = timeout
            self.deadline = time.monotonic() + timeout
            self.received = 0
            count = sock.recv_into(buffer)
        else:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise _DeadlinePassed
            sock.settimeout(remaining)
            try:
                count = sock.recv_into(buffer)
            finally:
                with contextlib.suppress(OSError):
                    sock.settimeout(timeout)
        self.received += count
        return count

    def close(self) -> None:
        self.sock = None
        super().close()


class _DeadlinePassed(TimeoutError):
    """The deadline of a reply passed between two reads."""


def _der_items(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(tag, value start, value end)`` of each DER element in ``data[start:end]``."""
    pos = start
    while pos < end:
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > end:
            raise ValueError("truncated DER element")
        yield tag, pos, pos + length
        pos += length


_OID_SUBJECT_ALT_NAME = b"\x55\x1d\x11"  # 2.5.29.17
_OID_COMMON_NAME = b"\x55\x04\x03"  # 2.5.4.3


def certificate_names(der: bytes) -> list[str]:
    """The names a certificate (DER) is for: its subjectAltName DNS names and IP addresses,
    else its subject's common names; [] if it can't be read. For error messages only: the
    certificate is not verified here."""
    try:
        _, cert_start, cert_end = next(_der_items(der, 0, len(der)))
        _, tbs_start, tbs_end = next(_der_items(der, cert_start, cert_end))
        fields = list(_der_items(der, tbs_start, tbs_end))
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        names: list[str] = []
        for tag, start, end in fields[6:]:
            if tag != 0xA3:  # [3] extensions
                continue
            for _, ext_start, ext_end in _der_items(der, *next(_der_items(der, start, end))[1:]):
                parts = list(_der_items(der, ext_start, ext_end))
                if der[parts[0][1] : parts[0][2]] != _OID_SUBJECT_ALT_NAME:
                    continue
                _, value_start, value_end = parts[-1]  # the OCTET STRING (after "critical")
                _, seq_start, seq_end = next(_der_items(der, value_start, value_end))
                for name_tag, name_start, name_end in _der_items(der, seq_start, seq_end):
                    value = der[name_start:name_end]
                    if name_tag == 0x82:  # dNSName
                        names.append(value.decode("ascii"))
                    elif name_tag == 0x87:  # iPAddress
                        names.append(str(ipaddress.ip_address(value)))
        if names:
            return names
        _, subject_start, subject_end = fields[4]
        for _, rdn_start, rdn_end in _der_items(der, subject_start, subject_end):
            for _, pair_start, pair_end in _der_items(der, rdn_start, rdn_end):
                (_, oid_start, oid_end), (_, value_start, value_end) = list(
                    _der_items(der, pair_start, pair_end))[:2]
                if der[oid_start:oid_end] == _OID_COMMON_NAME:
                    names.append(der[value_start:value_end].decode("utf-8"))
        return names
    except (ValueError, IndexError, StopIteration):  # UnicodeDecodeError is a ValueError
        return []


PASSWORD_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")
OAUTH_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")  # in order of preference
AUTH_MECHANISMS = PASSWORD_MECHANISMS + OAUTH_MECHANISMS


def _saslname(user: str) -> str:
    """RFC 5801's saslname for the GS2 header's authzid: "," and "=" escaped."""
    return user.replace("=", "=3D").replace(",", "=2C")


class _OAuthExchange:
    """The client's side of one XOAUTH2 or OAUTHBEARER exchange (an smtplib authobject):
    the initial response, then, to a JSON error challenge, the response that ends it."""

    def __init__(self, mechanism: str, user: str, secret: str) -> None:
        self.mechanism = mechanism
        self.user = user
        self.secret = secret
        self.sent = False
        self.challenge: dict[str, Any] | None = None  # the server's JSON error, decoded

    def __repr__(self) -> str:
        return f"<OAuth {self.mechanism} exchange for {self.user!r}>"

    def __call__(self, challenge: bytes | None = None) -> str:
        if not self.sent:  # the initial response (sent with AUTH, or after an empty 334)
            self.sent = True
            if self.mechanism == "OAUTHBEARER":  # RFC 7628 section 3.1
                return f"n,a={_saslname(self.user)},\x01auth=Bearer {self.secret}\x01\x01"
            return f"user={self.user}\x01auth=Bearer {self.secret}\x01\x01"
        self.challenge = _decode_oauth_error(challenge or b"")
        # RFC 7628 section 3.2.3: a dummy %x01 ends the exchange; XOAUTH2 takes an empty line.
        return "\x01" if self.mechanism == "OAUTHBEARER" else ""

    def error(self, code: int, resp: bytes) -> SMTPOAuthTokenError:
        """The exception for the server's final refusal (the token scrubbed from its reply)."""
        if self.secret and isinstance(resp, bytes):
            resp = resp.replace(self.secret.encode("utf-8"), REDACTED.encode("ascii"))
        info = self.challenge or {}
        status = str(info.get("status", "") or "")
        scope = str(info.get("scope", "") or "")
        schemes = str(info.get("schemes", "") or "")
        return SMTPOAuthTokenError(
            code, resp, mechanism=self.mechanism, status=status, scope=scope, schemes=schemes,
            sentence=_oauth_sentence(self.mechanism, status, scope, schemes, code))


def _decode_oauth_error(challenge: bytes) -> dict[str, Any]:
    """The JSON object of an RFC 7628 error challenge ({} if it is not one). ``challenge`` is
    already base64-decoded (by ``auth()``)."""
    try:
        value = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _oauth_sentence(mechanism: str, status: str, scope: str, schemes: str, code: int) -> str:
    word = status.strip().lower()
    if word in ("invalid_token", "401"):
        sentence = "the server refused the access token: it has expired or was revoked"
    elif word in ("insufficient_scope", "403"):
        sentence = "the access token does not allow sending mail"
    elif word in ("invalid_request", "400"):
        sentence = "the server refused the OAuth 2.0 login as malformed"
    elif status:
        sentence = "the server refused the access token"
    else:
        sentence = f"the server refused the access token ({mechanism}, no reason given)"
    details = [f"status {status}"] if status else []
    if scope:
        details.append(f"scope {scope}")
    if schemes:
        details.append(f"schemes {schemes}")
    return sentence + (f" ({', '.join(details)})" if details else "")


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
    # What one reply may hold (see getreply); set on a connection to change them.
    max_reply_line = MAX_REPLY_LINE
    max_reply_lines = MAX_REPLY_LINES
    max_reply_bytes = MAX_REPLY_BYTES
    # Watch the socket for a short while before sleeping on a reply (see SPIN_MAX_NS); set
    # it to False (on the class or a connection, before it connects) for a process that
    # should never spend CPU on waiting (on battery, say).
    watch_replies = True
    _address: tuple[str, int] | None = None  # the host and port connected to
    _closing: tuple[int, bytes] | None = None  # the 421 after which the server closed
    _awaiting = ""  # the command whose reply comes next ("greeting", "EHLO"...), for errors

    # -- sockets --------------------------------------------------------------------
    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        """``smtplib.SMTP._get_socket``, with the socket registered with ``abort_handle``
        before it connects, so that even a slow TCP connect can be aborted."""
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        if self.debuglevel > 0:  # type: ignore[attr-defined]
            self._print_debug("connect: to", (host, port), self.source_address)  # type: ignore[attr-defined]
        self._address = (host, port)
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
                self._awaiting = "greeting"
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
                if isinstance(error, TimeoutError):
                    seconds = timeout if isinstance(timeout, int | float) else None
                    within = f" within {seconds:g} s" if seconds is not None else ""
                    raise SMTPConnectTimeoutError(
                        f"timed out connecting to {host}:{port}: no answer{within}",
                        timeout=seconds, command="connect") from error
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
            self._write(s)
            return
        if self.sock is None:  # type: ignore[attr-defined]
            raise self._not_connected()
        if self._observed():
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
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
        self._track(s)
        self._write(s)

    def _track(self, s: Any) -> None:
        """Remember which command's reply comes next (for the errors' ``command``)."""
        if self._in_auth:
            self._awaiting = "AUTH"  # AUTH, and each answer to a challenge
            return
        head = s[:9] if isinstance(s, str) else bytes(s[:9]).decode("ascii", "replace")
        verb = head.split(" ", 1)[0].split("\r", 1)[0].upper()
        if verb in _COMMANDS:
            self._awaiting = verb

    def _write(self, s: Any) -> None:
        """``smtplib.SMTP.send``, with a write that times out raised as such."""
        try:
            super().send(s)  # type: ignore[misc]
        except smtplib.SMTPServerDisconnected as exc:
            cause = exc.__context__
            if isinstance(cause, TimeoutError):
                timeout = self._timeout_seconds()
                raise SMTPWriteTimeoutError(
                    f"timed out writing to the server: it took nothing for {timeout:g} s"
                    if timeout is not None else "timed out writing to the server",
                    timeout=timeout, command="DATA" if self._in_content else self._awaiting,
                ) from cause
            raise

    def _timeout_seconds(self) -> float | None:
        timeout = self.timeout  # type: ignore[attr-defined]
        return float(timeout) if isinstance(timeout, int | float) else None

    def _not_connected(self) -> smtplib.SMTPServerDisconnected:
        """What to raise for a command on a closed connection: the 421 that closed it, if
        that is what happened, rather than smtplib's "please run connect() first"."""
        if self._closing is not None:
            return SMTPServiceUnavailableError(*self._closing)
        return smtplib.SMTPServerDisconnected("please run connect() first")

    def getreply(self) -> tuple[int, bytes]:
        """``smtplib.SMTP.getreply``, with limits that a server can't get round:

        * the connection's timeout bounds the wait for the whole reply, however slowly
          it trickles in (smtplib's bounds each read): :class:`SMTPReplyTimeoutError`;
        * a line may have ``max_reply_line`` bytes (CRLF included):
          :class:`SMTPReplyLineTooLongError`; a reply ``max_reply_lines`` lines:
          :class:`SMTPReplyTooManyLinesError`, and ``max_reply_bytes`` bytes:
          :class:`SMTPReplyTooLargeError`.

        Each closes the connection (as does the end of the stream or a socket error, raised
        as smtplib does), since the conversation can't go on in step. A 421 is returned
        like any reply, but the server closes the channel after it (RFC 5321), so the
        connection is closed too, and a command sent on it later raises
        :class:`SMTPServiceUnavailableError` with the server's 421.
        """
        code, message = self._read_reply()
        if code != 334:
            self._in_auth = False
        if self._observed():
            lines = message.decode("utf-8", "replace").split("\n") if message else [""]
            for index, line in enumerate(lines):
                sep = " " if index == len(lines) - 1 else "-"
                self._note("server", f"{code}{sep}{line}".rstrip())
        if code == 421:
            self._closing = (code, message)
            self.close()
        return code, message

    def _read_reply(self) -> tuple[int, bytes]:
        """One reply, parsed as smtplib parses it: ``(code, lines joined by LF)``, with
        code -1 for a line that does not start with a number (the reply ends there)."""
        file = self.file  # type: ignore[has-type]
        if file is None:
            sock = self.sock  # type: ignore[attr-defined]
            if sock is None:
                raise self._not_connected()
            file = self.file = io.BufferedReader(
                _ReplyStream(sock, self.watch_replies), _READ_SIZE)
        stream = file.raw
        stream.deadline = None  # a new reply: its first read (if it needs one) sets it
        readline = file.readline
        limit = self.max_reply_line
        debug = self.debuglevel > 0  # type: ignore[attr-defined]
        resp: list[bytes] = []
        size = 0
        command = self._awaiting
        while True:
            try:
                line = readline(limit + 1)
            except TimeoutError as exc:
                self.close()
                raise self._reply_timeout(stream, command) from (
                    None if isinstance(exc, _DeadlinePassed) else exc)
            except OSError as exc:
                self.close()
                raise SMTPConnectionLostError(
                    "Connection unexpectedly closed: " + str(exc), command=command) from exc
            if (not resp and line[3:4] == b" " and line[:3].isdigit() and not debug
                    and len(line) <= limit):
                # the common reply: one line ("250 2.0.0 Ok"), parsed as the loop would
                return int(line[:3]), line[4:].strip(b" \t\r\n")
            if not line:
                self.close()
                raise SMTPConnectionLostError("Connection unexpectedly closed", command=command)
            if debug:
                self._print_debug("reply:", repr(line))  # type: ignore[attr-defined]
            if len(line) > limit:
                self.close()
                raise SMTPReplyLineTooLongError(
                    f"the server sent a reply line longer than {limit} bytes", limit=limit,
                    command=command)
            resp.append(line[4:].strip(b" \t\r\n"))
            try:
                errcode = int(line[:3])
            except ValueError:
                errcode = -1
                break
            if line[3:4] != b"-":
                break
            size += len(line)
            if len(resp) >= self.max_reply_lines:
                self.close()
                raise SMTPReplyTooManyLinesError(
                    f"the server's reply has more than {self.max_reply_lines} lines",
                    limit=self.max_reply_lines, command=command)
            if size > self.max_reply_bytes:
                self.close()
                raise SMTPReplyTooLargeError(
                    f"the server's reply is longer than {self.max_reply_bytes} bytes",
                    limit=self.max_reply_bytes, command=command)
        message = b"\n".join(resp)
        if debug:
            self._print_debug("reply: retcode (%s); Msg: %a" % (errcode, message))  # type: ignore[attr-defined]
        return errcode, message

    def _reply_timeout(self, stream: _ReplyStream, command: str) -> SMTPReplyTimeoutError:
        timeout, received = stream.timeout, stream.received
        within = f" within {timeout:g} s" if timeout is not None else ""
        got = f" ({received} bytes of it came)" if received else ""
        return SMTPReplyTimeoutError(
            f"timed out: no complete reply from the server{within}{got}",
            timeout=timeout, received=received, command=command)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self._closing = None
        self._awaiting = ""
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
        if code == 421:  # not an SMTPAuthenticationError: login() must not try another mechanism
            raise SMTPServiceUnavailableError(code, resp, command="AUTH")
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

    def _offered_mechanisms(self) -> tuple[list[str], bool]:
        """The AUTH mechanisms the server offers (upper case) and whether STARTTLS would
        help; :class:`SMTPAuthNotSupportedError` if it offers no AUTH at all."""
        self.ehlo_or_helo_if_needed()  # type: ignore[attr-defined]
        # smtplib's own checks, with errors that say what is missing (and whether STARTTLS
        # would help: many servers offer AUTH only after it).
        starttls_offered = self.has_extn("starttls") and not isinstance(  # type: ignore[attr-defined]
            self.sock, ssl.SSLSocket)  # type: ignore[attr-defined]
        if not self.has_extn("auth"):  # type: ignore[attr-defined]
            raise SMTPAuthNotSupportedError(
                "SMTP AUTH extension not supported by server."
                + (" It offers STARTTLS: AUTH may come after it." if starttls_offered else ""),
                starttls_offered=starttls_offered)
        offered = self.esmtp_features["auth"].upper().split()  # type: ignore[attr-defined]
        return offered, starttls_offered

    def _forced(self, mechanism: str, offered: list[str], starttls_offered: bool,
                known: Sequence[str]) -> str:
        mechanism = mechanism.upper()
        if mechanism not in known:
            raise ValueError(f"unknown AUTH mechanism {mechanism!r} (mailcore knows "
                             f"{', '.join(known)})")
        if mechanism not in offered:
            raise SMTPAuthNotSupportedError(
                f"The server does not offer AUTH {mechanism}: it offers "
                f"{' '.join(offered) or 'no mechanism'}."
                + (" It offers STARTTLS: more may come after it." if starttls_offered else ""),
                mechanisms=offered, starttls_offered=starttls_offered)
        return mechanism

    def login(self, user: str, password: str, *, initial_response_ok: bool = True,
              mechanism: str | None = None) -> Any:
        """``smtplib.SMTP.login``, then an ``"auth"`` transcript event naming the user and
        the mechanism that succeeded (never the password).

        ``mechanism`` ("PLAIN", "LOGIN" or "CRAM-MD5") forces that one mechanism instead of
        trying each the server offers; :class:`SMTPAuthNotSupportedError` (naming what the
        server offers) if it is not offered."""
        self._auth_mechanism = None
        offered, starttls_offered = self._offered_mechanisms()
        if mechanism is not None:
            mechanism = self._forced(mechanism, offered, starttls_offered, PASSWORD_MECHANISMS)
        elif not any(name in offered for name in PASSWORD_MECHANISMS):
            oauth = [name for name in OAUTH_MECHANISMS if name in offered]
            hint = (f" It offers {' and '.join(oauth)}: log in with an OAuth 2.0 access token."
                    if oauth else "")
            raise SMTPAuthNotSupportedError(
                "No suitable authentication method found (the server offers "
                f"{' '.join(offered) or 'none'}; mailcore knows CRAM-MD5, PLAIN and LOGIN "
                f"for a password).{hint}",
                mechanisms=offered, starttls_offered=starttls_offered)
        self._credentials_refused: smtplib.SMTPAuthenticationError | None = None
        try:
            if mechanism is None:
                result = super().login(  # type: ignore[misc]
                    user, password, initial_response_ok=initial_response_ok
                )
            else:
                self.user, self.password = user, password
                method = getattr(self, "auth_" + mechanism.lower().replace("-", "_"))
                result = self.auth(mechanism, method, initial_response_ok=initial_response_ok)
        finally:
            self._credentials_refused = None
        self._note_login(user, result)
        return result

    def _note_login(self, user: str, result: Any) -> None:
        code = result[0] if isinstance(result, tuple) and result else None
        if self._observed():
            # 503 ("already authenticated") names no mechanism of this login.
            mechanism = self._auth_mechanism if code == 235 else None
            how = f" ({mechanism})" if mechanism else ""
            self._note("auth", f"authenticated as {user}{how}")

    def login_oauth(
        self,
        user: str,
        token: str | Callable[[], str],
        *,
        mechanism: str | None = None,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        """Log in with an OAuth 2.0 access token: SASL OAUTHBEARER (RFC 7628) if the server
        offers it, else XOAUTH2 (Google's and Microsoft's), or ``mechanism`` if given.

        ``user`` is the mailbox the token is for; ``token`` the access token, or a callable
        returning one, called here, just before AUTH (so it can refresh). The token is never
        kept on the connection, shown in the transcript or put in an exception.

        Raises :class:`SMTPAuthNotSupportedError` if the server offers neither mechanism (or
        not ``mechanism``), and :class:`SMTPOAuthTokenError` (an SMTPAuthenticationError) if it
        refuses the token: its JSON error challenge (RFC 7628 section 3.2.2) is decoded into
        ``status``, ``scope``, ``schemes`` and the sentence, and the exchange is finished as
        the RFC asks (an empty response for XOAUTH2, ``%x01`` for OAUTHBEARER). ``expired`` on
        it says to refresh the token and try once more."""
        self._auth_mechanism = None
        offered, starttls_offered = self._offered_mechanisms()
        if mechanism is not None:
            mechanism = self._forced(mechanism, offered, starttls_offered, OAUTH_MECHANISMS)
        else:
            mechanism = next((name for name in OAUTH_MECHANISMS if name in offered), None)
            if mechanism is None:
                raise SMTPAuthNotSupportedError(
                    "The server offers no OAuth 2.0 login (XOAUTH2 or OAUTHBEARER): it offers "
                    f"{' '.join(offered) or 'no mechanism'}."
                    + (" It offers STARTTLS: more may come after it." if starttls_offered
                       else ""),
                    mechanisms=offered, starttls_offered=starttls_offered)
        secret = token() if callable(token) else token
        if not isinstance(secret, str) or not secret:
            raise ValueError("the OAuth 2.0 access token must be a non-empty str")
        if any(c in secret for c in "\x01\r\n"):
            raise ValueError("the OAuth 2.0 access token holds a control character")
        exchange = _OAuthExchange(mechanism, user, secret)
        try:
            result = self.auth(mechanism, exchange, initial_response_ok=initial_response_ok)
        except smtplib.SMTPAuthenticationError as exc:
            error = exchange.error(exc.smtp_code, exc.smtp_error)
            if self._observed():
                self._note("info", error.sentence)
            raise error from None
        finally:
            secret = exchange.secret = ""
        self._note_login(user, result)
        return result

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        code, msg = super().ehlo(name)  # type: ignore[misc]
        if code == 421:  # else smtplib would try HELO on the closed connection
            raise SMTPServiceUnavailableError(code, msg, command="EHLO")
        return code, msg

    def helo(self, name: str = "") -> tuple[int, bytes]:
        code, msg = super().helo(name)  # type: ignore[misc]
        if code == 421:
            raise SMTPServiceUnavailableError(code, msg, command="HELO")
        return code, msg

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """``smtplib.SMTP.starttls``, with typed errors: STARTTLS not offered
        (:class:`SMTPStartTLSNotSupportedError`), refused (:class:`SMTPStartTLSRefusedError`),
        a 421 (:class:`SMTPServiceUnavailableError`), and a certificate trusted but for
        other names (:class:`CertificateHostnameError`, which names them)."""
        self.ehlo_or_helo_if_needed()  # type: ignore[attr-defined]
        if not self.has_extn("starttls"):  # type: ignore[attr-defined]
            raise SMTPStartTLSNotSupportedError("STARTTLS extension not supported by server.")
        try:
            result = super().starttls(*args, **kwargs)  # type: ignore[misc]
        except smtplib.SMTPResponseException as exc:
            if type(exc) is not smtplib.SMTPResponseException:  # pragma: no cover - smtplib's own
                raise
            if exc.smtp_code == 421:
                raise SMTPServiceUnavailableError(
                    exc.smtp_code, exc.smtp_error, command="STARTTLS") from None
            raise SMTPStartTLSRefusedError(exc.smtp_code, exc.smtp_error) from None
        except ssl.SSLCertVerificationError as exc:
            error = self._hostname_error(exc, starttls=True)
            if error is None:
                raise
            self.close()
            raise error from exc
        except TimeoutError as exc:
            if isinstance(exc, SMTPTimeoutError):
                raise
            self.close()  # the TLS handshake took too long
            timeout = self._timeout_seconds()
            raise SMTPTimeoutError(
                "timed out in the TLS handshake after STARTTLS"
                + (f" ({timeout:g} s)" if timeout is not None else ""),
                timeout=timeout, command="STARTTLS") from exc
        if self._observed():
            sock = self.sock
            version = sock.version() if hasattr(sock, "version") else "TLS"
            cipher = sock.cipher()[0] if hasattr(sock, "cipher") and sock.cipher() else ""
            self._note("tls", f"TLS started: {version} {cipher}".rstrip())
        return result

    def _hostname_error(
        self, exc: ssl.SSLCertVerificationError, *, starttls: bool
    ) -> CertificateHostnameError | None:
        """For a trusted certificate issued for other names: the error naming them, read on
        a second connection (see :func:`_peer_certificate_names`). None for other errors."""
        if getattr(exc, "verify_code", None) not in _NAME_MISMATCH or self._address is None:
            return None
        hostname = str(self._host)  # type: ignore[attr-defined]
        timeout = min(self._timeout_seconds() or _PROBE_TIMEOUT, _PROBE_TIMEOUT)
        names = _peer_certificate_names(
            *self._address, hostname, starttls=starttls, timeout=timeout,
            local_hostname=getattr(self, "local_hostname", None) or "localhost",
            abort_handle=self.abort_handle)
        text = str(exc.strerror or exc)
        if names:
            text += f"; the certificate is for {', '.join(names)}"
        return CertificateHostnameError(text, hostname=hostname, names=names, original=exc)

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
        to_addrs = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        esmtp = bool(self.does_esmtp)
        ascii_only = from_addr.isascii() and all(a.isascii() for a in to_addrs)
        asked = any(x.lower() == "smtputf8" for x in mail_options)
        if asked or not ascii_only:  # RFC 6531: the addresses (and headers) are UTF-8
            if not (esmtp and self.has_extn("smtputf8")):
                for role, addr in (("sender", from_addr), *(("recipient", a) for a in to_addrs)):
                    if not addr.isascii():
                        raise self._utf8_required(addr, role)
                raise SMTPUTF8RequiredError(
                    f"SMTPUTF8 was asked for, and the server {self._server_name()} does not "
                    "offer it: nothing was sent", server=self._server_name())
            if not asked:
                mail_options.append("SMTPUTF8")
            self.command_encoding = "utf-8"
        if (esmtp and self.has_extn("8bitmime") and is_8bit(data)
                and not any(x.upper().startswith("BODY=") for x in mail_options)):
            mail_options.append("BODY=8BITMIME")  # RFC 6152
        esmtp_opts = []
        if esmtp and self.has_extn("size"):
            esmtp_opts.append("size=%d" % data.size)
        if esmtp:  # as smtplib: a HELO-only server gets no ESMTP options
            esmtp_opts.extend(mail_options)
        else:
            rcpt_options = []
        commands = ["mail FROM:%s%s" % (quoteaddr(from_addr), _options(esmtp_opts))]
        commands += ["rcpt TO:%s%s" % (quoteaddr(a), _options(rcpt_options)) for a in to_addrs]
        return commands, to_addrs

    def _server_name(self) -> str:
        if self._address is not None:
            return f"{self._address[0]}:{self._address[1]}"
        return str(getattr(self, "_host", "") or "the server")

    def offers_smtputf8(self) -> bool:
        """True if the server offers SMTPUTF8 (RFC 6531) on this connection."""
        self.ehlo_or_helo_if_needed()  # type: ignore[attr-defined]
        return bool(self.does_esmtp and self.has_extn("smtputf8"))  # type: ignore[attr-defined]

    def _utf8_required(self, addr: str, role: str) -> SMTPUTF8RequiredError:
        server = self._server_name()
        return SMTPUTF8RequiredError(
            f"Invalid address {addr!r} (the {role}) for the server {server}: a non-ASCII "
            "local part needs SMTPUTF8 (RFC 6531), which that server does not offer; "
            "nothing was sent", address=addr, server=server, role=role)

    def _encode_commands(self, commands: list[str]) -> bytes:
        return "".join(c + "\r\n" for c in commands).encode(self.command_encoding)

    def _read_envelope_replies(
        self, from_addr: str, to_addrs: list[str], data: Serialized | None = None
    ) -> dict[str, tuple[int, bytes]]:
        """Read the replies to pipelined MAIL, RCPT... and DATA; raise (with
        the conversation back in step) unless DATA got its 354. After a 421 the server
        has gone: the replies to the rest are never read."""
        self._awaiting = "MAIL"
        mail_reply = self.getreply()
        if mail_reply[0] == 421:
            raise SMTPServiceUnavailableError(*mail_reply, command="MAIL")
        senderrs: dict[str, tuple[int, bytes]] = {}
        for addr in to_addrs:
            self._awaiting = "RCPT"
            code, resp = self.getreply()
            if code not in (250, 251):
                if code == 421:
                    raise SMTPServiceUnavailableError(code, resp, command="RCPT", recipient=addr)
                senderrs[addr] = (code, resp)
        self._awaiting = "DATA"
        data_reply = self.getreply()
        self._check_envelope(from_addr, to_addrs, mail_reply, senderrs, data_reply, data)
        return senderrs

    def _check_envelope(
        self,
        from_addr: str,
        to_addrs: list[str],
        mail_reply: tuple[int, bytes],
        senderrs: dict[str, tuple[int, bytes]],
        data_reply: tuple[int, bytes] | None,
        data: Serialized | None = None,
    ) -> None:
        code, resp = mail_reply
        if code != 250:
            if code == 421:
                raise SMTPServiceUnavailableError(code, resp, command="MAIL")
            self._abandon(data_reply)
            self._rset()
            if code == 552:  # RFC 1870: the message is larger than the server takes
                raise SMTPMessageTooLargeError(
                    code, resp, sender=from_addr, size=data.size if data is not None else None,
                    limit=self._size_limit())
            raise smtplib.SMTPSenderRefused(code, resp, from_addr)
        if len(senderrs) == len(to_addrs):
            self._abandon(data_reply)
            self._rset()
            raise smtplib.SMTPRecipientsRefused(senderrs)
        assert data_reply is not None
        code, resp = data_reply
        if code != 354:
            if code == 421:
                raise SMTPServiceUnavailableError(code, resp, command="DATA")
            self._end_transaction(code)
            raise SMTPMessageRefusedError(code, resp, command="DATA")

    def _size_limit(self) -> int | None:
        """The largest message the server takes, as its EHLO says (``SIZE n``); None if it
        says none (no SIZE, or ``SIZE 0``: no fixed limit, RFC 1870)."""
        try:
            return int(self.esmtp_features.get("size", "")) or None  # type: ignore[attr-defined]
        except ValueError:
            return None

    def _check_final(self, reply: tuple[int, bytes]) -> None:
        code, resp = reply
        if code != 250:
            if code == 421:
                raise SMTPServiceUnavailableError(code, resp, command="end of data")
            self._end_transaction(code)
            raise SMTPMessageRefusedError(code, resp, command="end of data")

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
            senderrs = self._read_envelope_replies(from_addr, to_addrs, data)
        else:
            mail_reply = self.docmd(commands[0])
            data_reply = None
            senderrs = {}
            if mail_reply[0] == 250:
                for addr, cmd in zip(to_addrs, commands[1:]):
                    code, resp = self.docmd(cmd)
                    if code not in (250, 251):
                        if code == 421:
                            raise SMTPServiceUnavailableError(
                                code, resp, command="RCPT", recipient=addr)
                        senderrs[addr] = (code, resp)
                if len(senderrs) < len(to_addrs):
                    data_reply = self.docmd("data")
            self._check_envelope(from_addr, to_addrs, mail_reply, senderrs, data_reply, data)
        tail = self._write_content(data, progress)
        with self._committed():
            self._send_tail(tail)
            reply = self._read_final(senderrs, to_addrs)
        if reply[0] != 421 and set(senderrs) >= set(to_addrs):  # LMTP: all refused after DATA
            raise smtplib.SMTPRecipientsRefused(dict(senderrs))
        self._check_final(reply)
        return SendReply(senderrs, *reply)

    def _read_final(
        self, senderrs: dict[str, tuple[int, bytes]], to_addrs: Sequence[str]
    ) -> tuple[int, bytes]:
        """The server's answer to the final dot (LMTP: one per recipient, see there)."""
        return self.getreply()

    def send_envelope(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        data: Serialized,
        *,
        stop_after: str = "rcpt",
        mail_options: Iterable[str] = (),
        rcpt_options: Iterable[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL (and, with ``stop_after="rcpt"``, every RCPT) of a message, one command at a
        time, and no DATA: for stopping a conversation there (swaks's ``--quit-after``). The
        caller ends it (QUIT). Raises as :meth:`send_serialized` does for a refused sender
        or all recipients refused; returns the refused recipients."""
        if stop_after not in ("mail", "rcpt"):
            raise ValueError(f"stop_after must be 'mail' or 'rcpt', not {stop_after!r}")
        commands, to_addrs = self._envelope(from_addr, to_addrs, data, mail_options, rcpt_options)
        code, resp = self.docmd(commands[0])
        if code != 250:
            self._check_envelope(from_addr, to_addrs, (code, resp), {}, None, data)
        senderrs: dict[str, tuple[int, bytes]] = {}
        if stop_after == "mail":
            return senderrs
        for addr, cmd in zip(to_addrs, commands[1:]):
            code, resp = self.docmd(cmd)
            if code not in (250, 251):
                if code == 421:
                    raise SMTPServiceUnavailableError(code, resp, command="RCPT", recipient=addr)
                senderrs[addr] = (code, resp)
        if to_addrs and len(senderrs) == len(to_addrs):
            raise smtplib.SMTPRecipientsRefused(senderrs)
        return senderrs

    def send_pipelined(
        self,
        jobs: Iterator[tuple[Any, ...]],
        progress: ProgressCallback | None = None,
    ) -> Iterator[tuple[Any, SendReply | smtplib.SMTPException]]:
        """Send many messages with one round trip each: the end of one
        message's content goes in the same write as the next message's MAIL,
        RCPT and DATA (RFC 2920 allows the content to open a group).

        ``jobs`` yields ``(token, from_addr, to_addrs, data)`` or ``(token, from_addr,
        to_addrs, data, mail_options)``; this yields
        ``(token, SendReply or the SMTPException for that message)`` in order.
        If the caller stops early (raises on a failure) while a later message's
        DATA is already open, the connection is closed: nothing half-sent is
        ever delivered. Needs a server that offers PIPELINING. ``progress`` is
        called for each message's content as in :meth:`send_serialized`.
        """
        # content written, final dot not sent: (token, refused, recipients, the tail)
        pending: tuple[Any, dict, list[str], bytes] | None = None
        data_open = False
        deferred: Exception | None = None  # preparing a later message failed

        def prepare(job: tuple[Any, ...]) -> tuple[Any, ...]:
            # All of a message that does not depend on the server's answers, made while the
            # server reads and answers the one before: its commands, and (when nothing
            # watches the content being written) its whole dot-stuffed content with the
            # final dot. An error is kept for the message's turn, where it was always met.
            token, from_addr, to_addrs, data, *more = job
            try:
                commands, to_addrs = self._envelope(
                    from_addr, to_addrs, data, more[0] if more else ())
                head = self._encode_commands([*commands, "data"])
            except Exception as exc:  # noqa: BLE001 - raised or reported at its turn
                return token, from_addr, to_addrs, data, b"", exc, None
            content = None
            if progress is None and not self._observed():
                content = _small_content(data)
            return token, from_addr, to_addrs, data, head, None, content

        def take() -> tuple[Any, ...] | None:
            nonlocal deferred
            try:
                job = next(jobs, None)
            except Exception as exc:  # noqa: BLE001 - raised once the messages before are done
                deferred = exc
                return None
            return None if job is None else prepare(job)

        try:
            job = next(jobs, None)
            if job is not None:
                job = prepare(job)
            while job is not None:
                token, from_addr, to_addrs, data, head, error, content = job
                if error is not None:
                    if not isinstance(error, smtplib.SMTPNotSupportedError):
                        raise error
                    # SMTPUTF8 needed, not offered: nothing of this message is sent; the one
                    # before still is.
                    if pending is not None:
                        finishing, pending = pending, None
                        with self._committed():
                            self._send_tail(finishing[3])
                            data_open = False
                            final = self._final_result(finishing[1], finishing[2])
                        yield finishing[0], final
                        if self.sock is None:
                            break
                    yield token, error
                    job = take()
                    continue
                finishing = pending
                pending = None
                previous = None
                if finishing is not None:
                    with self._committed():
                        self._send_tail(finishing[3], head)
                        data_open = False
                        # While the server reads and answers, prepare the next message.
                        upcoming = take()
                        previous = (finishing[0], self._final_result(finishing[1], finishing[2]))
                    if self.sock is None:  # 421 after the previous message: server gone
                        yield previous
                        break
                else:
                    self.send(head)
                    upcoming = take()
                try:
                    senderrs = self._read_envelope_replies(from_addr, to_addrs, data)
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
                if content is None or self.sock is None or self._observed():
                    content = self._write_content(data, progress)
                pending = (token, senderrs, to_addrs, content)
                job = upcoming
            if pending is not None:
                token, senderrs, to_addrs, tail = pending
                pending = None
                with self._committed():
                    self._send_tail(tail)
                    data_open = False
                    final = self._final_result(senderrs, to_addrs)
                yield token, final
            if deferred is not None:
                raise deferred
        finally:
            if data_open or pending is not None:
                # Stopped in the middle of a message: end the connection
                # rather than let half a message through.
                self.close()

    def _final_result(
        self, senderrs: dict[str, tuple[int, bytes]], to_addrs: Sequence[str] = ()
    ) -> SendReply | smtplib.SMTPException:
        code, resp = self._read_final(senderrs, to_addrs)
        if code != 421 and senderrs and to_addrs and set(senderrs) >= set(to_addrs):
            return smtplib.SMTPRecipientsRefused(dict(senderrs))  # LMTP, after DATA
        if code == 250:
            return SendReply(senderrs, code, resp)
        # The final dot ends the transaction whatever the answer, so no RSET:
        # the next message's commands are already on their way.
        if code == 421:  # getreply() has closed the connection
            return SMTPServiceUnavailableError(code, resp, command="end of data")
        return SMTPMessageRefusedError(code, resp, command="end of data")

    def _abandon(self, data_reply: tuple[int, bytes] | None) -> None:
        """If the server accepted DATA although the transaction failed, end
        the (empty) content so the conversation stays in step."""
        if data_reply is not None and data_reply[0] == 354:
            self.send(b".\r\n")
            self._awaiting = "end of data"
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
        stuffer = _DotStuffer()
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
                chunk = stuffer.feed(chunk, may_need_stuffing)
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
        buffer.append(stuffer.end())
        total = stuffer.total
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

    def _committed(self) -> _Committed:
        """From sending a final dot until the server's answer: the message may be delivered
        now, so an abort waits until we know (the answer, or the socket's timeout)."""
        return _Committed(self.abort_handle)

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
        self._awaiting = "end of data"  # the first reply to come (then the next message's)


class _Committed:
    """The context of :meth:`SMTP._committed`: ``abort_handle.hold()`` for its duration; an
    OSError raised in it after the grace ran out (the line was cut while the answer was
    awaited) becomes :class:`SMTPAborted` saying the message's fate is unknown."""

    __slots__ = ("handle",)

    def __init__(self, handle: AbortHandle | None) -> None:
        self.handle = handle

    def __enter__(self) -> None:
        if self.handle is not None:
            self.handle.hold()

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> bool:
        handle = self.handle
        if handle is None:
            return False
        try:
            if (isinstance(exc, OSError) and handle.cut_while_held
                    and not isinstance(exc, SMTPAborted)):
                raise SMTPAborted(
                    "sending was aborted while the server was to confirm the end of the "
                    "message: it may or may not have been delivered") from exc
        finally:
            handle.unhold()
        return False


def _options(options: Sequence[str]) -> str:
    return (" " + " ".join(options)) if options else ""


class SMTP(_Transcribing, smtplib.SMTP):
    """``smtplib.SMTP`` with pipelined, streamed sending, a transcript and abort."""


class LMTP(SMTP, smtplib.LMTP):
    """LMTP (RFC 2033) with the same additions: LHLO instead of EHLO, and after the final
    dot one reply per accepted recipient, in the order of the RCPTs. A recipient refused
    there is in ``SendReply.refused`` like one refused at RCPT; all of them refused is
    ``SMTPRecipientsRefused``. A host starting with "/" is a Unix socket (as smtplib's)."""

    def _read_final(
        self, senderrs: dict[str, tuple[int, bytes]], to_addrs: Sequence[str]
    ) -> tuple[int, bytes]:
        accepted = [addr for addr in to_addrs if addr not in senderrs]
        first: tuple[int, bytes] | None = None
        for addr in accepted:
            self._awaiting = "end of data"
            code, resp = self.getreply()
            if code == 421:  # the server has gone: no more replies come
                return code, resp
            if 200 <= code < 300:
                first = first or (code, resp)
            else:
                senderrs[addr] = (code, resp)
        if first is None:
            return next(iter(senderrs.values()), (554, b"no reply"))
        return first


class SMTP_SSL(_Transcribing, smtplib.SMTP_SSL):  # noqa: N801 - mirrors smtplib's name
    """``smtplib.SMTP_SSL`` (implicit TLS) with the same additions."""

    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        # smtplib.SMTP_SSL._get_socket: the (registered) TCP socket, wrapped in TLS with
        # the host name checked; the registered duplicate also covers the handshake.
        sock = super()._get_socket(host, port, timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLCertVerificationError as exc:
            self._unwatch()  # wrap_socket has closed sock
            error = self._hostname_error(exc, starttls=False)
            if error is None:
                raise
            raise error from exc
        except TimeoutError as exc:
            self._unwatch()  # wrap_socket has closed sock
            seconds = timeout if isinstance(timeout, int | float) else None
            raise SMTPConnectTimeoutError(
                f"timed out in the TLS handshake with {host}:{port}"
                + (f" ({seconds:g} s)" if seconds is not None else ""),
                timeout=seconds, command="connect") from exc
        except BaseException:
            self._unwatch()  # wrap_socket has closed sock
            raise


def _peer_certificate_names(
    host: str,
    port: int,
    server_hostname: str,
    *,
    starttls: bool,
    timeout: float,
    local_hostname: str,
    abort_handle: AbortHandle | None,
) -> list[str]:
    """The names of the certificate that ``host:port`` presents, for an error message: read
    on a new connection whose TLS handshake checks nothing, and which sends nothing but EHLO
    and STARTTLS (with ``starttls``) before it is closed. [] if that fails. Every step is
    bounded by ``timeout`` and by ``abort_handle``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only the names are read; nothing else is sent
    probe = SMTP(local_hostname=local_hostname, timeout=timeout, abort_handle=abort_handle)
    try:
        if starttls:
            code, _ = probe.connect(host, port)
            if code != 220:
                return []
            probe.ehlo()
            code, _ = probe.docmd("STARTTLS")
            if code != 220:
                return []
            sock = probe.sock
        else:
            sock = probe.sock = probe._create_connection(host, port, timeout)
        probe.sock = context.wrap_socket(sock, server_hostname=server_hostname)
        return certificate_names(probe.sock.getpeercert(binary_form=True) or b"")
    except (OSError, ValueError):  # smtplib's errors and ssl's are OSErrors
        return []
    finally:
        probe.close()
