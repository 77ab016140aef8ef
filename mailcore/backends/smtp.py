"""SMTP email backend class."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from mailcore.backends.base import BaseEmailBackend
from mailcore.conf import settings
from mailcore.errors import InsecureAuthError, TLSFileError, check_tls_files
from mailcore.message import (
    NeedsSMTPUTF8Error,
    check_envelope_address,
    envelope_address,
    needs_smtputf8,
    sanitize_address,
    utf8_headers,
)
from mailcore.smtp import (
    AUTH_MECHANISMS,
    LMTP,
    OAUTH_MECHANISMS,
    SMTP,
    SMTP_SSL,
    AbortHandle,
    ProgressCallback,
    SMTPAborted,
    TranscriptCallback,
    is_simple_address,
)
from mailcore.utils import DNS_NAME
from mailcore.wire import Serialized, serialize, serialize_in

__all__ = ["EmailBackend", "InsecureAuthError", "MailcoreTransport", "SMTPAborted", "SendResult",
           "SmtplibTransport", "TLSFileError", "Transport", "check_tls_files"]


# smtplib's classes as they were at import. A test that patches smtplib.SMTP (as Django's
# users do, since Django's connection_class is smtplib.SMTP) gets its stand-in used.
_STDLIB_SMTP = smtplib.SMTP
_STDLIB_SMTP_SSL = smtplib.SMTP_SSL
_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


class SendResult(NamedTuple):
    """What happened to one message sent by :class:`EmailBackend`."""

    message_id: str | None
    envelope_from: str
    recipients: list[str]
    refused: dict[str, tuple[int, bytes]]
    size: int
    code: int
    reply: str


_sanitize = functools.lru_cache(maxsize=1024)(sanitize_address)


def _sanitize_address(addr: Any, encoding: str) -> str:
    if type(addr) is str and is_simple_address(addr):
        return addr  # what sanitize_address() gives back for a plain addr-spec
    try:
        return _sanitize(addr, encoding)
    except TypeError:  # unhashable (a lazy string, say)
        return sanitize_address(addr, encoding)


def _envelope_address(addr: Any, encoding: str) -> str:
    """An address for MAIL FROM or RCPT TO: sanitize_address(), as Django, then mailcore's
    check that the SMTP command gets one plain addr-spec and nothing else (no space, so no
    ESMTP parameter; no control character; no "<" or ">"). Raises InvalidAddressError, a
    ValueError, before any command is written.

    A non-ASCII local part stays as it is (UTF-8, for SMTPUTF8: RFC 6531), never an encoded
    word (which is another mailbox); the domain is IDNA (punycode) as always
    (:func:`mailcore.message.envelope_address`). Whether the server takes it is decided at
    MAIL (mailcore.smtp: SMTPUTF8RequiredError before anything of the message is sent)."""
    if type(addr) is str and is_simple_address(addr) and "=?" not in addr:
        return addr
    if not needs_smtputf8(addr):
        sanitized = _sanitize_address(addr, encoding)
        check_envelope_address(sanitized, given=addr)
        return sanitized
    return envelope_address(addr, encoding, utf8=True)


class EmailBackend(BaseEmailBackend):
    """A wrapper that manages the SMTP network connection.

    open() decides, once, which transport drives the connection: MailcoreTransport for
    mailcore's own client, SmtplibTransport for an smtplib-compatible class put in place
    (a ``connection_class`` of one's own, smtplib.SMTP patched). send_messages() has one
    loop over the transport's outcomes; fail_silently is honoured in open(), close() and
    that loop, as in Django.

    Beyond Django's backend (mailcore only):

    * ``transcript=callable(event, text)``: the SMTP conversation (see mailcore.smtp), the
      message content summarised in one "data" event, or given line by line as "content"
      events with ``transcript_data=True``;
    * ``progress=callable(bytes_done, bytes_total)``: called on the sending thread while each
      message's content is written (``bytes_total`` is the message's exact size), at the
      start, after every write of at most 512 KiB and at the end, always before the final dot.
      If it raises, the send stops as with :meth:`abort` (the connection is dropped, the
      message is not delivered) and the exception propagates, even with fail_silently;
    * :meth:`abort`, to stop a send from another thread;
    * ``dkim=``: DKIM-sign each message (see BaseEmailBackend): the signature is computed on
      the very bytes that go out (mailcore's serialisation, before dot-stuffing), reading the
      message once more, a chunk at a time, for the body hash; nothing is held twice;
    * ``oauth_token=``: log in with an OAuth 2.0 access token instead of a password: a str,
      or a callable returning a fresh one, called on the sending thread just before AUTH
      (once per connection). ``username`` is the mailbox it is for. OAUTHBEARER (RFC 7628)
      if the server offers it, else XOAUTH2. The same rules as a password: never sent over an
      unencrypted connection to a host that is not this machine (unless
      ``allow_insecure_auth``), never in a repr, log, transcript or exception. A refused
      token is :class:`mailcore.errors.SMTPOAuthTokenError` (``.expired``: refresh, retry
      once). Setting: ``EMAIL_OAUTH_TOKEN`` (a static token). With a token, the password is
      not used;
    * ``auth_mechanism=``: force one of "PLAIN", "LOGIN", "CRAM-MD5" (with a password) or
      "XOAUTH2", "OAUTHBEARER" (with a token); one the server does not offer is
      :class:`mailcore.errors.SMTPAuthNotSupportedError` naming what it offers;
    * ``local_hostname=`` (the EHLO/HELO name; default: this machine's FQDN), ``helo=True``
      (HELO instead of EHLO: no ESMTP extension is used), ``protocol="lmtp"`` (LMTP, RFC
      2033: LHLO, and one reply per recipient after the content, refusals there in
      ``last_results``);
    * ``quit_after=``: stop the conversation after "connect" (= "banner", the greeting),
      "ehlo" (= "helo", the first EHLO/HELO), "tls" (STARTTLS and the EHLO after it; without
      STARTTLS, as "ehlo"), "auth" (the login, if any), "mail" or "rcpt" (of the first
      message), as swaks's ``--quit-after``: QUIT is sent there, nothing is delivered and
      send_messages() returns 0;
    * SMTPUTF8 (RFC 6531): an address with a non-ASCII local part goes into the envelope as
      UTF-8 with ``MAIL FROM:<...> SMTPUTF8`` (and the message's headers as UTF-8) when the
      server offers SMTPUTF8; otherwise that message raises
      :class:`mailcore.errors.SMTPUTF8RequiredError` (an ``smtplib.SMTPNotSupportedError``)
      naming the address and the server, before its MAIL is sent. ``BODY=8BITMIME`` is
      announced for 8bit content when the server offers 8BITMIME.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_cafile: str | None = None,
        allow_insecure_auth: bool | None = None,
        transcript: TranscriptCallback | None = None,
        transcript_data: bool = False,
        progress: ProgressCallback | None = None,
        dkim: Any = None,
        *,
        oauth_token: str | Callable[[], str] | None = None,
        auth_mechanism: str | None = None,
        local_hostname: str | None = None,
        helo: bool = False,
        protocol: str = "smtp",
        quit_after: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, dkim=dkim)
        self.host = host or settings.EMAIL_HOST
        self.port = port or settings.EMAIL_PORT
        self.username = settings.EMAIL_HOST_USER if username is None else username
        self.password = settings.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls = settings.EMAIL_USE_TLS if use_tls is None else use_tls
        self.use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
        self.timeout = settings.EMAIL_TIMEOUT if timeout is None else timeout
        self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
        self.ssl_certfile = settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
        self.ssl_cafile = settings.EMAIL_SSL_CAFILE if ssl_cafile is None else ssl_cafile
        self.allow_insecure_auth = (
            settings.EMAIL_ALLOW_INSECURE_AUTH
            if allow_insecure_auth is None
            else allow_insecure_auth
        )
        self.transcript = transcript
        self.transcript_data = transcript_data
        self.progress = progress
        self.oauth_token = settings.EMAIL_OAUTH_TOKEN if oauth_token is None else oauth_token
        self.auth_mechanism = auth_mechanism.upper() if auth_mechanism else None
        if self.auth_mechanism is not None:
            if self.auth_mechanism not in AUTH_MECHANISMS:
                raise ValueError(f"auth_mechanism must be one of {', '.join(AUTH_MECHANISMS)}, "
                                 f"not {auth_mechanism!r}")
            if (self.auth_mechanism in OAUTH_MECHANISMS) != bool(self.oauth_token):
                raise ValueError(
                    f"auth_mechanism {self.auth_mechanism} needs "
                    + ("an OAuth 2.0 access token (oauth_token=)"
                       if self.auth_mechanism in OAUTH_MECHANISMS
                       else "a password (oauth_token= is set)"))
        self.local_hostname = local_hostname
        self.helo = helo
        protocol = (protocol or "smtp").lower()
        if protocol not in ("smtp", "lmtp"):
            raise ValueError(f"protocol must be 'smtp' or 'lmtp', not {protocol!r}")
        self.protocol = protocol
        if quit_after is not None:
            quit_after = _QUIT_ALIASES.get(quit_after.lower(), quit_after.lower())
            if quit_after not in QUIT_AFTER:
                raise ValueError(f"quit_after must be one of {', '.join(QUIT_AFTER)} (or "
                                 f"banner, helo), not {quit_after!r}")
        self.quit_after = quit_after
        if self.protocol == "lmtp" and self.use_ssl:
            raise ValueError("protocol='lmtp' over implicit TLS is not supported: use STARTTLS")
        if self.use_ssl and self.use_tls:
            raise ValueError(
                "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
                "one of those settings to True."
            )
        self.connection: Any = None
        self._transport: Transport | None = None  # drives self.connection (see open())
        self._partial_connection: Any = None
        self._lock = threading.RLock()
        self._abort = AbortHandle()
        self._depth = 0  # open()/send_messages() calls in progress (nested)
        self._progress_error: BaseException | None = None
        # One SendResult per message of the latest send_messages() call.
        self.last_results: list[SendResult] = []

    def __repr__(self) -> str:
        security = "SSL" if self.use_ssl else "STARTTLS" if self.use_tls else "plain"
        user = f" user={self.username!r}" if self.username else ""
        login = " oauth2" if self.username and self.oauth_token else ""
        lmtp = " LMTP" if self.protocol == "lmtp" else ""
        return (f"<{type(self).__module__}.EmailBackend {self.host}:{self.port} "
                f"{security}{lmtp}{user}{login}>")

    @property
    def transport(self) -> Transport | None:
        """What drives the open connection (chosen by open()), or None when none is open."""
        return self._transport

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        if self.protocol == "lmtp":
            return LMTP
        if self.use_ssl:
            return SMTP_SSL if smtplib.SMTP_SSL is _STDLIB_SMTP_SSL else smtplib.SMTP_SSL
        return SMTP if smtplib.SMTP is _STDLIB_SMTP else smtplib.SMTP

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        # Verify the server against the system's CAs, or against EMAIL_SSL_CAFILE
        # alone when it is set; hostnames are always checked.
        ssl_context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile or self.ssl_keyfile:
            ssl_context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ssl_context

    def _connection_params(self) -> dict[str, Any]:
        # If local_hostname is not specified, socket.getfqdn() gets used.
        # For performance, we use the cached FQDN for local_hostname.
        params: dict[str, Any] = {"local_hostname": self.local_hostname or DNS_NAME.get_fqdn()}
        if self.timeout is not None:
            params["timeout"] = self.timeout
        if self.use_ssl:
            params["context"] = self.ssl_context
        if self._own_client(self.connection_class):
            if self.transcript is not None:
                params["transcript"] = self.transcript
            params["abort_handle"] = self._abort
        return params

    # -- abort ------------------------------------------------------------------------
    def abort(self) -> None:
        """Stop the send in progress, from any thread, at any moment. Never blocks.

        Shuts down (``socket.shutdown(SHUT_RDWR)``) the socket of the open connection and
        of a connection being opened, also while its TCP connect, the greeting or STARTTLS
        is under way, so the sending thread wakes at once. That send_messages() (or open())
        raises :class:`mailcore.smtp.SMTPAborted` (returns 0 with fail_silently); a message
        whose content was being written is never delivered (its final dot is never sent),
        and the connection is dropped: the next send opens a fresh one. Called when no send
        is in progress, it makes the next open() or send_messages() fail at once. Only a
        host name lookup (getaddrinfo) can't be interrupted: the abort takes effect when it
        returns.
        """
        self._abort.abort()
        # A connection class of someone else's registers nothing: its socket, if any.
        for connection in (self.connection, self._partial_connection):
            if connection is not None and getattr(connection, "abort_handle", None) is None:
                sock = getattr(connection, "sock", None)
                if isinstance(sock, socket.socket):
                    try:
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass

    @contextlib.contextmanager
    def _operation(self) -> Iterator[None]:
        """open() and send_messages(): fail at once after abort(); report an aborted
        operation as SMTPAborted; after it, drop the connections and forget the abort."""
        with self._lock:
            self._depth += 1
            try:
                yield
            except OSError as exc:  # smtplib.SMTPException is an OSError
                if (
                    self._abort.aborted
                    and exc is not self._progress_error
                    and not isinstance(exc, SMTPAborted)
                ):
                    raise SMTPAborted() from exc
                raise
            finally:
                self._depth -= 1
                if self._depth == 0 and self._abort.aborted:
                    for connection in (self._partial_connection, self.connection):
                        if connection is not None:
                            _discard(connection)
                    self._partial_connection = None
                    self.connection = None
                    self._transport = None
                    self._abort.reset()

    def _progress_hook(self) -> ProgressCallback | None:
        callback = self.progress
        if callback is None:
            return None

        def hook(done: int, total: int) -> None:
            try:
                callback(done, total)
            except BaseException as exc:
                self._progress_error = exc
                raise

        return hook

    def _check_password_is_safe(self, connection: Any) -> None:
        """Refuse to send a password (or an access token) in the clear, except to this
        machine."""
        if self.use_ssl or self.use_tls or self.allow_insecure_auth:
            return
        sock = getattr(connection, "sock", None)
        if not isinstance(sock, socket.socket):  # a connection class of someone else's
            sock = None
            if str(self.host).lower() in _LOOPBACK_NAMES:
                return
        try:
            peer = sock.getpeername()[0] if sock is not None else self.host
            address = ipaddress.ip_address(str(peer).split("%", 1)[0])
            mapped = getattr(address, "ipv4_mapped", None)
            if address.is_loopback or (mapped is not None and mapped.is_loopback):
                return
        except (OSError, ValueError):
            pass
        secret = "access token" if self.oauth_token else "password"
        raise InsecureAuthError(
            f"Refusing to send the {secret} to {self.host}:{self.port} over an unencrypted "
            "connection. Use STARTTLS (EMAIL_USE_TLS) or implicit TLS (EMAIL_USE_SSL), or set "
            "EMAIL_ALLOW_INSECURE_AUTH (allow_insecure_auth=True) if you accept that risk."
        )

    def open(self) -> bool | None:
        """Ensure an open connection to the email server. Return whether or not a
        new connection was required (True or False) or None if an exception
        passed silently.
        """
        with self._operation():
            return self._open()

    def _open(self) -> bool | None:
        try:
            if self._abort.aborted:
                raise SMTPAborted()  # abort() was called before: fail at once

            if self.connection:
                # Nothing to do if the connection is already open (a connection set from
                # outside, as Django's tests do, gets its transport here).
                if self._transport is None or self._transport.connection is not self.connection:
                    self._transport = self._transport_for(self.connection)
                return False

            # If a connection was partially opened before, close it.
            if self._partial_connection is not None:
                _discard(self._partial_connection)
                self._partial_connection = None

            connection = self._partial_connection = self.connection_class(
                self.host, self.port, **self._connection_params()
            )
            if self.transcript_data:
                connection.transcript_data = True
            if self._stop_at("connect"):
                return None
            if self.helo:
                connection.helo(connection.local_hostname)
            elif self.quit_after is not None or self.use_tls:
                connection.ehlo_or_helo_if_needed()
            if self._stop_at("ehlo"):
                return None
            # TLS/SSL are mutually exclusive, so only attempt TLS over
            # non-secure connections. A failed STARTTLS raises: nothing is
            # ever sent in the clear instead.
            if not self.use_ssl and self.use_tls:
                connection.starttls(context=self.ssl_context)
                if self.quit_after == "tls":
                    connection.ehlo_or_helo_if_needed()
            if self._stop_at("tls"):
                return None
            if self.username and self.oauth_token:
                self._check_password_is_safe(connection)
                connection.login_oauth(self.username, self.oauth_token,
                                       mechanism=self.auth_mechanism)
            elif self.username and self.password:
                self._check_password_is_safe(connection)
                if self.auth_mechanism is None:
                    connection.login(self.username, self.password)
                else:
                    connection.login(self.username, self.password,
                                     mechanism=self.auth_mechanism)
            if self._stop_at("auth"):
                return None
            # Don't set connection until it's fully configured.
            self.connection = self._partial_connection
            self._transport = self._transport_for(self.connection)
            self._partial_connection = None
            return True
        except OSError:
            # As in Django, a half-open connection (STARTTLS or AUTH failed) is
            # kept only to be closed by the next open() or close(); it is never
            # used to send.
            if not self.fail_silently:
                raise
        return None

    def _stop_at(self, stage: str) -> bool:
        """quit_after: at ``stage``, end the conversation being opened (QUIT) and say so."""
        if self.quit_after != stage:
            return False
        connection, self._partial_connection = self._partial_connection, None
        try:
            _quit(connection)
        finally:
            _discard(connection)
        return True

    @staticmethod
    def _own_client(cls: Any) -> bool:
        """The one question that picks the transport: is it mailcore's own SMTP client?"""
        return isinstance(cls, type) and issubclass(cls, SMTP | SMTP_SSL)

    def _transport_for(self, connection: Any) -> Transport:
        if self._own_client(type(connection)):
            return MailcoreTransport(connection, self._drop, dkim=self.dkim)
        return SmtplibTransport(connection, self._drop, dkim=self.dkim)

    def close(self) -> None:
        """Close the connection to the email server."""
        for name in ("_partial_connection", "connection"):
            connection = getattr(self, name)
            if connection is None:
                continue
            try:
                _quit(connection)
            except smtplib.SMTPException:
                if not self.fail_silently:
                    raise
            finally:
                setattr(self, name, None)
                if name == "connection":
                    self._transport = None

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send one or more EmailMessage objects and return the number of email
        messages sent."""
        if not email_messages:
            return 0
        with self._operation():
            self.last_results = []
            self._progress_error = None
            new_conn_created = self.open()
            if not self.connection or new_conn_created is None or self._transport is None:
                # We failed silently on open() (or quit_after stopped before MAIL).
                # Trying to send would be pointless.
                return 0
            try:
                if self.quit_after in ("mail", "rcpt"):
                    self._envelope_only(email_messages)
                    return 0
                num_sent = self._deliver(self._transport, email_messages)
            finally:
                if new_conn_created:
                    self.close()
        return num_sent

    def _envelope_only(self, email_messages: Sequence[Any]) -> None:
        """quit_after "mail" / "rcpt": the first message's MAIL (and RCPTs), then QUIT."""
        connection = self.connection
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                from_email, recipients, data, options = _prepare(message, connection, self.dkim)
                connection.send_envelope(from_email, recipients, data,
                                         stop_after=self.quit_after, mail_options=options)
            except smtplib.SMTPException:
                if not self.fail_silently:
                    raise
            finally:
                self.close()
            return

    def _deliver(self, transport: Transport, email_messages: Sequence[Any]) -> int:
        """The one send loop: each outcome recorded, or raised unless fail_silently."""
        num_sent = 0
        with contextlib.closing(
            transport.send_many(email_messages, self._progress_hook())
        ) as outcomes:
            for outcome in outcomes:
                if isinstance(outcome, SendResult):
                    self.last_results.append(outcome)
                    num_sent += 1
                elif not self.fail_silently:
                    raise outcome
        return num_sent

    def _send(self, email_message: Any) -> bool:
        """Django's helper: send one message over the open connection; True if it was sent.
        An invalid address raises ValueError before anything is written, as in Django."""
        if not email_message.recipients():
            return False
        if self._transport is None:
            envelope(email_message)
            raise smtplib.SMTPServerDisconnected("no connection is open: call open() first")
        return self._deliver(self._transport, [email_message]) == 1

    def _drop(self, connection: Any) -> None:
        """The transport lost ``connection`` (or a send stopped inside it): it is closed and
        never reused; the next send opens a fresh one."""
        if connection is self.connection:
            _discard(connection)
            self.connection = None
            self._transport = None


# -- transports ------------------------------------------------------------------------------


class Transport(Protocol):
    """One open connection, as EmailBackend drives it, whatever its class."""

    connection: Any

    def send_many(
        self, messages: Iterable[Any], progress: ProgressCallback | None = None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        """One outcome per message that has recipients, in order: its SendResult, or the
        error that ``fail_silently`` may pass over: the server refused that message (the
        connection goes on), or the connection was lost (it is dropped and nothing more is
        yielded). Raised, whatever ``fail_silently`` says: a message that can't be prepared
        (an address, a missing file; once the messages before it are done) and an exception
        of ``progress``."""
        ...

    def send(self, message: Any) -> SendResult:
        """One message: its SendResult, or the error raised."""
        ...

    def close(self) -> None:
        """QUIT, or close the socket if the server is already gone."""
        ...


QUIT_AFTER = ("connect", "ehlo", "tls", "auth", "mail", "rcpt")
_QUIT_ALIASES = {"banner": "connect", "helo": "ehlo", "lhlo": "ehlo", "from": "mail",
                 "to": "rcpt"}


def envelope(email_message: Any) -> tuple[str, list[str]]:
    """MAIL FROM and the RCPT TO addresses of a message, checked as they go on the wire
    (mailcore.backends.celery queues them with the bytes, so the workers send the same)."""
    return _envelope_in(email_message, email_message.encoding or settings.DEFAULT_CHARSET)


def _envelope_in(email_message: Any, encoding: str) -> tuple[str, list[str]]:
    from_email = _envelope_address(email_message.from_email, encoding)
    recipients = [_envelope_address(addr, encoding) for addr in email_message.recipients()]
    return from_email, recipients


def _serialize(message: Any, *, utf8: bool = False, encoding: str = "") -> Serialized:
    if encoding:  # the message's charset, read once for the envelope and the bytes
        return serialize_in(message, "\r\n", encoding, utf8=utf8)
    return serialize(message, linesep="\r\n", utf8=utf8)


def _prepare(message: Any, connection: Any, dkim: Any = None
             ) -> tuple[str, list[str], Serialized, list[str]]:
    """The envelope, the bytes and the MAIL options of one message for ``connection``. With
    an address that needs SMTPUTF8 and a server that offers it, the headers are written as
    UTF-8 and MAIL gets SMTPUTF8; without SMTPUTF8 on the server the send of this message
    raises SMTPUTF8RequiredError (mailcore.smtp) before its MAIL."""
    encoding = message.encoding or settings.DEFAULT_CHARSET
    from_email, recipients = _envelope_in(message, encoding)
    utf8 = not (from_email.isascii() and all(r.isascii() for r in recipients))
    options: list[str] = []
    if utf8 and connection.offers_smtputf8():
        options.append("SMTPUTF8")
        data = _serialize(message, utf8=True, encoding=encoding)
    elif utf8:
        # Refused by the client at MAIL, before anything of it is written: the message is not
        # serialised (its non-ASCII header addresses could not be written without UTF-8).
        data = Serialized([b""], [], "\r\n")
        return from_email, recipients, data, options
    else:
        try:
            data = _serialize(message, encoding=encoding)
        except NeedsSMTPUTF8Error:
            # a header address (Reply-To, say) needs UTF-8 headers: with SMTPUTF8 only
            if not connection.offers_smtputf8():
                raise
            options.append("SMTPUTF8")
            data = _serialize(message, utf8=True, encoding=encoding)
    if dkim is not None:
        data = dkim.sign_serialized(data)
    return from_email, recipients, data, options


def _result(from_email: str, recipients: list[str], message_id: str | None, size: int,
            refused: dict[str, tuple[int, bytes]], code: int, text: Any) -> SendResult:
    return SendResult(
        message_id=message_id,
        envelope_from=from_email,
        recipients=[r for r in recipients if r not in refused],
        refused=dict(refused),
        size=size,
        code=code,
        reply=text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text),
    )


def _discard(connection: Any) -> None:
    """Close a connection that is in an unknown state, quietly."""
    try:
        connection.close()
    except OSError:
        pass


def _quit(connection: Any) -> None:
    """QUIT; an SMTPException other than a disconnect is raised (fail_silently is the
    backend's)."""
    try:
        connection.quit()
    except (ssl.SSLError, smtplib.SMTPServerDisconnected):
        # This happens when calling quit() on a TLS connection
        # sometimes, or when the connection was already disconnected
        # by the server.
        connection.close()
    except smtplib.SMTPException:  # an OSError too, but an answer: the caller decides
        raise
    except OSError:
        connection.close()


class _BaseTransport:
    def __init__(self, connection: Any, on_lost: Callable[[Any], None], *,
                 dkim: Any = None) -> None:
        self.connection = connection
        self._on_lost = on_lost
        self.dkim = dkim  # a mailcore.checks.dkim.DKIMSigner, or None

    def send_many(
        self, messages: Iterable[Any], progress: ProgressCallback | None = None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        raise NotImplementedError

    def send(self, message: Any) -> SendResult:
        with contextlib.closing(self.send_many([message])) as outcomes:
            for outcome in outcomes:
                if isinstance(outcome, SendResult):
                    return outcome
                raise outcome
        raise ValueError("the message has no recipients")

    def close(self) -> None:
        _quit(self.connection)

    def _lose(self) -> None:
        self._on_lost(self.connection)


class MailcoreTransport(_BaseTransport):
    """mailcore's own client (mailcore.smtp.SMTP): messages streamed from
    mailcore.wire.serialize, one round trip each when the server offers PIPELINING,
    progress, transcript and abort."""

    def __init__(self, connection: Any, on_lost: Callable[[Any], None], *,
                 dkim: Any = None) -> None:
        super().__init__(connection, on_lost, dkim=dkim)
        self.progress_error: BaseException | None = None

    def _watch(self, progress: ProgressCallback | None) -> ProgressCallback | None:
        if progress is None:
            return None

        def hook(done: int, total: int) -> None:
            try:
                progress(done, total)
            except BaseException as exc:
                self.progress_error = exc
                raise

        return hook

    def send_many(
        self, messages: Iterable[Any], progress: ProgressCallback | None = None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        connection = self.connection
        try:
            pipelining = connection.pipelining() is True
        except (smtplib.SMTPException, OSError) as exc:
            if getattr(connection, "sock", None) is not None:
                pipelining = False  # the first send meets the same error and reports it
            else:
                # The EHLO closed the connection (a 421, a timeout): that is this send's
                # error; the next send connects afresh.
                self._lose()
                yield exc
                return
        hook = self._watch(progress)
        try:
            if pipelining:
                yield from self._pipelined(messages, hook)
            else:
                yield from self._one_by_one(messages, hook)
        except BaseException as exc:
            if exc is self.progress_error:
                self._lose()  # the progress callback stopped the send: nothing half-sent
            raise

    def _one_by_one(
        self, messages: Iterable[Any], progress: ProgressCallback | None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        connection = self.connection
        for message in messages:
            if not message.recipients():
                continue
            from_email, recipients, data, options = _prepare(message, connection, self.dkim)
            try:
                reply = connection.send_serialized(from_email, recipients, data,
                                                   mail_options=options, progress=progress)
            except (smtplib.SMTPException, OSError) as exc:
                if exc is self.progress_error:
                    raise
                # A refusal leaves the connection in step. After a 421 or a disconnect
                # smtplib has closed the socket; a socket error or timeout (or an attachment
                # that vanished mid-DATA) leaves its state unknown: dropped, nothing more sent.
                if isinstance(exc, smtplib.SMTPException) and connection.sock is not None:
                    yield exc
                    continue
                self._lose()
                yield exc
                return
            yield _result(from_email, recipients, data.message_id, data.size, *reply)

    def _pipelined(
        self, messages: Iterable[Any], progress: ProgressCallback | None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        """One round trip each (see SMTP.send_pipelined), the same outcomes as one by one."""
        connection = self.connection
        unprepared: list[Exception] = []

        def jobs() -> Iterator[tuple[Any, str, list[str], Serialized, list[str]]]:
            for message in messages:
                if not message.recipients():
                    continue
                try:
                    from_email, recipients, data, options = _prepare(
                        message, connection, self.dkim)
                except Exception as exc:  # noqa: BLE001 - raised after the messages before it
                    # The message itself is wrong: raised once the messages before it are
                    # done; it says nothing of the connection.
                    unprepared.append(exc)
                    return
                yield (from_email, recipients, data), from_email, recipients, data, options

        results = connection.send_pipelined(jobs(), progress=progress)
        try:
            for (from_email, recipients, data), outcome in results:
                if isinstance(outcome, smtplib.SMTPException):
                    yield outcome  # the server said no to this message
                else:
                    yield _result(from_email, recipients, data.message_id, data.size, *outcome)
        except (smtplib.SMTPException, OSError) as exc:
            if exc is self.progress_error:
                raise
            self._lose()  # the rest are not sent and the connection is not reused
            yield exc
            return
        finally:
            # Stopping while a later message's DATA was open closes the connection
            # (see SMTP.send_pipelined).
            results.close()
            if getattr(connection, "sock", None) is None:
                self._lose()
        if unprepared:
            raise unprepared[0]


class SmtplibTransport(_BaseTransport):
    """An smtplib-compatible connection put in place by a caller or a test (a custom
    ``connection_class``, smtplib.SMTP patched): driven as Django drives it, with
    ``message()`` and ``sendmail()``."""

    def send_many(
        self, messages: Iterable[Any], progress: ProgressCallback | None = None
    ) -> Iterator[SendResult | smtplib.SMTPException | OSError]:
        for message in messages:
            if not message.recipients():
                continue
            from_email, recipients = envelope(message)
            options: list[str] = []
            if not (from_email.isascii() and all(r.isascii() for r in recipients)):
                try:
                    options = self._smtputf8(from_email, recipients)
                except smtplib.SMTPException as exc:
                    yield exc  # nothing of it was sent; the connection goes on
                    continue
            try:
                with utf8_headers(bool(options)):
                    email = message.message()
                    raw = email.as_bytes(linesep="\r\n")
            except NeedsSMTPUTF8Error:
                # a header address (Reply-To...) needs UTF-8 headers: with SMTPUTF8 only
                if options or not self._offers_smtputf8():
                    raise
                options = ["SMTPUTF8"]
                with utf8_headers():
                    email = message.message()
                    raw = email.as_bytes(linesep="\r\n")
            if self.dkim is not None:
                raw = self.dkim.sign(raw)
            try:
                refused = self.connection.sendmail(from_email, recipients, raw, options)
            except smtplib.SMTPException as exc:
                yield exc  # as Django: the next message is tried on the same connection
                continue
            refused = refused if isinstance(refused, dict) else {}
            yield _result(from_email, recipients, email["Message-ID"], 0, refused, 250, "")

    def _offers_smtputf8(self) -> bool:
        connection = self.connection
        connection.ehlo_or_helo_if_needed()
        return bool(connection.does_esmtp and connection.has_extn("smtputf8"))

    def _smtputf8(self, from_email: str, recipients: list[str]) -> list[str]:
        """["SMTPUTF8"] for smtplib's sendmail() if the server offers it; else the error
        naming the first non-ASCII address, before MAIL."""
        connection = self.connection
        if self._offers_smtputf8():
            return ["SMTPUTF8"]
        from mailcore.errors import SMTPUTF8RequiredError

        role, addr = next((role, a) for role, a in (
            ("sender", from_email), *(("recipient", r) for r in recipients)) if not a.isascii())
        host = getattr(connection, "_host", "") or "the server"
        sock = getattr(connection, "sock", None)
        try:
            server = "%s:%s" % sock.getpeername()[:2] if sock is not None else str(host)
        except OSError:
            server = str(host)
        return_error = SMTPUTF8RequiredError(
            f"Invalid address {addr!r} (the {role}) for the server {server}: a non-ASCII "
            "local part needs SMTPUTF8 (RFC 6531), which that server does not offer; "
            "nothing was sent", address=addr, server=server, role=role)
        raise return_error
