"""Turn what mailcore raises into one sentence a person understands, plus the server's reply."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass

import mailcore
from mailcore.backends.smtp import InsecureAuthError
from mailcore.smtp import SMTPAborted
from mailcore.wire import FileChangedError
from mailgui.model.profiles import Profile, TLSFileError
from mailgui.model.secrets import KeyringFailed

__all__ = ["Cancelled", "ErrorInfo", "describe_error", "reply_text"]


class Cancelled(OSError):
    """The person cancelled the send (raised inside the worker to stop it)."""


@dataclass(frozen=True)
class ErrorInfo:
    kind: str  # auth, tls, refused-recipients, refused-sender, refused-data, unreachable, ...
    sentence: str
    reply: str = ""  # the server's answer, verbatim, when there is one


def reply_text(code: int | None, message: bytes | str | None) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    message = (message or "").strip()
    if code is None or code == -1:
        return message
    return f"{code} {message}".strip()


def _where(profile: Profile | None) -> str:
    if profile is None or not profile.is_smtp:
        return "the server"
    return f"{profile.host or 'localhost'}:{profile.port}"


def _timeout_text(profile: Profile | None) -> str:
    text = ""
    if profile is not None and profile.timeout:
        text = f" within {profile.timeout:g} seconds"
    if profile is not None and profile.port == 465 and profile.security != "tls":
        # the server waits for a TLS handshake, the client for a greeting: both wait
        text += ". Port 465 speaks implicit TLS: choose \u201cImplicit TLS\u201d in the profile"
    return text


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


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


def _encoding_error(exc: UnicodeError) -> ErrorInfo:
    encoding = getattr(exc, "encoding", "") or "the expected encoding"
    if isinstance(exc, UnicodeDecodeError):
        sentence = f"Some bytes could not be read as {encoding} text."
    else:
        sentence = (f"Some text could not be written as {encoding}: it holds a character that "
                    f"{encoding} can't carry. If it is in the user name or the password, "
                    "the server or the login method may not accept it; otherwise check the "
                    "addresses and headers.")
    return ErrorInfo("encoding", sentence, f"{type(exc).__name__} ({encoding})")


def describe_error(exc: BaseException, profile: Profile | None = None) -> ErrorInfo:
    """What went wrong, in one sentence, for every error mailcore and the network can raise."""
    where = _where(profile)
    chain = _chain(exc)
    if isinstance(exc, Cancelled | SMTPAborted):
        return ErrorInfo("cancelled", "Sending was cancelled. Your draft is unchanged.")
    unicode_error = _explicit_cause(exc, UnicodeError)
    if unicode_error is not None:
        # Never echo its text: it quotes the string that failed, which may be a password.
        return _encoding_error(unicode_error)
    if isinstance(exc, TLSFileError):
        return ErrorInfo("tls-files", str(exc), "")
    if any("CERTIFICATE_REQUIRED" in str(item) for item in chain):
        return ErrorInfo(
            "tls-client-cert",
            f"The server at {where} asks for a client certificate: set one (and its key) in "
            "the profile.", str(exc))
    if isinstance(exc, KeyringFailed):
        return ErrorInfo("keyring", str(exc), str(exc.__cause__ or ""))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        user = f" for {profile.username}" if profile and profile.username else ""
        return ErrorInfo(
            "auth",
            f"The server at {where} refused the user name or password{user}. "
            "Check them in the profile.",
            reply_text(exc.smtp_code, exc.smtp_error),
        )
    if isinstance(exc, InsecureAuthError):
        return ErrorInfo(
            "insecure-auth",
            f"The password was not sent: the connection to {where} is not encrypted. "
            "Choose STARTTLS or implicit TLS in the profile.",
            str(exc),
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients or {}
        names = ", ".join(refused) or "all recipients"
        replies = "\n".join(f"{addr}: {reply_text(*r)}" for addr, r in refused.items())
        return ErrorInfo(
            "refused-recipients",
            f"The server refused every recipient ({names}); nothing was sent.",
            replies,
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        sender = exc.sender.decode() if isinstance(exc.sender, bytes) else exc.sender
        return ErrorInfo(
            "refused-sender",
            f"The server refused the sender address {sender}.",
            reply_text(exc.smtp_code, exc.smtp_error),
        )
    if isinstance(exc, smtplib.SMTPDataError):
        code = exc.smtp_code
        what = "is too big for the server" if code == 552 else "was refused by the server"
        if 400 <= code < 500:
            what = "was not accepted for now (a temporary failure; try again later)"
        return ErrorInfo("refused-data", f"The message {what}.",
                         reply_text(exc.smtp_code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPConnectError):
        return ErrorInfo(
            "unreachable",
            f"The server at {where} did not accept the connection.",
            reply_text(exc.smtp_code, exc.smtp_error),
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        text = str(exc)
        if "STARTTLS" in text.upper():
            sentence = (f"The server at {where} does not offer STARTTLS. Choose another "
                        "security setting (implicit TLS, or none for a test server).")
        elif "AUTH" in text.upper():
            sentence = (f"The server at {where} does not offer login (AUTH) on this "
                        "connection. Remove the user name, or use STARTTLS/TLS first.")
        else:
            sentence = f"The server at {where} does not support what was asked: {text}."
        return ErrorInfo("unsupported", sentence, text)
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            why = item.verify_message or item.reason or str(item)
            return ErrorInfo(
                "tls-untrusted",
                f"The certificate of {where} is not trusted ({why}). If it is a private "
                "server, set its CA file in the profile.",
                str(item),
            )
    for item in chain:
        if isinstance(item, ssl.SSLError):
            text = str(item)
            hint = ""
            if "WRONG_VERSION_NUMBER" in text.upper() or "wrong version" in text.lower():
                hint = (" The port probably does not speak TLS: check the security setting "
                        "(STARTTLS uses 587, implicit TLS 465).")
            return ErrorInfo("tls", f"The TLS connection to {where} failed.{hint}", text)
    if isinstance(exc, smtplib.SMTPResponseException):
        return ErrorInfo("smtp", f"The server at {where} answered with an error.",
                         reply_text(exc.smtp_code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if any(isinstance(i, TimeoutError | socket.timeout) for i in chain[1:]) or (
            "timed out" in str(exc)
        ):
            return ErrorInfo("timeout",
                             f"The server at {where} did not answer{_timeout_text(profile)}.",
                             str(exc))
        hint = ""
        if profile is not None and profile.security in ("tls", "starttls") and (
                not profile.client_cert):
            # TLS 1.3 servers that require a client certificate close the connection after
            # the handshake; the client sees only the end of the stream
            hint = (" If it closed right after the TLS handshake, the server may want a "
                    "client certificate: set one (and its key) in the profile.")
        return ErrorInfo("disconnected",
                         f"The server at {where} closed the connection unexpectedly.{hint}",
                         str(exc))
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPException):
        return ErrorInfo("smtp", f"The conversation with {where} failed: {exc}.", str(exc))
    if isinstance(exc, ConnectionRefusedError):
        return ErrorInfo(
            "unreachable",
            f"Nothing is listening at {where} (connection refused). Is the server running, "
            "and are host and port right?",
            str(exc),
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return ErrorInfo("timeout",
                         f"The server at {where} did not answer{_timeout_text(profile)}.",
                         str(exc))
    if isinstance(exc, socket.gaierror):
        host = profile.host if profile else "the server"
        return ErrorInfo("unreachable", f'The host name "{host}" could not be found.', str(exc))
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return ErrorInfo("disconnected",
                         f"The connection to {where} was cut while sending.", str(exc))
    if isinstance(exc, mailcore.BadHeaderError):
        return ErrorInfo("header", f"A header is not valid: {exc}", str(exc))
    if isinstance(exc, mailcore.ImproperlyConfigured):
        return ErrorInfo("config", f"The profile is not set up right: {exc}", str(exc))
    if isinstance(exc, FileChangedError):
        return ErrorInfo("file", str(exc), str(exc))
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        name = exc.filename or "a file"
        why = {
            FileNotFoundError: "it does not exist (moved or deleted?)",
            PermissionError: "permission denied",
            IsADirectoryError: "it is a folder",
        }[type(exc)]
        return ErrorInfo("file", f"The file {name} can't be read: {why}.", str(exc))
    if isinstance(exc, ValueError):
        return ErrorInfo("address", f"{exc}", str(exc))
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc) or type(exc).__name__
        return ErrorInfo("network", f"Could not talk to {where}: {why}.", str(exc))
    return ErrorInfo("bug", f"Unexpected error: {type(exc).__name__}: {exc}", repr(exc))
