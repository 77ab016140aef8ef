"""Real SMTP servers on 127.0.0.1 for the test suites. No mocks.

Import as ``from tests.support.servers import ...`` (``tests/conftest.py`` puts the repository
root on ``sys.path`` so this works under both ``python -m pytest`` and a bare ``pytest``).
Everything here listens on, and connects to, 127.0.0.1 only.

Contents
--------
* ``free_port()``, ``refused_port()``, ``held_refused_port()``: port helpers.
* ``Certificates``: a trustme CA, a server certificate for "localhost" and 127.0.0.1, a client
  certificate, and an ``untrusted`` twin issued by another CA; all written to PEM files.
* ``RecordingHandler``: aiosmtpd handler that records every message and injects faults.
* ``SMTPServer``: aiosmtpd server in ``plain``, ``starttls`` or ``tls`` (implicit TLS) mode.
* ``SilentServer``, ``GreetingRefusedServer``, ``DropDuringDataServer``, ``ScriptedServer``:
  small raw-socket servers that misbehave on purpose.
* ``HostileServer``: a ``ScriptedServer`` that misbehaves at one stage of the conversation
  (drips its reply a byte at a time, floods ``250-`` lines or one endless line, stays silent,
  or answers 421), and behaves once told to.

aiosmtpd 1.4 facts this module relies on or works around (checked in the 1.4.6 source)
------------------------------------------------------------------------------------
* DATA bytes: aiosmtpd reads DATA with ``readuntil(b"\\r\\n")``, keeps every line *with* its
  CRLF, removes one leading "." from lines starting with "." (dot-unstuffing) and joins them.
  The result is ``envelope.original_content``: always ``bytes``, exactly the bytes the client
  sent minus the transparency dots and the terminating ".\\r\\n".  ``envelope.content`` is the
  very same object with ``decode_data=False`` (used here) and a ``str`` with
  ``decode_data=True``.  Bare LF / bare CR inside a line are kept untouched.
* PIPELINING is never advertised by aiosmtpd, although its command loop reads one line at a time
  from an asyncio stream and so handles pipelined commands correctly.  ``pipelining=True`` adds
  ``250-PIPELINING`` through ``handle_EHLO``.
* A 5-argument ``handle_EHLO`` hook *replaces* part of aiosmtpd's EHLO bookkeeping: the hook must
  set ``session.host_name`` itself, otherwise MAIL gets "503 Error: send HELO first".  The hook
  gets the list of reply lines, whose last item is "250 HELP"; every other line is "250-...".
* SIZE: ``250-SIZE <data_size_limit>`` is advertised iff data_size_limit is truthy; aiosmtpd's
  default is ``2**25`` (33554432).  ``data_size_limit=None`` (or 0) means no SIZE line and no
  limit.  MAIL FROM with ``SIZE=n`` above the limit -> "552 Error: message size exceeds fixed
  maximum message size"; too much DATA -> "552 Error: Too much mail data" after the final dot
  (the count includes the CRLFs and the transparency dots).
* AUTH is advertised iff ``not auth_require_tls or STARTTLS-done``.  With implicit TLS
  (``Controller(ssl_context=...)``) aiosmtpd does not know that the connection is encrypted
  (``_tls_protocol`` is None and ``session.ssl`` stays None), so it hides AUTH and answers AUTH
  with "538 5.7.11 Encryption required ..." unless ``auth_require_tls=False``.  That is why the
  ``tls`` mode uses ``auth_require_tls=False`` and why ``session_tls`` is computed from the
  transport's ``ssl_object`` rather than from ``session.ssl``.  aiosmtpd also advertises
  "AUTH LOGIN PLAIN" whenever auth_require_tls is False, even with no credentials; the handler
  drops that line (and answers AUTH with 502) when no credentials are configured.
* ``Controller(port=0)`` binds but keeps ``self.port == 0``, so its readiness probe connects to
  port 0 and start() fails.  ``_Controller`` reads the real port back from the bound socket, so
  ``SMTPServer`` ports are race free (``free_port()`` is still provided).
* Readiness probe (``_trigger_server``): it opens a real connection so that asyncio calls the
  lazy protocol factory, and reads the greeting.  With implicit TLS aiosmtpd wraps the probe in
  an unverified client context derived from the server context; that works (checked: also with
  a CERT_REQUIRED server, where the probe merely reads EOF because the server drops it after the
  TLS 1.3 handshake).  ``_Controller`` nevertheless presents the client certificate when it has
  one (no failed handshake), tolerates TLS errors/timeouts (start() still checks that the
  factory ran), and excludes the probe from ``connections`` by its client address.
* Every successful AUTH logs "Session.login_data is deprecated ..." (a WARNING record on the
  "mail.log" logger, not a Python warning).  ``_QuietSession`` removes that.
* ``Controller`` defaults ``enable_SMTPUTF8`` to True (the bare ``SMTP`` class to False).
* Every attribute of the *handler* whose name starts with ``auth_`` becomes an advertised AUTH
  mechanism (``inspect.getmembers``), and every ``handle_*`` a hook: name other things otherwise.
* Not aiosmtpd but worth knowing: ``smtplib.SMTP.login()`` tries each advertised mechanism it
  knows (CRAM-MD5, PLAIN, LOGIN) in turn, so a wrong password yields two 535s here.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import itertools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import DATA_SIZE_DEFAULT, MISSING, SMTP, AuthResult, Session

__all__ = [
    "DATA_SIZE_DEFAULT",
    "LOCALHOST",
    "TEST_PASSWORD",
    "TEST_USER",
    "Certificates",
    "DropDuringDataServer",
    "GreetingRefusedServer",
    "HostileServer",
    "NoStartTLSServer",
    "ReceivedMessage",
    "RecordingHandler",
    "SMTPServer",
    "ScriptedServer",
    "SilentServer",
    "free_port",
    "held_refused_port",
    "refused_port",
]

LOCALHOST = "127.0.0.1"
TEST_USER = "alice"
TEST_PASSWORD = "correct horse"


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def refused_port() -> int:
    """Return a port on 127.0.0.1 where nothing listens (connecting gives ECONNREFUSED).

    The port is released before returning, so another process could grab it in theory; use
    ``held_refused_port()`` when that matters.
    """
    return free_port()


@contextlib.contextmanager
def held_refused_port() -> Iterator[int]:
    """Yield a port on 127.0.0.1 that is bound but not listening for the whole block.

    Nobody else can bind it meanwhile, and on Linux a connection to it is refused (RST).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOCALHOST, 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files made with trustme. All paths are ``str``.

    ``ca_file`` is the CA that signed ``server_cert_file`` (SANs "localhost" and IP 127.0.0.1)
    and ``client_cert_file`` (SAN client@example.com).  ``untrusted`` is a complete second set
    signed by a different CA (its ``ca_file`` is that other CA), or None.
    """

    directory: str
    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str
    untrusted: Certificates | None = None

    @classmethod
    def create(cls, directory: str | Path, *, with_untrusted: bool = True) -> Certificates:
        """Make a fresh CA + server + client certificates in ``directory`` (created if needed).

        With ``with_untrusted`` an independent set is also written to ``directory/untrusted``.
        """
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="mailcore test CA")
        server = ca.issue_cert("localhost", LOCALHOST, organization_name="mailcore test server")
        client = ca.issue_cert(
            "client@example.com",
            common_name="mailcore test client",
            organization_name="mailcore test client",
        )
        paths = {
            "ca_file": base / "ca.pem",
            "server_cert_file": base / "server-cert.pem",
            "server_key_file": base / "server-key.pem",
            "client_cert_file": base / "client-cert.pem",
            "client_key_file": base / "client-key.pem",
        }
        ca.cert_pem.write_to_path(str(paths["ca_file"]))
        _write_chain(server, paths["server_cert_file"])
        server.private_key_pem.write_to_path(str(paths["server_key_file"]))
        _write_chain(client, paths["client_cert_file"])
        client.private_key_pem.write_to_path(str(paths["client_key_file"]))
        untrusted = None
        if with_untrusted:
            untrusted = cls.create(base / "untrusted", with_untrusted=False)
        return cls(
            directory=str(base),
            untrusted=untrusted,
            **{name: str(path) for name, path in paths.items()},
        )

    def server_ssl_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """Server-side context with the server certificate.

        ``require_client_cert=True`` sets CERT_REQUIRED and trusts ``ca_file`` for client certs.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert_file, self.server_key_file)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.ca_file)
        return ctx

    def client_ssl_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """Verifying client-side context that trusts ``ca_file`` (optionally with client cert)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if with_client_cert:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx


def _write_chain(leaf: trustme.LeafCert, path: Path) -> None:
    path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


# --------------------------------------------------------------------------------------------
# Recording handler
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    """One message as received by a ``RecordingHandler``.

    ``data`` is ``envelope.original_content``: the DATA bytes exactly as sent (CRLF line ends
    kept), after dot-unstuffing, without the terminating ".\\r\\n".
    """

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session_tls: bool
    auth_login: str | None
    peer: Any
    received_at: float
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    connection_id: int | None = None
    smtp_utf8: bool = False
    tls_version: str | None = None
    peer_cert: dict | None = None
    reply: str = "250 OK"

    def message(self) -> EmailMessage:
        """``data`` parsed with ``email.policy.default``."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8 (surrogateescape), handy for ``in`` assertions."""
        return self.data.decode("utf-8", "surrogateescape")


DataReply = str | Callable[[ReceivedMessage], str | None] | None


class RecordingHandler:
    """aiosmtpd handler that records messages, counts connections and injects faults.

    Fault attributes may be changed at any time, also while a server runs:

    * ``refuse_rcpt``: ``{"bad@example.com": "550 5.1.1 No such user"}`` (address compared
      case-insensitively) - that RCPT gets the given reply, other recipients are accepted.
    * ``data_reply``: reply sent after the final dot instead of "250 OK", e.g.
      ``"552 5.3.4 Message too big"``; or a callable ``f(record) -> str | None`` (None = accept).
      A non-2xx reply puts the record in ``rejected`` instead of ``messages``.
    * ``mail_reply``: reply to every MAIL FROM, e.g. ``"451 4.3.0 Try later"``.
    * ``credentials``: ``{"user": "password"}``; empty/None = no AUTH advertised (AUTH -> 502).
    * ``require_auth``: MAIL without successful AUTH -> "530 5.7.0 Authentication required".
    * ``pipelining``: advertise ``250-PIPELINING`` in the EHLO reply.

    Beware: aiosmtpd treats every handler attribute named ``auth_*`` as an AUTH mechanism and
    every ``handle_*`` as a hook, so subclasses must avoid those prefixes for anything else.
    """

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        refuse_rcpt: Mapping[str, str] | None = None,
        data_reply: DataReply = None,
        mail_reply: str | None = None,
        require_auth: bool = False,
        pipelining: bool = False,
    ) -> None:
        self.credentials: dict[str, str] = dict(credentials or {})
        self.refuse_rcpt: dict[str, str] = dict(refuse_rcpt or {})
        self.data_reply: DataReply = data_reply
        self.mail_reply = mail_reply
        self.require_auth = require_auth
        self.pipelining = pipelining
        self._cond = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._rejected: list[ReceivedMessage] = []
        self._login_attempts: list[tuple[str, str, bool]] = []
        self._connections = 0
        self._peers: list[Any] = []

    # -- test-side API -----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Snapshot of the accepted messages, oldest first."""
        with self._cond:
            return list(self._messages)

    @property
    def rejected(self) -> list[ReceivedMessage]:
        """Messages whose DATA got a non-2xx ``data_reply``."""
        with self._cond:
            return list(self._rejected)

    @property
    def connections(self) -> int:
        """Number of client connections (sessions) so far; STARTTLS does not count twice."""
        with self._cond:
            return self._connections

    @property
    def connection_peers(self) -> list[Any]:
        """Client (host, port) of each connection, in order."""
        with self._cond:
            return list(self._peers)

    @property
    def login_attempts(self) -> list[tuple[str, str, bool]]:
        """(mechanism, username, success) for every AUTH exchange that reached the check."""
        with self._cond:
            return list(self._login_attempts)

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``n`` messages were accepted; return them. TimeoutError if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} message(s) within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until at least ``n`` connections were made; return the count."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._connections >= n, timeout):
                raise TimeoutError(
                    f"expected {n} connection(s) within {timeout}s, got {self._connections}"
                )
            return self._connections

    def reset(self) -> None:
        """Forget messages, rejected messages, auth attempts and the connection count."""
        with self._cond:
            self._messages.clear()
            self._rejected.clear()
            self._login_attempts.clear()
            self._peers.clear()
            self._connections = 0

    # -- called by _RecordingSMTP --------------------------------------------------------------

    def register_connection(self, peer: Any) -> int:
        with self._cond:
            self._connections += 1
            self._peers.append(peer)
            self._cond.notify_all()
            return self._connections

    def authenticate(
        self, server: SMTP, session: Session, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd ``authenticator=`` callable for LOGIN and PLAIN; wrong password -> 535."""
        login = getattr(auth_data, "login", None)
        password = getattr(auth_data, "password", None)
        if not isinstance(login, bytes) or not isinstance(password, bytes):
            return AuthResult(success=False, handled=False)
        user = login.decode("utf-8", "surrogateescape")
        secret = password.decode("utf-8", "surrogateescape")
        ok = user in self.credentials and self.credentials[user] == secret
        with self._cond:
            self._login_attempts.append((mechanism, user, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)  # -> "535 5.7.8 ... invalid"

    # -- aiosmtpd hooks ----------------------------------------------------------------------

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must do this itself
        lines = [r for r in responses if self.credentials or not r.startswith("250-AUTH")]
        if self.pipelining:
            lines.insert(len(lines) - 1, "250-PIPELINING")  # last line stays "250 HELP"
        return lines

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Any, args: list[str]):
        if not self.credentials:
            return "502 5.5.1 AUTH not enabled"
        return MISSING  # let aiosmtpd run LOGIN / PLAIN with self.authenticate

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Any, address: str, options: list[str]
    ):
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.mail_reply is not None:
            return self.mail_reply
        return MISSING

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Any, address: str, options: list[str]
    ):
        refusals = {k.lower(): v for k, v in self.refuse_rcpt.items()}
        reply = refusals.get(address.lower())
        return MISSING if reply is None else reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Any) -> str:
        raw = envelope.original_content
        if raw is None:  # pragma: no cover - older aiosmtpd
            raw = envelope.content
        if isinstance(raw, str):  # pragma: no cover - only with decode_data=True
            raw = raw.encode("utf-8", "surrogateescape")
        ssl_object = None
        transport = server.transport
        if transport is not None:
            ssl_object = transport.get_extra_info("ssl_object")
        record = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(raw),
            session_tls=session.ssl is not None or ssl_object is not None,
            auth_login=session.auth_data if session.authenticated else None,
            peer=session.peer,
            received_at=time.time(),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            connection_id=getattr(server, "connection_id", None),
            smtp_utf8=bool(envelope.smtp_utf8),
            tls_version=ssl_object.version() if ssl_object is not None else None,
            peer_cert=ssl_object.getpeercert() if ssl_object is not None else None,
        )
        reply = self.data_reply(record) if callable(self.data_reply) else self.data_reply
        if reply is None:
            reply = "250 OK"
        record.reply = reply
        with self._cond:
            (self._messages if reply.startswith("2") else self._rejected).append(record)
            self._cond.notify_all()
        return reply


# --------------------------------------------------------------------------------------------
# aiosmtpd plumbing
# --------------------------------------------------------------------------------------------


class _QuietSession(Session):
    """Session without the "Session.login_data is deprecated" log line on every AUTH."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _RecordingSMTP(SMTP):
    """SMTP protocol that reports new connections to the handler (not the readiness probe)."""

    def __init__(self, handler: Any, *, controller: _Controller, **kwargs: Any) -> None:
        self._controller = controller
        self.connection_id: int | None = None
        super().__init__(handler, **kwargs)

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None  # set only once STARTTLS has happened
        super().connection_made(transport)
        if not first:
            return
        self._controller.live.add(self)
        peer = transport.get_extra_info("peername")
        if peer is not None and tuple(peer[:2]) in self._controller.probe_peers:
            return
        register = getattr(self.event_handler, "register_connection", None)
        if register is not None:
            self.connection_id = register(peer)

    def connection_lost(self, error: Exception | None) -> None:
        self._controller.live.discard(self)
        super().connection_lost(error)

    def abort(self) -> None:
        transport = self._original_transport or self.transport
        if transport is not None:
            transport.abort()


class _RecordingLMTP(_RecordingSMTP, LMTP):
    """The same, speaking LMTP (RFC 2033): LHLO; EHLO and HELO are refused. After the final
    dot aiosmtpd sends what handle_DATA returns: one line per recipient for LMTP (a
    ``data_reply`` callable can build them from ``record.rcpt_tos``)."""


class _Controller(Controller):
    """Controller with a race-free port 0, a client-cert-aware probe and uncounted probes."""

    def __init__(
        self, handler: Any, *, probe_ssl_context: ssl.SSLContext | None = None,
        lmtp: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.probe_ssl_context = probe_ssl_context
        self.probe_peers: set[tuple[str, int]] = set()
        self.live: set[_RecordingSMTP] = set()
        self.lmtp = lmtp

    def factory(self) -> SMTP:
        cls = _RecordingLMTP if self.lmtp else _RecordingSMTP
        return cls(self.handler, controller=self, loop=self.loop, **self.SMTP_kwargs)

    def _create_server(self):
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _trigger_server(self) -> None:
        sock: socket.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(min(2.0, self.ready_timeout))
            sock.bind((self.hostname, 0))
            self.probe_peers.add(sock.getsockname()[:2])
            sock.connect((self.hostname, self.port))
            if self.ssl_context is not None:
                ctx = self.probe_ssl_context or _unverified_client_context()
                sock = ctx.wrap_socket(sock)
            sock.recv(1024)
        except OSError:
            # TLS refusals, resets and timeouts: what start() needs is that the factory ran,
            # which it checks itself right after this returns.
            pass
        finally:
            sock.close()

    def abort_connections(self) -> None:
        """Abort all open client connections (must run in the loop thread)."""
        for proto in list(self.live):
            proto.abort()


def _unverified_client_context(
    certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only for the local readiness probe
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


# --------------------------------------------------------------------------------------------
# SMTPServer
# --------------------------------------------------------------------------------------------

MODES = ("plain", "starttls", "tls")


class SMTPServer:
    """A real aiosmtpd SMTP server on 127.0.0.1 in a background thread.

    Modes:

    * ``"plain"``: no TLS, STARTTLS not advertised; AUTH (LOGIN, PLAIN) offered without TLS
      iff ``auth`` credentials are given.
    * ``"starttls"``: STARTTLS offered (``require_starttls`` optional); AUTH only after
      STARTTLS (``auth_require_tls=True``).
    * ``"tls"``: implicit TLS from the first byte (SMTPS); AUTH offered.

    ``lmtp=True`` speaks LMTP (aiosmtpd's ``LMTP``: LHLO instead of EHLO/HELO).
    TLS modes need ``certs`` (a ``Certificates``) or an explicit server ``tls_context``.
    ``port=0`` (default) picks a free port; the real one is ``server.port`` after ``start()``.
    Use as a context manager, or call ``start()``/``stop()``.
    """

    host = LOCALHOST

    def __init__(
        self,
        mode: str = "plain",
        *,
        certs: Certificates | None = None,
        auth: Mapping[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        require_client_cert: bool = False,
        auth_required: bool = False,
        auth_require_tls: bool | None = None,
        auth_mechanisms: Sequence[str] = ("LOGIN", "PLAIN"),
        pipelining: bool = False,
        enable_SMTPUTF8: bool = True,  # noqa: N803 - aiosmtpd's spelling
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        refuse_rcpt: Mapping[str, str] | None = None,
        data_reply: DataReply = None,
        mail_reply: str | None = None,
        handler: RecordingHandler | None = None,
        server_hostname: str = "localhost",
        port: int = 0,
        timeout: float = 300.0,
        ready_timeout: float = 5.0,
        lmtp: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.certs = certs
        if handler is None:
            handler = RecordingHandler()
        handler.credentials = dict(auth or handler.credentials)
        if refuse_rcpt is not None:
            handler.refuse_rcpt = dict(refuse_rcpt)
        if data_reply is not None:
            handler.data_reply = data_reply
        if mail_reply is not None:
            handler.mail_reply = mail_reply
        handler.require_auth = handler.require_auth or auth_required
        handler.pipelining = handler.pipelining or pipelining
        self.handler = handler

        if mode != "plain" and tls_context is None:
            if certs is None:
                raise ValueError(f"mode {mode!r} needs certs= or tls_context=")
            tls_context = certs.server_ssl_context(require_client_cert=require_client_cert)
        self.tls_context = tls_context if mode != "plain" else None

        probe_ctx = None
        if mode == "tls":
            use_client_cert = certs is not None and (
                require_client_cert or tls_context.verify_mode != ssl.CERT_NONE
            )
            probe_ctx = _unverified_client_context(
                certs.client_cert_file if use_client_cert else None,
                certs.client_key_file if use_client_cert else None,
            )

        if auth_require_tls is None:
            auth_require_tls = mode == "starttls"
        smtp_kwargs: dict[str, Any] = {
            "data_size_limit": data_size_limit,
            "enable_SMTPUTF8": enable_SMTPUTF8,
            "decode_data": False,
            "timeout": timeout,
            "auth_require_tls": auth_require_tls,
            "authenticator": handler.authenticate,
            "auth_exclude_mechanism": [
                m for m in ("LOGIN", "PLAIN", "XOAUTH2", "OAUTHBEARER")
                if m not in {x.upper() for x in auth_mechanisms}
            ],
        }
        if mode == "starttls":
            smtp_kwargs["tls_context"] = tls_context
            smtp_kwargs["require_starttls"] = require_starttls
        self._controller = _Controller(
            handler,
            hostname=LOCALHOST,
            port=port,
            ssl_context=tls_context if mode == "tls" else None,
            probe_ssl_context=probe_ctx,
            server_hostname=server_hostname,
            ready_timeout=ready_timeout,
            lmtp=lmtp,
            **smtp_kwargs,
        )
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SMTPServer:
        if self._running:
            raise RuntimeError("server already running")
        try:
            self._controller.start()
        except BaseException:
            self._controller.stop(no_assert=True)
            raise
        self._running = True
        return self

    def stop(self) -> None:
        """Abort open client connections, stop the loop and join its thread. Idempotent."""
        if not self._running:
            return
        self._running = False
        ctrl = self._controller
        with contextlib.suppress(RuntimeError):  # loop already closed
            ctrl.loop.call_soon_threadsafe(ctrl.abort_connections)
        ctrl.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- accessors -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def auth(self) -> dict[str, str]:
        return self.handler.credentials

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages

    @property
    def connections(self) -> int:
        return self.handler.connections

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        return self.handler.wait_for(n, timeout)

    def client_ssl_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """A verifying client context trusting this server's CA (needs ``certs``)."""
        if self.certs is None:
            raise ValueError("server was built without certs=")
        return self.certs.client_ssl_context(with_client_cert=with_client_cert)

    def __repr__(self) -> str:
        return f"<SMTPServer {self.mode} {self.host}:{self.port} running={self._running}>"


class NoStartTLSServer(SMTPServer):
    """A plain server that does not advertise STARTTLS (same as ``SMTPServer("plain")``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("plain", **kwargs)


# --------------------------------------------------------------------------------------------
# Misbehaving raw-socket servers
# --------------------------------------------------------------------------------------------


class _RawServer:
    """Threaded TCP server on 127.0.0.1; subclasses implement ``handle(conn, peer)``.

    The listening socket is bound in ``__init__`` so ``port`` is known at once.  ``stop()``
    shuts every connection down (waking blocked reads) and joins the daemon threads.
    """

    host = LOCALHOST
    io_timeout = 30.0  # safety net: no handler thread blocks longer than this

    def __init__(self) -> None:
        self._listener = socket.create_server((LOCALHOST, 0), backlog=32)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept_thread: threading.Thread | None = None
        self._connections = 0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def start(self):
        if self._accept_thread is not None:
            raise RuntimeError("server already started")
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:  # (a connection's thread is started under it: all in the list run)
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        if self._accept_thread is not None:
            threads.append(self._accept_thread)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(self.io_timeout)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    break
                self._conns.append(conn)
                self._connections += 1
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn, peer),
                    name=f"{type(self).__name__}-conn",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()  # under the lock: stop() never joins a thread not yet started

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        try:
            self.handle(conn, peer)
        except OSError:
            pass  # the client went away, or stop() shut the socket down
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle(self, conn: socket.socket, peer: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _send(conn: socket.socket, reply: str | Sequence[str]) -> None:
        lines = [reply] if isinstance(reply, str) else list(reply)
        conn.sendall("".join(line + "\r\n" for line in lines).encode("utf-8"))


class SilentServer(_RawServer):
    """Accepts TCP connections and never sends a byte (reads and discards input)."""

    def handle(self, conn: socket.socket, peer: Any) -> None:
        while not self._stopping.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue


class ScriptedServer(_RawServer):
    """A tiny scripted SMTP server (one reply per command verb), not aiosmtpd.

    ``greeting``: first line; if it is not 2xx the connection is closed right after it.
    ``replies``: ``{"VERB": reply}`` overriding the defaults below; a reply is a line or a list
    of lines (multi-line replies such as EHLO).  Unknown verbs get 502.  After "354" to DATA the
    message is read up to the final dot, recorded in ``data`` and answered with ``data_reply``;
    with ``drop_in_data=True`` the server instead reads one chunk (at least
    ``drop_after_bytes`` bytes), records it and closes the socket abruptly (RST when
    ``reset=True``) without ever answering the end of data.  A reply starting with "421" closes
    the connection after being sent, as does QUIT.
    Recorded: ``commands`` (lines without CRLF, bytes) and ``data`` (one bytes per DATA).
    """

    DEFAULT_EHLO = ("250-localhost", "250-PIPELINING", "250-8BITMIME", "250 SIZE 10485760")

    def __init__(
        self,
        *,
        greeting: str = "220 localhost ESMTP scripted",
        replies: Mapping[str, str | Sequence[str]] | None = None,
        data_reply: str = "250 2.0.0 OK queued",
        drop_in_data: bool = False,
        drop_after_bytes: int = 1,
        reset: bool = True,
    ) -> None:
        super().__init__()
        self.greeting = greeting
        self.replies: dict[str, str | Sequence[str]] = {
            "EHLO": list(self.DEFAULT_EHLO),
            "HELO": "250 localhost",
            "MAIL": "250 2.1.0 OK",
            "RCPT": "250 2.1.5 OK",
            "DATA": "354 End data with <CR><LF>.<CR><LF>",
            "RSET": "250 2.0.0 OK",
            "NOOP": "250 2.0.0 OK",
            "QUIT": "221 2.0.0 Bye",
        }
        self.replies.update({k.upper(): v for k, v in (replies or {}).items()})
        self.data_reply = data_reply
        self.drop_in_data = drop_in_data
        self.drop_after_bytes = drop_after_bytes
        self.reset = reset
        self._commands: list[bytes] = []
        self._data: list[bytes] = []
        self.dropped = threading.Event()  # set when a connection was dropped during DATA

    @property
    def commands(self) -> list[bytes]:
        with self._lock:
            return list(self._commands)

    @property
    def data(self) -> list[bytes]:
        with self._lock:
            return list(self._data)

    def handle(self, conn: socket.socket, peer: Any) -> None:
        self._send(conn, self.greeting)
        if not self.greeting.startswith("2"):
            return
        rfile = conn.makefile("rb")
        try:
            while not self._stopping.is_set():
                line = rfile.readline()
                if not line:
                    return
                command = line.rstrip(b"\r\n")
                with self._lock:
                    self._commands.append(command)
                verb = command.split(b" ", 1)[0].upper().decode("ascii", "replace")
                reply = self.replies.get(verb, "502 5.5.2 Command not recognized")
                self._send(conn, reply)
                first = reply if isinstance(reply, str) else (list(reply) or [""])[0]
                if verb == "QUIT":
                    return
                if first.startswith("421"):
                    self._close_gracefully(conn)
                    return
                if verb == "DATA" and first.startswith("354"):
                    if self.drop_in_data:
                        self._drop(conn, rfile)
                        return
                    self._read_data(rfile)
                    self._send(conn, self.data_reply)
                    if self.data_reply.startswith("421"):
                        self._close_gracefully(conn)
                        return
        finally:
            rfile.close()

    def _close_gracefully(self, conn: socket.socket, wait: float = 2.0) -> None:
        """Close after a 421 as a server should: FIN first, then read (and ignore) what
        the client still sends until it closes, so that the client can read the 421 (a
        close with unread input would send RST, and the client could lose the reply)."""
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + wait
        conn.settimeout(0.05)
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue

    def _drop(self, conn: socket.socket, rfile: Any) -> None:
        got = b""
        while len(got) < self.drop_after_bytes:
            chunk = rfile.read1(65536)
            if not chunk:
                break
            got += chunk
        with self._lock:
            self._data.append(got)
        if self.reset:  # RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.dropped.set()

    def _read_data(self, rfile: Any) -> None:
        lines = []
        while True:
            line = rfile.readline()
            if not line or line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        with self._lock:
            self._data.append(b"".join(lines))


class GreetingRefusedServer(ScriptedServer):
    """Greets with "421 4.3.2 Service not available, closing transmission channel", closes."""

    def __init__(
        self, greeting: str = "421 4.3.2 Service not available, closing transmission channel"
    ) -> None:
        super().__init__(greeting=greeting)


class DropDuringDataServer(ScriptedServer):
    """Greets 220, EHLO with PIPELINING/8BITMIME/SIZE, 250 to MAIL/RCPT, 354 to DATA, then
    reads the first chunk of the message and closes the socket (RST) before the final dot."""

    def __init__(self, *, drop_after_bytes: int = 1, reset: bool = True) -> None:
        super().__init__(drop_in_data=True, drop_after_bytes=drop_after_bytes, reset=reset)


class HostileServer(ScriptedServer):
    """A ScriptedServer that misbehaves at one ``stage`` of each conversation, until told to
    behave (set ``behaviour`` to None: ``stage`` and ``behaviour`` are read as each
    connection starts).

    ``stage``: "greeting", a command verb ("EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT",
    "DATA", "QUIT"...) or "end of data" (the reply to the final dot), the ``nth`` time it
    comes on the connection (the second RCPT, the end of the second message...).
    ``behaviour``:

    * "drip": an endless reply (``250-drip`` lines) written one byte every ``interval``
      seconds;
    * "lines": ``flood_line`` (``250-xxx...``) without end, as fast as the client reads;
    * "line": one line that never ends, as fast as the client reads it;
    * "silent": no answer at all (the connection stays open);
    * "deaf" (for "DATA"): 354, then nothing is read any more (the client's writes stall);
    * any other text: that reply instead of the usual one; after a 421 the server closes
      the connection (gracefully: the client can read the 421 first).

    ``pipelining`` / ``auth`` / ``starttls`` / ``size`` shape the EHLO reply (``auth``:
    "AUTH PLAIN LOGIN" offered, any credentials accepted with 235). ``flooded`` counts the
    bytes sent while misbehaving; ``misbehaved`` counts the times it did.
    """

    FLOOD_LINE = b"250-" + b"x" * 70 + b"\r\n"

    def __init__(
        self,
        stage: str,
        behaviour: str | None,
        *,
        nth: int = 1,
        interval: float = 0.5,
        pipelining: bool = True,
        auth: bool = False,
        starttls: bool = False,
        size: int | None = 10485760,
        flood_line: bytes = FLOOD_LINE,
        replies: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        ehlo = ["250-localhost"]
        if pipelining:
            ehlo.append("250-PIPELINING")
        if auth:
            ehlo.append("250-AUTH PLAIN LOGIN")
        if starttls:
            ehlo.append("250-STARTTLS")
        if size is not None:
            ehlo.append(f"250-SIZE {size}")
        ehlo.append("250 8BITMIME")
        defaults: dict[str, str | Sequence[str]] = {"EHLO": ehlo, "AUTH": "235 2.7.0 Authenticated"}
        defaults.update(replies or {})
        super().__init__(replies=defaults)
        self.stage = stage
        self.behaviour = behaviour
        self.nth = nth
        self.interval = interval
        self.flood_line = flood_line
        self.flooded = 0
        self.misbehaved = 0

    def handle(self, conn: socket.socket, peer: Any) -> None:
        stage, behaviour = self.stage, self.behaviour
        if behaviour is not None and stage == "greeting":
            self._misbehave(conn, behaviour)
            return
        self._send(conn, self.greeting)
        rfile = conn.makefile("rb")
        seen: dict[str, int] = {}  # how many times each stage came on this connection
        try:
            while not self._stopping.is_set():
                line = rfile.readline()
                if not line:
                    return
                command = line.rstrip(b"\r\n")
                with self._lock:
                    self._commands.append(command)
                verb = command.split(b" ", 1)[0].upper().decode("ascii", "replace")
                seen[verb] = seen.get(verb, 0) + 1
                if behaviour is not None and verb == stage and seen[verb] == self.nth:
                    if not self._misbehave(conn, behaviour):
                        return
                    continue
                reply = self.replies.get(verb, "502 5.5.2 Command not recognized")
                self._send(conn, reply)
                if verb == "QUIT":
                    return
                if verb == "DATA" and str(reply).startswith("354"):
                    self._read_data(rfile)
                    seen["end of data"] = seen.get("end of data", 0) + 1
                    last = seen["end of data"] == self.nth
                    if behaviour is not None and stage == "end of data" and last:
                        if not self._misbehave(conn, behaviour):
                            return
                        continue
                    self._send(conn, self.data_reply)
        finally:
            rfile.close()

    def _misbehave(self, conn: socket.socket, behaviour: str) -> bool:
        """Do it; return True if the conversation may go on (a reply that is not a 421)."""
        with self._lock:
            self.misbehaved += 1
        if behaviour == "silent":  # until the client gives up
            conn.settimeout(0.05)
            while not self._stopping.is_set():
                try:
                    if not conn.recv(65536):
                        break
                except TimeoutError:
                    continue
            return False
        if behaviour == "drip":
            stream = itertools.cycle(b"250-drip\r\n")
            while not self._stopping.is_set():
                conn.sendall(bytes([next(stream)]))
                self._count(1)
                if self._stopping.wait(self.interval):
                    break
            return False
        if behaviour in ("lines", "line"):
            chunk = self.flood_line * 1000 if behaviour == "lines" else b"x" * 65536
            if behaviour == "line":
                conn.sendall(b"250 ")
            while not self._stopping.is_set():
                conn.sendall(chunk)  # an OSError once the client has gone ends it
                self._count(len(chunk))
            return False
        if behaviour == "deaf":
            self._send(conn, "354 End data with <CR><LF>.<CR><LF>")
            self._stopping.wait(self.io_timeout)
            return False
        self._send(conn, behaviour)
        if behaviour.startswith("421"):
            self._close_gracefully(conn)
            return False
        return True

    def _count(self, sent: int) -> None:
        with self._lock:
            self.flooded += sent
