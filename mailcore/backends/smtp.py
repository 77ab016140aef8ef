"""SMTP email backend class."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from mailcore.backends.base import BaseEmailBackend
from mailcore.conf import settings
from mailcore.errors import InsecureAuthError, TLSFileError, check_tls_files
from mailcore.message import check_envelope_address, sanitize_address
from mailcore.smtp import (
    SMTP,
    SMTP_SSL,
    AbortHandle,
    ProgressCallback,
    SMTPAborted,
    TranscriptCallback,
    is_simple_address,
)
from mailcore.utils import DNS_NAME
from mailcore.wire import serialize

__all__ = ["EmailBackend", "InsecureAuthError", "SMTPAborted", "SendResult", "TLSFileError",
           "check_tls_files"]


# smtplib's classes as they were at import. A test that patches smtplib.SMTP (as Django's
# users do, since Django's connection_class is smtplib.SMTP) gets its stand-in used.
_STDLIB_SMTP = smtplib.SMTP
_STDLIB_SMTP_SSL = smtplib.SMTP_SSL
_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


class _Unprepared(Exception):  # noqa: N818 - a carrier, never seen outside this module
    """A message could not be prepared (its cause says why)."""


def _ours(connection: Any) -> bool:
    """True for mailcore's own SMTP client (pipelining, streaming, transcript, abort)."""
    return isinstance(connection, SMTP | SMTP_SSL)


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
    ValueError, before any command is written."""
    if type(addr) is str and is_simple_address(addr) and "=?" not in addr:
        return addr
    sanitized = _sanitize_address(addr, encoding)
    check_envelope_address(sanitized, given=addr)
    return sanitized


class EmailBackend(BaseEmailBackend):
    """A wrapper that manages the SMTP network connection.

    Beyond Django's backend (mailcore only):

    * ``transcript=callable(event, text)``: the SMTP conversation (see mailcore.smtp), the
      message content summarised in one "data" event, or given line by line as "content"
      events with ``transcript_data=True``;
    * ``progress=callable(bytes_done, bytes_total)``: called on the sending thread while each
      message's content is written (``bytes_total`` is the message's exact size), at the
      start, after every write of at most 512 KiB and at the end, always before the final dot.
      If it raises, the send stops as with :meth:`abort` (the connection is dropped, the
      message is not delivered) and the exception propagates, even with fail_silently;
    * :meth:`abort`, to stop a send from another thread.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently)
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
        if self.use_ssl and self.use_tls:
            raise ValueError(
                "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
                "one of those settings to True."
            )
        self.connection: Any = None
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
        return f"<{type(self).__module__}.EmailBackend {self.host}:{self.port} {security}{user}>"

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
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
        params: dict[str, Any] = {"local_hostname": DNS_NAME.get_fqdn()}
        if self.timeout is not None:
            params["timeout"] = self.timeout
        if self.use_ssl:
            params["context"] = self.ssl_context
        cls = self.connection_class
        if isinstance(cls, type) and issubclass(cls, SMTP | SMTP_SSL):
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
            if connection is not None and not _ours(connection):
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
                            self._discard(connection)
                    self._partial_connection = None
                    self.connection = None
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
        """Refuse to send a password in the clear, except to this machine."""
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
        raise InsecureAuthError(
            f"Refusing to send the password to {self.host}:{self.port} over an unencrypted "
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
        if self._abort.aborted:
            if not self.fail_silently:
                raise SMTPAborted()
            return None

        if self.connection:
            # Nothing to do if the connection is already open.
            return False

        # If a connection was partially opened before, close it.
        if self._partial_connection is not None:
            self._discard(self._partial_connection)
            self._partial_connection = None

        try:
            self._partial_connection = self.connection_class(
                self.host, self.port, **self._connection_params()
            )
            if self.transcript_data:
                self._partial_connection.transcript_data = True
            # TLS/SSL are mutually exclusive, so only attempt TLS over
            # non-secure connections. A failed STARTTLS raises: nothing is
            # ever sent in the clear instead.
            if not self.use_ssl and self.use_tls:
                self._partial_connection.starttls(context=self.ssl_context)
            if self.username and self.password:
                self._check_password_is_safe(self._partial_connection)
                self._partial_connection.login(self.username, self.password)
            # Don't set connection until it's fully configured.
            self.connection = self._partial_connection
            self._partial_connection = None
            return True
        except OSError:
            # As in Django, a half-open connection (STARTTLS or AUTH failed) is
            # kept only to be closed by the next open() or close(); it is never
            # used to send.
            if not self.fail_silently:
                raise
        return None

    def _discard(self, connection: Any) -> None:
        """Close a connection that is in an unknown state, quietly."""
        try:
            connection.close()
        except OSError:
            pass

    def _close_connection(self, connection: Any) -> None:
        try:
            connection.quit()
        except (ssl.SSLError, smtplib.SMTPServerDisconnected):
            # This happens when calling quit() on a TLS connection
            # sometimes, or when the connection was already disconnected
            # by the server.
            connection.close()
        except smtplib.SMTPException:
            if self.fail_silently:
                return
            raise
        except OSError:
            connection.close()

    def close(self) -> None:
        """Close the connection to the email server."""
        if self._partial_connection is not None:
            try:
                self._close_connection(self._partial_connection)
            finally:
                self._partial_connection = None
        if self.connection is not None:
            try:
                self._close_connection(self.connection)
            finally:
                self.connection = None

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send one or more EmailMessage objects and return the number of email
        messages sent."""
        if not email_messages:
            return 0
        with self._operation():
            self.last_results = []
            self._progress_error = None
            new_conn_created = self.open()
            if not self.connection or new_conn_created is None:
                # We failed silently on open().
                # Trying to send would be pointless.
                return 0
            num_sent = 0
            try:
                if self._can_pipeline():
                    num_sent = self._send_pipelined(email_messages)
                else:
                    for message in email_messages:
                        sent = self._send(message)
                        if sent:
                            num_sent += 1
            finally:
                if new_conn_created:
                    self.close()
        return num_sent

    def _can_pipeline(self) -> bool:
        """Messages go one round trip each when the server offers PIPELINING
        and _send() is this class's own (a subclass overriding it is honoured)."""
        if type(self)._send is not EmailBackend._send:
            return False
        connection = self.connection
        if not _ours(connection):
            return False
        try:
            return connection.pipelining() is True
        except (smtplib.SMTPException, OSError):
            if getattr(connection, "sock", None) is not None:
                return False  # _send() will meet the same error and report it
            # The EHLO closed the connection (a 421, a timeout): that is this send's error,
            # raised as _send() would raise it; the next send connects afresh.
            self._drop(connection)
            if self.fail_silently:
                return False
            raise

    @staticmethod
    def _envelope(email_message: Any) -> tuple[str, list[str]]:
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = _envelope_address(email_message.from_email, encoding)
        recipients = [_envelope_address(addr, encoding) for addr in email_message.recipients()]
        return from_email, recipients

    def _prepare(self, email_message: Any) -> tuple[str, list[str], Any]:
        from_email, recipients = self._envelope(email_message)
        return from_email, recipients, serialize(email_message, linesep="\r\n")

    def _record(self, from_email: str, recipients: list[str], message_id: str | None,
                size: int, reply: Any) -> None:
        refused, code, text = reply
        self.last_results.append(
            SendResult(
                message_id=message_id,
                envelope_from=from_email,
                recipients=[r for r in recipients if r not in refused],
                refused=dict(refused),
                size=size,
                code=code,
                reply=text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text),
            )
        )

    def _send_pipelined(self, email_messages: Sequence[Any]) -> int:
        """Send all messages with one round trip each (see SMTP.send_pipelined);
        the same outcomes, errors and fail_silently rules as _send()."""
        connection = self.connection

        def jobs():
            for message in email_messages:
                if not message.recipients():
                    continue
                try:
                    from_email, recipients, data = self._prepare(message)
                except Exception as exc:
                    # the message itself is wrong (an address, a missing file): as in
                    # _send(), that is raised whatever fail_silently says, once the
                    # messages before it are done; it says nothing of the connection
                    raise _Unprepared() from exc
                yield (from_email, recipients, data), from_email, recipients, data

        num_sent = 0
        refusal: smtplib.SMTPException | None = None
        results = connection.send_pipelined(jobs(), progress=self._progress_hook())
        try:
            for (from_email, recipients, data), outcome in results:
                if isinstance(outcome, smtplib.SMTPException):
                    if not self.fail_silently:
                        refusal = outcome  # the server said no to this message
                        break
                    continue
                self._record(from_email, recipients, data.message_id, data.size, outcome)
                num_sent += 1
        except _Unprepared as exc:
            assert exc.__cause__ is not None
            raise exc.__cause__ from None
        except (smtplib.SMTPException, OSError) as exc:
            # As in _send(): an error while talking to the server; the rest of
            # the messages are not sent and the connection is not reused.
            self._drop(connection)
            if not self.fail_silently or exc is self._progress_error:
                raise
        except BaseException as exc:
            if exc is self._progress_error:
                self._drop(connection)
            raise
        finally:
            # Stopping while a later message's DATA was open closes the
            # connection (see SMTP.send_pipelined).
            results.close()
            if getattr(connection, "sock", None) is None:
                self._drop(connection)
        if refusal is not None:
            raise refusal
        return num_sent

    def _send(self, email_message: Any) -> bool:
        """A helper method that does the actual sending."""
        if not email_message.recipients():
            return False
        connection = self.connection
        if connection is not None and not _ours(connection):
            return self._send_django(email_message)
        from_email, recipients, data = self._prepare(email_message)
        if connection is None:
            # An earlier message in this call lost the connection.
            if not self.fail_silently:
                raise smtplib.SMTPServerDisconnected("the connection to the server was lost")
            return False
        try:
            reply = connection.send_serialized(
                from_email, recipients, data, progress=self._progress_hook()
            )
            refused, code, text = reply.refused, reply.code, reply.text
        except smtplib.SMTPException as exc:
            # After a 421 or a disconnect smtplib has closed the socket.
            if getattr(connection, "sock", None) is None or exc is self._progress_error:
                self._drop(connection)
            if not self.fail_silently or exc is self._progress_error:
                raise
            return False
        except OSError as exc:
            # A socket error or timeout mid-conversation (or an attachment that
            # vanished mid-DATA): the connection's state is unknown, so it is
            # dropped; the next send opens a fresh one.
            self._drop(connection)
            if not self.fail_silently or exc is self._progress_error:
                raise
            return False
        except BaseException as exc:
            # The progress callback stopped the send: the message was not delivered.
            if exc is self._progress_error:
                self._drop(connection)
            raise
        self._record(from_email, recipients, data.message_id, data.size, (refused, code, text))
        return True

    def _send_django(self, email_message: Any) -> bool:
        """Django's own _send(), for a connection class that is not mailcore's (a custom
        ``connection_class``, or smtplib.SMTP patched in a test): ``message()`` and
        ``sendmail()``."""
        from_email, recipients = self._envelope(email_message)
        message = email_message.message()
        try:
            refused = self.connection.sendmail(
                from_email, recipients, message.as_bytes(linesep="\r\n")
            )
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        refused = refused if isinstance(refused, dict) else {}
        self._record(from_email, recipients, message["Message-ID"], 0, (refused, 250, ""))
        return True

    def _drop(self, connection: Any) -> None:
        if connection is self.connection:
            self._discard(connection)
            self.connection = None
