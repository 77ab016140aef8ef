"""mailcore's typed exceptions: each one says what happened, so callers branch on types,
never on the text of a message.

Every class here is a subclass of the standard library exception that smtplib (and so
Django) raises in the same situation, so code written for ``django.core.mail`` keeps
catching what it catches: ``except smtplib.SMTPException``, ``except
smtplib.SMTPServerDisconnected`` (every error after which the connection is closed is one),
``except TimeoutError`` (every timeout is one), ``except ssl.SSLCertVerificationError``.

=================================  ===============================================================
``SMTPAborted``                    ``abort()`` stopped the send (a SMTPServerDisconnected)
``InsecureAuthError``              the password was not sent over an unencrypted connection
``SMTPTimeoutError``               the server took too long; the connection was closed
  ``SMTPConnectTimeoutError``      no TCP connection (or implicit-TLS handshake) in time
  ``SMTPReplyTimeoutError``        no complete reply within the timeout (however it trickled in)
  ``SMTPWriteTimeoutError``        the server did not take what was written within the timeout
``SMTPConnectionLostError``        the server closed the connection (or it broke) mid-reply
``SMTPReplyTooLongError``          a reply over one of the client's limits; connection closed
  ``SMTPReplyLineTooLongError``    one line longer than ``max_reply_line`` bytes
  ``SMTPReplyTooManyLinesError``   more than ``max_reply_lines`` lines
  ``SMTPReplyTooLargeError``       more than ``max_reply_bytes`` bytes in all
``SMTPServiceUnavailableError``    421: the server closed the channel (``command`` says when)
``SMTPStartTLSNotSupportedError``  the server does not offer STARTTLS
``SMTPStartTLSRefusedError``       the server answered STARTTLS with an error (454, 501...)
``SMTPAuthNotSupportedError``      no AUTH, or no mechanism mailcore knows, on this connection
``SMTPOAuthTokenError``            the server refused the OAuth 2.0 access token (``status``,
                                   ``expired``: refresh it and try once more)
``SMTPUTF8RequiredError``          an address needs SMTPUTF8 and the server does not offer it
                                   (nothing was sent)
``SMTPMessageTooLargeError``       552 to MAIL: the message is too big (``size``, ``limit``)
``SMTPMessageRefusedError``        DATA, or the end of the content, refused (``command`` says which)
``CertificateHostnameError``       the certificate is trusted but for other names (``names``)
``TLSFileError``                   a CA file, client certificate or key can't be used (a ValueError)
=================================  ===============================================================

``command`` on the errors raised while a reply was awaited (timeouts, a connection lost, a
reply over the limits, a 421, a refused DATA) is the command it was for: "connect" (the TCP
connect, or an implicit-TLS handshake), "greeting" (the first reply), "EHLO", "HELO",
"STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "end of data" (the final dot), "RSET", "QUIT"...,
or "" when not known.

:func:`classify` turns any exception a send can raise (these, smtplib's, ssl's, socket's, the
OS's, a message's ``ValueError``) into a :class:`Failure`: what happened (:class:`Kind`), at
which :class:`Stage`, the server's reply, and the details the exception carries. It looks at
types and attributes only, never at the text of a message. The ``mailcore`` command maps a
Failure to an exit code and a line; mailgui to a sentence and a hint.

:func:`check_tls_files` raises :class:`TLSFileError` for a TLS file that can't be used,
before anything connects.
"""

from __future__ import annotations

import email.errors
import enum
import errno
import os
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mailcore.conf import ImproperlyConfigured

__all__ = [
    "CertificateHostnameError",
    "Failure",
    "InsecureAuthError",
    "Kind",
    "Refusal",
    "SMTPAborted",
    "SMTPAuthNotSupportedError",
    "SMTPConnectTimeoutError",
    "SMTPConnectionLostError",
    "SMTPMessageRefusedError",
    "SMTPMessageTooLargeError",
    "SMTPOAuthTokenError",
    "SMTPReplyLineTooLongError",
    "SMTPReplyTimeoutError",
    "SMTPReplyTooLargeError",
    "SMTPReplyTooLongError",
    "SMTPReplyTooManyLinesError",
    "SMTPServiceUnavailableError",
    "SMTPStartTLSNotSupportedError",
    "SMTPStartTLSRefusedError",
    "SMTPTimeoutError",
    "SMTPUTF8RequiredError",
    "SMTPWriteTimeoutError",
    "Stage",
    "TLSFileError",
    "check_tls_files",
    "classify",
]

# Extra constructor arguments are keyword arguments with defaults, so that every exception
# here survives pickling (BaseException.__reduce__ calls cls(*args), then restores __dict__).


class SMTPAborted(smtplib.SMTPServerDisconnected):
    """The send was stopped by ``abort()`` (not by the network or the server)."""

    def __init__(self, message: str = "sending was aborted") -> None:
        super().__init__(message)


class InsecureAuthError(smtplib.SMTPException):
    """Refused to send a password over an unencrypted connection."""


# -- timeouts ------------------------------------------------------------------------------


class SMTPTimeoutError(smtplib.SMTPServerDisconnected, TimeoutError):
    """The server took longer than the connection's timeout (``timeout``, in seconds); the
    connection was closed. ``command`` is the command whose reply (or whose writing) took
    too long, if known (see the module's notes)."""

    def __init__(
        self, message: str = "timed out", *, timeout: float | None = None, command: str = "",
    ) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.command = command


class SMTPConnectTimeoutError(SMTPTimeoutError):
    """No connection within the timeout: the TCP connect (a far, slow or firewalled host:
    nothing answered), or the TLS handshake of an implicit-TLS connection, took too long."""


class SMTPReplyTimeoutError(SMTPTimeoutError):
    """The server did not complete a reply within the timeout. The timeout bounds the whole
    reply, not each read: a server that sends one byte now and then is cut off all the same.
    ``received`` is how many bytes of the unfinished reply had come."""

    def __init__(
        self, message: str = "timed out waiting for the server's reply", *,
        timeout: float | None = None, received: int = 0, command: str = "",
    ) -> None:
        super().__init__(message, timeout=timeout, command=command)
        self.received = received


class SMTPWriteTimeoutError(SMTPTimeoutError):
    """The server did not take what the client wrote within the timeout (it stopped
    reading)."""


# -- replies over the client's limits ------------------------------------------------------


class SMTPReplyTooLongError(smtplib.SMTPServerDisconnected):
    """The server sent a reply over one of the client's limits (``limit``); the client
    stopped reading it and closed the connection, so memory stays bounded whatever the server
    sends. The subclasses say which limit."""

    def __init__(
        self, message: str = "the server's reply is too long", *, limit: int = 0,
        command: str = "",
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.command = command


class SMTPReplyLineTooLongError(SMTPReplyTooLongError):
    """One line of a reply is longer than ``limit`` bytes (RFC 5321 allows 512)."""


class SMTPReplyTooManyLinesError(SMTPReplyTooLongError):
    """A multi-line reply has more than ``limit`` lines (an endless ``250-`` stream)."""


class SMTPReplyTooLargeError(SMTPReplyTooLongError):
    """A multi-line reply has more than ``limit`` bytes in all."""


class SMTPConnectionLostError(smtplib.SMTPServerDisconnected):
    """The connection ended while a reply was awaited (``command``, as in the module's notes):
    the server closed it, or the network or the TLS layer broke it (then the ``__cause__``
    is the socket's or ssl's error)."""

    def __init__(self, message: str = "Connection unexpectedly closed", *,
                 command: str = "") -> None:
        super().__init__(message)
        self.command = command


# -- what the server said --------------------------------------------------------------------


class SMTPServiceUnavailableError(smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected):
    """The server answered 421 (RFC 5321: service not available, closing the transmission
    channel) and the connection is closed. ``smtp_code`` and ``smtp_error`` are the server's
    reply, ``command`` what it answered: "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT",
    "DATA", "end of data" (the final dot), or "" when not known. ``recipient`` is the
    recipient whose RCPT got it, if any. (A 421 greeting is smtplib's SMTPConnectError.)"""

    def __init__(
        self, code: int = 421, msg: bytes | str = b"", *, command: str = "",
        recipient: str | None = None,
    ) -> None:
        super().__init__(code, msg)
        self.command = command
        self.recipient = recipient


class SMTPStartTLSNotSupportedError(smtplib.SMTPNotSupportedError):
    """The server does not offer STARTTLS (nothing was sent in the clear instead)."""


class SMTPStartTLSRefusedError(smtplib.SMTPResponseException):
    """The server answered STARTTLS with an error (454 "TLS not available", 501...):
    ``smtp_code``, ``smtp_error``. Nothing was sent in the clear instead."""


class SMTPAuthNotSupportedError(smtplib.SMTPNotSupportedError):
    """No login is possible on this connection: the server offers no AUTH, or only
    mechanisms mailcore does not know (``mechanisms``, as offered). ``starttls_offered`` is
    True when the connection is not encrypted yet and the server offers STARTTLS: many
    servers offer AUTH only after it."""

    def __init__(
        self, message: str = "SMTP AUTH extension not supported by server.", *,
        mechanisms: Sequence[str] = (), starttls_offered: bool = False,
    ) -> None:
        super().__init__(message)
        self.mechanisms = tuple(mechanisms)
        self.starttls_offered = starttls_offered


class SMTPOAuthTokenError(smtplib.SMTPAuthenticationError):
    """The server refused the OAuth 2.0 access token sent with XOAUTH2 or OAUTHBEARER (RFC
    7628). ``smtp_code``/``smtp_error`` are the server's final reply; ``mechanism`` is the
    mechanism used; ``status``, ``scope`` and ``schemes`` come from the server's JSON error
    challenge ("" when it sent none): ``status`` is "invalid_token", "insufficient_scope"
    (RFC 6750) or an HTTP status such as "401" (Google, Microsoft). ``expired`` is True when
    the token itself was refused (invalid_token / 401): a caller that can get a fresh token
    should do so and try once more. The token is never part of the exception."""

    def __init__(
        self, code: int = 535, msg: bytes | str = b"", *, mechanism: str = "",
        status: str = "", scope: str = "", schemes: str = "", sentence: str = "",
    ) -> None:
        super().__init__(code, msg)
        self.mechanism = mechanism
        self.status = status
        self.scope = scope
        self.schemes = schemes
        self.sentence = sentence

    @property
    def expired(self) -> bool:
        return self.status.strip().lower() in _OAUTH_TOKEN_REFUSED or (
            not self.status and self.smtp_code == 535)

    def __str__(self) -> str:
        text = self.smtp_error.decode("utf-8", "replace") if isinstance(
            self.smtp_error, bytes) else str(self.smtp_error)
        reply = " ".join(f"{self.smtp_code} {text}".split())
        return f"{self.sentence} ({reply})" if self.sentence else reply


# The JSON error statuses (RFC 7628 section 3.2.2) that say the token itself was refused.
_OAUTH_TOKEN_REFUSED = frozenset({"invalid_token", "401"})


class SMTPUTF8RequiredError(smtplib.SMTPNotSupportedError, ValueError):
    """An envelope address has a non-ASCII local part, which only SMTPUTF8 (RFC 6531) can
    carry, and the server (``server``, "host:port") does not offer it. Raised before MAIL
    is sent: nothing of the message went out. ``address`` is the address, ``role`` "sender"
    or "recipient".

    It is an :class:`smtplib.SMTPNotSupportedError` (what smtplib raises when SMTPUTF8 is
    asked of a server without it: ``except smtplib.SMTPException`` catches it) and a
    ``ValueError``, as mailcore's ``InvalidAddressError`` for an address that can't go into
    an envelope is (and as Django's "Invalid address" is): code written for either keeps
    catching it."""

    def __init__(self, message: str = "SMTPUTF8 not supported by server", *,
                 address: str = "", server: str = "", role: str = "") -> None:
        super().__init__(message)
        self.address = address
        self.server = server
        self.role = role


class SMTPMessageTooLargeError(smtplib.SMTPDataError, smtplib.SMTPSenderRefused):
    """The server answered MAIL with 552 (RFC 1870: the message size exceeds its limit).
    ``size`` is the message's size in bytes, ``limit`` the server's announced maximum (its
    EHLO ``SIZE``; None if it announced none), ``sender`` the envelope sender.

    It is the message, not the sender, that is refused, so this is an SMTPDataError, as a
    552 after the content is; it is also the SMTPSenderRefused that smtplib (and Django)
    raise here, so code that catches that keeps catching it."""

    def __init__(
        self, code: int = 552, msg: bytes | str = b"", sender: str = "", *,
        size: int | None = None, limit: int | None = None,
    ) -> None:
        smtplib.SMTPSenderRefused.__init__(self, code, msg, sender)
        self.size = size
        self.limit = limit


class SMTPMessageRefusedError(smtplib.SMTPDataError):
    """The server refused the message: it answered DATA with an error (``command`` "DATA"),
    or the end of the content ("end of data": it read the message and refused it).
    ``smtp_code`` and ``smtp_error`` are its reply."""

    def __init__(self, code: int = 554, msg: bytes | str = b"", *, command: str = "") -> None:
        super().__init__(code, msg)
        self.command = command


class CertificateHostnameError(ssl.SSLCertVerificationError):
    """The server's certificate is trusted but not for the host name connected to:
    ``hostname`` is that name, ``names`` the names the certificate is for (its
    subjectAltName DNS names and IP addresses, else its subject's common name; empty if they
    could not be read). ``verify_code``, ``verify_message``, ``reason`` and ``library`` are
    those of ssl's own error."""

    def __init__(
        self, message: str = "certificate verify failed: Hostname mismatch", *,
        hostname: str = "", names: Sequence[str] = (),
        original: ssl.SSLCertVerificationError | None = None,
    ) -> None:
        super().__init__(1, message)
        self.hostname = hostname
        self.names = tuple(names)
        self.verify_code = getattr(original, "verify_code", 62)
        self.verify_message = getattr(original, "verify_message", None)
        self.reason = getattr(original, "reason", "CERTIFICATE_VERIFY_FAILED")
        self.library = getattr(original, "library", "SSL")

    def __reduce__(self) -> tuple:
        # args are ssl's (errno, message): rebuild from the message, then the attributes
        return (type(self), (self.strerror,), self.__dict__)


# -- the user's own TLS files ----------------------------------------------------------------


class TLSFileError(ValueError):
    """A CA file, client certificate or key that can't be used (see :func:`check_tls_files`).

    ``role`` is "ca", "cert" or "key"; ``path`` the file; ``problem`` one of "missing",
    "not a file", "unreadable", "not usable" (ssl refused it: ``reason`` says why, in ssl's
    words), "key mismatch" (the key is not the certificate's) and "key without cert".
    ``keyfile`` is the key loaded with the certificate ("cert" problems), if any.
    """

    def __init__(self, role: str, path: str, problem: str, reason: str = "", *,
                 keyfile: str = "") -> None:
        super().__init__(role, path, problem, reason)
        self.role, self.path, self.problem, self.reason = role, path, problem, reason
        self.keyfile = keyfile

    def __str__(self) -> str:
        return f"{self.role} file {self.path}: {self.problem}" + (
            f" ({self.reason})" if self.reason else "")


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def check_tls_files(cafile: str | None = None, certfile: str | None = None,
                    keyfile: str | None = None) -> None:
    """Raise :class:`TLSFileError` if a CA file, client certificate or key can't be used, so
    that a caller can name the file before anything connects (ssl itself says only "PEM lib",
    and only once the connection is made). Nothing is loaded when no file is given."""
    if not (cafile or certfile or keyfile):
        return
    for role, path in (("ca", cafile), ("cert", certfile), ("key", keyfile)):
        if not path:
            continue
        if not os.path.exists(path):
            raise TLSFileError(role, path, "missing")
        if not os.path.isfile(path):
            raise TLSFileError(role, path, "not a file")
        if not os.access(path, os.R_OK):
            raise TLSFileError(role, path, "unreadable", "permission denied")
    try:
        context = ssl.create_default_context(cafile=cafile or None)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise TLSFileError("ca", str(cafile), "not usable", _ssl_reason(exc)) from None
    if keyfile and not certfile:
        raise TLSFileError("key", keyfile, "key without cert")
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile or None)
        except (ssl.SSLError, ValueError, OSError) as exc:
            problem = ("key mismatch" if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH"
                       else "not usable")
            raise TLSFileError("cert", certfile, problem, _ssl_reason(exc),
                               keyfile=keyfile or "") from None


# -- classify(): what happened, where, and what the server said ---------------------------------


class Kind(enum.StrEnum):
    """What went wrong. The comment after each says what raises it; where a kind always comes
    from one exception type, :attr:`Failure.exception` is of that type."""

    # the message, or the caller's own files and settings
    INVALID_MESSAGE = "invalid_message"  # ValueError (BadHeaderError...), TypeError, email's
    ENCODING = "encoding"  # a UnicodeError (raised, or raised from): exception is it
    CONFIGURATION = "configuration"  # ImproperlyConfigured (MissingFilePath is one)
    TLS_FILE = "tls_file"  # TLSFileError (exception is it: role, path, problem, keyfile)
    LOCAL_FILE = "local_file"  # an OSError naming a file (an attachment): ``path``
    FILE_CHANGED = "file_changed"  # mailcore.wire.FileChangedError: ``path``
    # reaching the server
    CONNECTION_REFUSED = "connection_refused"  # ECONNREFUSED; or a greeting that is not 220
    HOST_NOT_FOUND = "host_not_found"  # socket.gaierror
    CONNECTION = "connection"  # any other network OSError (``reason``: the errno's name)
    DISCONNECTED = "disconnected"  # the server closed the connection, or it was reset
    TIMEOUT = "timeout"  # every TimeoutError (``reason``: "connect", "reply", "write" or "")
    # TLS
    TLS_VERIFY = "tls_verify"  # the certificate is not trusted (``verify_code``...)
    TLS_HOSTNAME = "tls_hostname"  # trusted, but for other names (``names``, ``hostname``)
    TLS_CLIENT_CERT = "tls_client_cert"  # the server wants a client certificate
    TLS = "tls"  # any other ssl.SSLError (``reason``: ssl's, e.g. "WRONG_VERSION_NUMBER")
    STARTTLS = "starttls"  # STARTTLS not offered (no ``code``) or refused (``code``)
    # logging in
    INSECURE_AUTH = "insecure_auth"  # InsecureAuthError: the password was not sent
    AUTH = "auth"  # SMTPAuthenticationError: the credentials were refused
    AUTH_UNAVAILABLE = "auth_unavailable"  # no AUTH or no known mechanism (``mechanisms``)
    AUTH_REQUIRED = "auth_required"  # 530 to MAIL: the server wants a login (or TLS) first
    # the transaction
    SENDER_REFUSED = "sender_refused"  # SMTPSenderRefused: ``sender``
    RECIPIENTS_REFUSED = "recipients_refused"  # SMTPRecipientsRefused (all): ``refused``
    MESSAGE_REJECTED = "message_rejected"  # SMTPDataError: DATA or the content refused
    MESSAGE_TOO_LARGE = "message_too_large"  # 552 (SMTPMessageTooLargeError: size, limit)
    # the server misbehaved or left
    SERVICE_UNAVAILABLE = "service_unavailable"  # 421: the server closed the channel
    REPLY_TOO_LONG = "reply_too_long"  # over the client's limits (``limit``, ``reason``)
    NOT_SUPPORTED = "not_supported"  # SMTPNotSupportedError (SMTPUTF8 not offered...)
    SERVER_ERROR = "server_error"  # any other error reply (SMTPHeloError...)
    PROTOCOL = "protocol"  # any other SMTPException (no reply to show)
    # the caller
    ABORTED = "aborted"  # SMTPAborted: abort() stopped the send
    UNKNOWN = "unknown"  # anything else: most likely a bug


class Stage(enum.StrEnum):
    """Where in the conversation it happened."""

    CONNECT = "connect"  # the TCP connect (and an implicit-TLS handshake)
    GREETING = "greeting"  # the server's first reply
    EHLO = "ehlo"  # EHLO or HELO
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the DATA command and the writing of the content
    AFTER_DATA = "after-data"  # the reply to the final dot
    RSET = "rset"
    QUIT = "quit"


_STAGES = {
    "connect": Stage.CONNECT, "greeting": Stage.GREETING, "EHLO": Stage.EHLO, "HELO": Stage.EHLO,
    "STARTTLS": Stage.STARTTLS, "AUTH": Stage.AUTH, "MAIL": Stage.MAIL, "RCPT": Stage.RCPT,
    "DATA": Stage.DATA, "end of data": Stage.AFTER_DATA, "RSET": Stage.RSET,
    "QUIT": Stage.QUIT,
}
# OpenSSL's verify codes for a trusted certificate issued for other names.
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
# ssl's reason when a TLS 1.3 server ends the handshake for want of a client certificate
_CLIENT_CERT_REQUIRED = "TLSV13_ALERT_CERTIFICATE_REQUIRED"


class Refusal(NamedTuple):
    """One refused recipient: the address and the server's reply to its RCPT."""

    address: str
    code: int
    text: str


@dataclass(frozen=True)
class Failure:
    """What :func:`classify` says of an exception. Fields that do not apply are left empty.

    ``kind`` and ``stage`` say what happened and where (``stage`` None: not known); ``code``
    and ``text`` are the server's reply, when there was one (``text`` decoded, its lines
    joined by newlines). The rest are the details the exception carries:

    * ``sender``: the envelope sender (SENDER_REFUSED, AUTH_REQUIRED, MESSAGE_TOO_LARGE);
    * ``refused``: the refused recipients with their replies (RECIPIENTS_REFUSED);
    * ``hostname``, ``names``: the name connected to and the names the certificate is for
      (TLS_HOSTNAME; empty when ssl raised it and they are not known);
    * ``verify_code``, ``verify_message``: ssl's (TLS_VERIFY, TLS_HOSTNAME);
    * ``reason``: one short word of what exactly: ssl's reason (TLS kinds), the errno's name
      (network kinds, "ECONNRESET"), "connect" / "reply" / "write" (TIMEOUT), "line" /
      "lines" / "bytes" (REPLY_TOO_LONG), the TLSFileError's problem (TLS_FILE), the codec
      (ENCODING), "token_expired" / "token_refused" (AUTH with an OAuth 2.0 token,
      :class:`SMTPOAuthTokenError`: refresh the token and retry once on "token_expired"),
      "smtputf8" (NOT_SUPPORTED: :class:`SMTPUTF8RequiredError`);
    * ``address``: the address that needs SMTPUTF8 (NOT_SUPPORTED, "smtputf8"; ``hostname``
      is then the server, "host:port");
    * ``size``, ``limit``: the message's size and the server's SIZE (MESSAGE_TOO_LARGE);
      ``limit`` is also the client's limit that a reply went over (REPLY_TOO_LONG);
    * ``timeout``, ``received``: the timeout in seconds and the bytes of the unfinished
      reply that had come (TIMEOUT);
    * ``mechanisms``, ``starttls_offered``: what the server offers (AUTH_UNAVAILABLE); the
      OAuth mechanism used (AUTH, "token_*");
    * ``path``: the file (LOCAL_FILE, FILE_CHANGED, TLS_FILE);
    * ``exception``: the exception that decided the kind (the one given, or the one it was
      raised from), for its own words (``str()``) in a detail line.
    """

    kind: Kind
    stage: Stage | None = None
    code: int | None = None
    text: str = ""
    sender: str = ""
    refused: tuple[Refusal, ...] = ()
    hostname: str = ""
    names: tuple[str, ...] = ()
    verify_code: int | None = None
    verify_message: str = ""
    reason: str = ""
    size: int | None = None
    limit: int | None = None
    timeout: float | None = None
    received: int = 0
    mechanisms: tuple[str, ...] = ()
    starttls_offered: bool = False
    path: str = ""
    address: str = ""
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def reply(self) -> str:
        """The server's reply on one line ("550 5.1.1 No such user"), "" if there was none."""
        if self.code is None:
            return ""
        return " ".join(f"{self.code} {self.text}".split())


def _text(message: bytes | str | None) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return (message or "").strip()


def _stage(exc: BaseException) -> Stage | None:
    return _STAGES.get(getattr(exc, "command", "") or "")


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno, "") if isinstance(exc.errno, int) else ""


def _explicit_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the exception it was explicitly raised from (``raise ... from``), if one
    of them is a ``kind``. (An implicit ``__context__`` may be unrelated: not followed.)"""
    seen: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and item not in seen:
        if isinstance(item, kind):
            return item
        seen.append(item)
        item = item.__cause__
    return None


def _tls(exc: ssl.SSLError, stage: Stage | None, outer: BaseException) -> Failure:
    reason = str(getattr(exc, "reason", None) or "")
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        message = str(getattr(exc, "verify_message", "") or "")
        if isinstance(exc, CertificateHostnameError) or code in _NAME_MISMATCH:
            return Failure(Kind.TLS_HOSTNAME, stage, hostname=getattr(exc, "hostname", ""),
                           names=tuple(getattr(exc, "names", ())), verify_code=code,
                           verify_message=message, reason=reason, exception=exc)
        return Failure(Kind.TLS_VERIFY, stage, verify_code=code, verify_message=message,
                       reason=reason, exception=exc)
    kind = Kind.TLS_CLIENT_CERT if reason == _CLIENT_CERT_REQUIRED else Kind.TLS
    return Failure(kind, stage, reason=reason, exception=outer)


def _reply(kind: Kind, exc: smtplib.SMTPResponseException, stage: Stage | None,
           **details: object) -> Failure:
    return Failure(kind, stage, exc.smtp_code, _text(exc.smtp_error), exception=exc,
                   **details)  # type: ignore[arg-type]


def classify(exc: BaseException) -> Failure:
    """What ``exc`` says happened, where, and the server's reply: see :class:`Failure`.

    Never raises. Only types and attributes decide (``isinstance``, ``smtp_code``,
    ``verify_code``, ssl's ``reason``, ``errno``), never the text of a message; smtplib's,
    ssl's and socket's own exceptions are understood as well as mailcore's."""
    # the caller stopped it: whatever the socket said then
    if isinstance(exc, SMTPAborted):
        return Failure(Kind.ABORTED, _stage(exc), exception=exc)
    unicode_error = _explicit_cause(exc, UnicodeError)
    if unicode_error is not None:
        # its text quotes the string that failed, which may be a password: never shown
        return Failure(Kind.ENCODING, reason=str(getattr(unicode_error, "encoding", "") or ""),
                       exception=unicode_error)
    if isinstance(exc, TLSFileError):
        return Failure(Kind.TLS_FILE, path=exc.path, reason=exc.problem, exception=exc)
    if isinstance(exc, ssl.SSLError):
        return _tls(exc, None, exc)
    if isinstance(exc, smtplib.SMTPException):
        return _classify_smtp(exc)
    return _classify_other(exc)


def _classify_smtp(exc: smtplib.SMTPException) -> Failure:
    stage = _stage(exc)
    if isinstance(exc, SMTPServiceUnavailableError):
        return _reply(Kind.SERVICE_UNAVAILABLE, exc, stage)
    if isinstance(exc, SMTPTimeoutError):
        reason = ("connect" if isinstance(exc, SMTPConnectTimeoutError) else
                  "reply" if isinstance(exc, SMTPReplyTimeoutError) else
                  "write" if isinstance(exc, SMTPWriteTimeoutError) else "")
        return Failure(Kind.TIMEOUT, stage, reason=reason, timeout=exc.timeout,
                       received=getattr(exc, "received", 0), exception=exc)
    if isinstance(exc, SMTPReplyTooLongError):
        which = ("line" if isinstance(exc, SMTPReplyLineTooLongError) else
                 "lines" if isinstance(exc, SMTPReplyTooManyLinesError) else
                 "bytes" if isinstance(exc, SMTPReplyTooLargeError) else "")
        return Failure(Kind.REPLY_TOO_LONG, stage, reason=which, limit=exc.limit or None,
                       exception=exc)
    if isinstance(exc, SMTPStartTLSNotSupportedError):
        return Failure(Kind.STARTTLS, Stage.STARTTLS, exception=exc)
    if isinstance(exc, SMTPStartTLSRefusedError):
        return _reply(Kind.STARTTLS, exc, Stage.STARTTLS)
    if isinstance(exc, SMTPAuthNotSupportedError):
        return Failure(Kind.AUTH_UNAVAILABLE, Stage.AUTH, mechanisms=exc.mechanisms,
                       starttls_offered=exc.starttls_offered, exception=exc)
    if isinstance(exc, InsecureAuthError):
        return Failure(Kind.INSECURE_AUTH, Stage.AUTH, exception=exc)
    if isinstance(exc, SMTPOAuthTokenError):
        return _reply(Kind.AUTH, exc, Stage.AUTH,
                      reason="token_expired" if exc.expired else "token_refused",
                      mechanisms=(exc.mechanism,) if exc.mechanism else ())
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _reply(Kind.AUTH, exc, Stage.AUTH)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = tuple(Refusal(str(address), code, _text(text))
                        for address, (code, text) in (exc.recipients or {}).items())
        return Failure(Kind.RECIPIENTS_REFUSED, Stage.RCPT, refused=refused, exception=exc)
    if isinstance(exc, SMTPMessageTooLargeError):
        return _reply(Kind.MESSAGE_TOO_LARGE, exc, Stage.MAIL, sender=exc.sender,
                      size=exc.size, limit=exc.limit)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        sender = exc.sender.decode("utf-8", "replace") if isinstance(exc.sender, bytes) else (
            str(exc.sender))
        kind = Kind.AUTH_REQUIRED if exc.smtp_code == 530 else Kind.SENDER_REFUSED
        return _reply(kind, exc, Stage.MAIL, sender=sender)
    if isinstance(exc, smtplib.SMTPDataError):
        # 552 after the content: "exceeded storage allocation" (RFC 5321), a size limit
        kind = Kind.MESSAGE_TOO_LARGE if exc.smtp_code == 552 else Kind.MESSAGE_REJECTED
        return _reply(kind, exc, stage)
    if isinstance(exc, smtplib.SMTPConnectError):  # a greeting that is not 220
        kind = Kind.SERVICE_UNAVAILABLE if exc.smtp_code == 421 else Kind.CONNECTION_REFUSED
        return _reply(kind, exc, Stage.GREETING)
    if isinstance(exc, smtplib.SMTPHeloError):
        return _reply(Kind.SERVER_ERROR, exc, Stage.EHLO)
    if isinstance(exc, SMTPUTF8RequiredError):
        return Failure(Kind.NOT_SUPPORTED, Stage.MAIL, reason="smtputf8", address=exc.address,
                       hostname=exc.server, exception=exc)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Failure(Kind.NOT_SUPPORTED, stage, exception=exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(Kind.SERVER_ERROR, exc, stage)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # what ended it: mailcore raises from it, smtplib raises in its except clause
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if isinstance(cause, ssl.SSLError):  # the TLS layer ended it (an alert)
            return _tls(cause, stage, exc)
        if isinstance(cause, TimeoutError):  # smtplib's own reply timeout
            return Failure(Kind.TIMEOUT, stage, exception=exc)
        reason = _errno_name(cause) if isinstance(cause, OSError) else ""
        return Failure(Kind.DISCONNECTED, stage, reason=reason, exception=exc)
    return Failure(Kind.PROTOCOL, stage, exception=exc)


def _classify_other(exc: BaseException) -> Failure:
    from mailcore.wire import FileChangedError  # wire imports the message module: not at start

    if isinstance(exc, FileChangedError):
        return Failure(Kind.FILE_CHANGED, path=str(exc.filename or ""), exception=exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return Failure(Kind.TIMEOUT, exception=exc)
    if isinstance(exc, ConnectionRefusedError):
        return Failure(Kind.CONNECTION_REFUSED, Stage.CONNECT, reason=_errno_name(exc),
                       exception=exc)
    if isinstance(exc, socket.gaierror):
        return Failure(Kind.HOST_NOT_FOUND, Stage.CONNECT, exception=exc)
    if isinstance(exc, ConnectionError):  # reset, aborted, broken pipe
        return Failure(Kind.DISCONNECTED, reason=_errno_name(exc), exception=exc)
    if isinstance(exc, OSError):
        if exc.filename:
            return Failure(Kind.LOCAL_FILE, path=str(exc.filename), reason=_errno_name(exc),
                           exception=exc)
        return Failure(Kind.CONNECTION, reason=_errno_name(exc), exception=exc)
    if isinstance(exc, ImproperlyConfigured):  # before TypeError: MissingFilePath is one
        return Failure(Kind.CONFIGURATION, exception=exc)
    if isinstance(exc, ValueError | TypeError | email.errors.MessageError):
        return Failure(Kind.INVALID_MESSAGE, exception=exc)
    if type(exc) is LookupError:  # a codec that does not exist ("unknown encoding")
        return Failure(Kind.INVALID_MESSAGE, exception=exc)
    return Failure(Kind.UNKNOWN, exception=exc)
