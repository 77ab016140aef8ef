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
  ``SMTPReplyTimeoutError``        no complete reply within the timeout (however it trickled in)
  ``SMTPWriteTimeoutError``        the server did not take what was written within the timeout
``SMTPReplyTooLongError``          a reply over one of the client's limits; connection closed
  ``SMTPReplyLineTooLongError``    one line longer than ``max_reply_line`` bytes
  ``SMTPReplyTooManyLinesError``   more than ``max_reply_lines`` lines
  ``SMTPReplyTooLargeError``       more than ``max_reply_bytes`` bytes in all
``SMTPServiceUnavailableError``    421: the server closed the channel (``command`` says when)
``SMTPStartTLSNotSupportedError``  the server does not offer STARTTLS
``SMTPStartTLSRefusedError``       the server answered STARTTLS with an error (454, 501...)
``SMTPAuthNotSupportedError``      no AUTH, or no mechanism mailcore knows, on this connection
``SMTPMessageTooLargeError``       552 to MAIL: the message is too big (``size``, ``limit``)
``CertificateHostnameError``       the certificate is trusted but for other names (``names``)
=================================  ===============================================================
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence

__all__ = [
    "CertificateHostnameError",
    "InsecureAuthError",
    "SMTPAborted",
    "SMTPAuthNotSupportedError",
    "SMTPMessageTooLargeError",
    "SMTPReplyLineTooLongError",
    "SMTPReplyTimeoutError",
    "SMTPReplyTooLargeError",
    "SMTPReplyTooLongError",
    "SMTPReplyTooManyLinesError",
    "SMTPServiceUnavailableError",
    "SMTPStartTLSNotSupportedError",
    "SMTPStartTLSRefusedError",
    "SMTPTimeoutError",
    "SMTPWriteTimeoutError",
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
    connection was closed."""

    def __init__(self, message: str = "timed out", *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class SMTPReplyTimeoutError(SMTPTimeoutError):
    """The server did not complete a reply within the timeout. The timeout bounds the whole
    reply, not each read: a server that sends one byte now and then is cut off all the same.
    ``received`` is how many bytes of the unfinished reply had come."""

    def __init__(
        self, message: str = "timed out waiting for the server's reply", *,
        timeout: float | None = None, received: int = 0,
    ) -> None:
        super().__init__(message, timeout=timeout)
        self.received = received


class SMTPWriteTimeoutError(SMTPTimeoutError):
    """The server did not take what the client wrote within the timeout (it stopped
    reading)."""


# -- replies over the client's limits ------------------------------------------------------


class SMTPReplyTooLongError(smtplib.SMTPServerDisconnected):
    """The server sent a reply over one of the client's limits (``limit``); the client
    stopped reading it and closed the connection, so memory stays bounded whatever the server
    sends. The subclasses say which limit."""

    def __init__(self, message: str = "the server's reply is too long", *, limit: int = 0) -> None:
        super().__init__(message)
        self.limit = limit


class SMTPReplyLineTooLongError(SMTPReplyTooLongError):
    """One line of a reply is longer than ``limit`` bytes (RFC 5321 allows 512)."""


class SMTPReplyTooManyLinesError(SMTPReplyTooLongError):
    """A multi-line reply has more than ``limit`` lines (an endless ``250-`` stream)."""


class SMTPReplyTooLargeError(SMTPReplyTooLongError):
    """A multi-line reply has more than ``limit`` bytes in all."""


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


class SMTPMessageTooLargeError(smtplib.SMTPDataError):
    """The server answered MAIL with 552 (RFC 1870: the message size exceeds its limit).
    ``size`` is the message's size in bytes, ``limit`` the server's announced maximum (its
    EHLO ``SIZE``; None if it announced none), ``sender`` the envelope sender.

    smtplib (and Django) raise SMTPSenderRefused here; it is the message, not the sender,
    that is refused, so this is an SMTPDataError, as a 552 after the content is."""

    def __init__(
        self, code: int = 552, msg: bytes | str = b"", *, sender: str = "",
        size: int | None = None, limit: int | None = None,
    ) -> None:
        super().__init__(code, msg)
        self.sender = sender
        self.size = size
        self.limit = limit


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
