"""Turn what a send raised into what a person reads: a sentence saying what happened, an
optional hint saying what to do, and the server's reply.

``mailcore.errors.classify`` says what happened, where, and what the server answered (by the
exception's type and attributes, never its text); this module only words it, kind by kind
(``_SENTENCES``). Three failures are mailgui's own and worded before classify: the person
cancelled (``Cancelled``), the keyring failed (``KeyringFailed``), and an OAuth2 sign-in or
token refresh failed (``oauth.OAuthError``, whose text is already the sentence).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailcore import BadHeaderError
from mailcore.errors import Failure, Kind, Stage, TLSFileError, classify
from mailgui.model.oauth import OAuthError
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringFailed

__all__ = ["Cancelled", "ErrorInfo", "describe_error", "describe_failure", "refused_login",
           "reply_text"]


class Cancelled(OSError):
    """The person cancelled the send (raised inside the worker to stop it)."""


@dataclass(frozen=True)
class ErrorInfo:
    """What the window shows of a failure.

    ``kind`` is the label the controllers and the log branch on ("auth", "cancelled",
    "tls-untrusted", "timeout"...); ``what`` says what happened, ``hint`` (maybe "") what to
    do about it; ``sentence`` is both, for a one-line place (a status bar, a result line).
    ``reply`` is the server's answer, verbatim, when there is one (else a detail line).
    ``failure`` is what ``mailcore.errors.classify`` said (None for mailgui's own failures).
    """

    kind: str
    what: str
    reply: str = ""
    hint: str = ""
    failure: Failure | None = None

    @property
    def sentence(self) -> str:
        return f"{self.what} {self.hint}" if self.hint else self.what

    def with_hint(self, hint: str) -> ErrorInfo:
        """The same failure with another hint (the sentence of what happened unchanged)."""
        return replace(self, hint=hint)


def reply_text(code: int | None, message: bytes | str | None) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    message = (message or "").strip()
    if code is None or code == -1:
        return message
    return f"{code} {message}".strip()


def _where(profile: Profile | None) -> str:
    if profile is not None and profile.kind == "queue":  # its URL never holds the password
        return f"the queue\u2019s broker at {profile.queue_broker_url or 'the default address'}"
    if profile is None or not profile.is_smtp:
        return "the server"
    return f"{profile.host or 'localhost'}:{profile.port}"


def _reply(f: Failure) -> str:
    return reply_text(f.code, f.text) if f.code is not None else ""


def _detail(f: Failure) -> str:
    """The exception's own words, for the details line (never to decide anything)."""
    return str(f.exception) if f.exception is not None else ""


def _own_words(f: Failure) -> str:
    """``_detail`` to end a sentence with (without its own final dot)."""
    return _detail(f).rstrip(".") or type(f.exception).__name__


# -- the sentences, one function per kind -------------------------------------------------------

Sentence = Callable[[Failure, Profile | None, str], ErrorInfo]

_PORT_465 = "Port 465 speaks implicit TLS: choose \u201cImplicit TLS\u201d in the profile."
_SET_CLIENT_CERT = "Set one (and its key) in the profile."
_OTHER_SECURITY = ("Choose another security setting (implicit TLS, or none for a test "
                   "server).")


def refused_login(profile: Profile | None, reply: str = "",
                  failure: Failure | None = None) -> ErrorInfo:
    """The server refused the user name or password (``passwords.asked_again`` gives it the
    hint for a password that no keyring holds)."""
    user = f" for {profile.username}" if profile and profile.username else ""
    return ErrorInfo("auth", f"The server at {_where(profile)} refused the user name or "
                     f"password{user}.", reply, "Check them in the profile.", failure)


SIGN_IN_AGAIN = "Open Profiles and press \u201cSign in\u2026\u201d for this profile."


def _auth(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if f.reason in ("token_expired", "token_refused"):
        user = f" for {profile.username}" if profile and profile.username else ""
        said = getattr(f.exception, "sentence", "") or ""
        what = f"The server at {where} refused the OAuth2 access token{user}."
        if f.reason == "token_expired":
            what = (f"The server at {where} refused the OAuth2 access token{user}, also a "
                    "freshly refreshed one.")
        if said:
            what += f" {said.rstrip('.')}."
        return ErrorInfo("oauth-token", what, _reply(f),
                         "Check the user name (the mailbox the sign-in is for) and the scopes "
                         "in the profile, then sign in again.", f)
    return refused_login(profile, _reply(f), f)


def _encoding(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    # Never echo its text: it quotes the string that failed, which may be a password.
    encoding = f.reason or "the expected encoding"
    name = type(f.exception).__name__
    if isinstance(f.exception, UnicodeDecodeError):
        return ErrorInfo("encoding", f"Some bytes could not be read as {encoding} text.",
                         f"{name} ({encoding})", failure=f)
    return ErrorInfo(
        "encoding",
        f"Some text could not be written as {encoding}: it holds a character that {encoding} "
        "can't carry.",
        f"{name} ({encoding})",
        "If it is in the user name or the password, the server or the login method may not "
        "accept it; otherwise check the addresses and headers.", f)


_TLS_FILE_WHAT = {"ca": "CA file", "cert": "client certificate", "key": "client key"}


def _tls_file(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    exc = f.exception
    assert isinstance(exc, TLSFileError)
    what = _TLS_FILE_WHAT[exc.role]
    hint = ""
    if exc.problem == "missing":
        text = f"The {what} {exc.path} set in the profile does not exist."
    elif exc.problem == "not a file":
        text = f"The {what} {exc.path} set in the profile is not a file."
    elif exc.problem == "unreadable":
        text = f"The {what} {exc.path} set in the profile can't be read ({exc.reason})."
    elif exc.problem == "key without cert":
        text = "The profile has a client key but no client certificate."
    elif exc.role == "ca":
        text = (f"The CA file {exc.path} set in the profile holds no usable PEM certificate "
                f"({exc.reason}).")
    else:
        key = f" with the key {exc.keyfile}" if exc.keyfile else ""
        text = f"The client certificate {exc.path}{key} can't be used ({exc.reason})."
        if exc.problem == "key mismatch":
            hint = "The key is not the one of this certificate."
    return ErrorInfo("tls-files", text, "", hint, f)


def _client_cert(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("tls-client-cert", f"The server at {where} asks for a client certificate.",
                     _detail(f), _SET_CLIENT_CERT, f)


def _insecure_auth(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("insecure-auth", f"The password was not sent: the connection to {where} "
                     "is not encrypted.", _detail(f),
                     "Choose STARTTLS or implicit TLS in the profile.", f)


def _recipients(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    names = ", ".join(r.address for r in f.refused) or "all recipients"
    replies = "\n".join(f"{r.address}: {reply_text(r.code, r.text)}" for r in f.refused)
    return ErrorInfo("refused-recipients",
                     f"The server refused every recipient ({names}); nothing was sent.",
                     replies, failure=f)


def _sender(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("refused-sender", f"The server refused the sender address {f.sender}.",
                     _reply(f), failure=f)


def _auth_required(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("auth-required", f"The server at {where} takes mail only after a login.",
                     _reply(f), "Set a user name (and password) in the profile, and STARTTLS "
                     "or implicit TLS if the server wants it.", f)


def _bytes(n: int) -> str:
    return f"{n:,} bytes"


def _too_large(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if f.size is not None and f.limit:
        why = f" ({_bytes(f.size)}; it takes at most {_bytes(f.limit)})"
    elif f.size is not None:
        why = f" ({_bytes(f.size)})"
    else:
        why = ""
    return ErrorInfo("refused-data", f"The message is too big for the server{why}.", _reply(f),
                     "Attach smaller files, or send them another way.", f)


def _rejected(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if f.code is not None and 400 <= f.code < 500:
        return ErrorInfo("refused-data", "The message was not accepted for now (a temporary "
                         "failure).", _reply(f), "Try again later.", f)
    return ErrorInfo("refused-data", "The message was refused by the server.", _reply(f),
                     failure=f)


_STAGE_WORDS = {
    Stage.GREETING: "as it greeted", Stage.EHLO: "at EHLO", Stage.STARTTLS: "at STARTTLS",
    Stage.AUTH: "at the login", Stage.MAIL: "at MAIL (the sender)",
    Stage.RCPT: "at RCPT (a recipient)", Stage.DATA: "at DATA",
    Stage.AFTER_DATA: "after the message", Stage.RSET: "at RSET", Stage.QUIT: "at QUIT",
}


_WAITING = {
    Stage.GREETING: "its greeting", Stage.EHLO: "its answer to EHLO",
    Stage.STARTTLS: "its answer to STARTTLS", Stage.AUTH: "its answer to the login",
    Stage.MAIL: "its answer to the sender", Stage.RCPT: "its answer to a recipient",
    Stage.DATA: "its answer to DATA", Stage.AFTER_DATA: "its answer to the message",
}


def _when(f: Failure) -> str:
    word = _STAGE_WORDS.get(f.stage) if f.stage else None
    return f" {word}" if word else ""


def _unavailable(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    said = f": \u201c{' '.join(f.text.split())}\u201d" if f.text else ""
    return ErrorInfo("unavailable", f"The server at {where} is not available now: it closed "
                     f"the connection{_when(f)}{said}.", _reply(f),
                     "Try again later.", f)


def _timeout(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    seconds = f.timeout if f.timeout is not None else (profile.timeout if profile else None)
    within = f" within {seconds:g} seconds" if seconds else ""
    hint = ""
    if (profile is not None and profile.port == 465 and profile.security != "tls"
            and f.stage in (None, Stage.CONNECT, Stage.GREETING)):
        # the server waits for a TLS handshake, the client for a greeting: both wait
        hint = _PORT_465
    waiting = _WAITING.get(f.stage) if f.stage else None
    waiting = f" (waiting for {waiting})" if waiting else ""
    if f.reason == "connect":
        what = f"Could not connect to {where}{within}: nothing answered."
        hint = hint or "Check the host and port, and that no firewall is in the way."
    elif f.reason == "write":
        what = f"The server at {where} stopped taking what was sent{within}."
    elif f.received:
        what = f"The server at {where} did not finish its answer{within}{waiting}."
    else:
        what = f"The server at {where} did not answer{within}{waiting}."
    return ErrorInfo("timeout", what, _detail(f), hint, f)


def _reply_too_long(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    over = {"line": f" (a line over {f.limit} bytes)", "lines": f" (over {f.limit} lines)",
            "bytes": f" (over {f.limit} bytes)"}.get(f.reason, "")
    return ErrorInfo("disconnected", f"The server at {where} sent an answer too long to "
                     f"read{over}; the connection was closed.", _detail(f), failure=f)


def _starttls(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if f.code is None:
        return ErrorInfo("unsupported", f"The server at {where} does not offer STARTTLS.",
                         _detail(f), _OTHER_SECURITY, f)
    return ErrorInfo("tls", f"The server at {where} refused STARTTLS.", _reply(f),
                     _OTHER_SECURITY, f)


def _auth_unavailable(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    what = f"The server at {where} does not offer login (AUTH) on this connection."
    if f.starttls_offered:
        hint = "It offers STARTTLS: choose STARTTLS in the profile, login comes after it."
    elif f.mechanisms:
        what = (f"The server at {where} offers only login methods mailgui does not know "
                f"({' '.join(f.mechanisms)}).")
        hint = "mailgui knows CRAM-MD5, PLAIN and LOGIN."
    else:
        hint = "Remove the user name, or use STARTTLS/TLS first."
    return ErrorInfo("unsupported", what, _detail(f), hint, f)


def _not_supported(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("unsupported", f"The server at {where} does not support what was asked: "
                     f"{_own_words(f)}.", _detail(f), failure=f)


def _tls_hostname(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    names = ", ".join(f.names)
    if names:
        host = f", not {f.hostname}" if f.hostname else ""
        what = f"The certificate of {where} is for {names}{host}."
    else:
        what = f"The certificate of {where} is for another host name."
    return ErrorInfo("tls-hostname", what, _detail(f),
                     "Set the host in the profile to a name the certificate is for.", f)


def _tls_verify(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    why = f.verify_message or f.reason or _detail(f)
    return ErrorInfo("tls-untrusted", f"The certificate of {where} is not trusted ({why}).",
                     _detail(f), "If it is a private server, set its CA file in the profile.",
                     f)


def _tls(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    hint = ""
    if f.reason == "WRONG_VERSION_NUMBER":
        hint = ("The port probably does not speak TLS: check the security setting (STARTTLS "
                "uses 587, implicit TLS 465).")
    return ErrorInfo("tls", f"The TLS connection to {where} failed.", _detail(f), hint, f)


def _server_error(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("smtp", f"The server at {where} answered with an error.", _reply(f),
                     failure=f)


def _protocol(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("smtp", f"The conversation with {where} failed: {_own_words(f)}.",
                     _detail(f), failure=f)


def _disconnected(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if not isinstance(f.exception, smtplib.SMTPServerDisconnected) and f.reason:
        # the socket's own error (ECONNRESET, EPIPE): cut while writing
        return ErrorInfo("disconnected", f"The connection to {where} was cut while sending.",
                         _detail(f), failure=f)
    hint = ""
    if profile is not None and profile.security in ("tls", "starttls") and (
            not profile.client_cert) and f.stage in (None, Stage.GREETING, Stage.EHLO):
        # TLS 1.3 servers that require a client certificate close the connection after
        # the handshake; the client sees only the end of the stream
        hint = ("If it closed right after the TLS handshake, the server may want a client "
                "certificate: set one (and its key) in the profile.")
    return ErrorInfo("disconnected",
                     f"The server at {where} closed the connection unexpectedly{_when(f)}.",
                     _detail(f), hint, f)


def _connection_refused(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    if f.code is not None:
        return ErrorInfo("unreachable", f"The server at {where} did not accept the connection.",
                         _reply(f), failure=f)
    return ErrorInfo("unreachable", f"Nothing is listening at {where} (connection refused).",
                     _detail(f), "Is the server running, and are host and port right?", f)


def _host_not_found(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    host = profile.host if profile else "the server"
    return ErrorInfo("unreachable", f'The host name "{host}" could not be found.', _detail(f),
                     "Check the host in the profile.", f)


def _connection(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    exc = f.exception
    why = (exc.strerror if isinstance(exc, OSError) else None) or _own_words(f)
    return ErrorInfo("network", f"Could not talk to {where}: {why}.", _detail(f), failure=f)


def _invalid_message(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    exc = f.exception
    if isinstance(exc, BadHeaderError):
        return ErrorInfo("header", f"A header is not valid: {exc}", str(exc), failure=f)
    if isinstance(exc, ValueError):
        return ErrorInfo("address", f"{exc}", str(exc), failure=f)
    return ErrorInfo("message", f"The message could not be built: {exc}.", str(exc),
                     failure=f)


def _configuration(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("config", f"The profile is not set up right: {f.exception}",
                     _detail(f), failure=f)


_FILE_WHY = {"ENOENT": "it does not exist (moved or deleted?)", "EACCES": "permission denied",
             "EPERM": "permission denied", "EISDIR": "it is a folder"}


def _local_file(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    exc = f.exception
    why = _FILE_WHY.get(f.reason) or (exc.strerror if isinstance(exc, OSError) else "") or (
        _detail(f))
    return ErrorInfo("file", f"The file {f.path or 'a file'} can't be read: {why}.", _detail(f),
                     failure=f)


def _file_changed(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return ErrorInfo("file", _detail(f), _detail(f), failure=f)


def _aborted(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    return _CANCELLED


def _unknown(f: Failure, profile: Profile | None, where: str) -> ErrorInfo:
    exc = f.exception
    return ErrorInfo("bug", f"Unexpected error: {type(exc).__name__}: {exc}", repr(exc),
                     failure=f)


_SENTENCES: dict[Kind, Sentence] = {
    Kind.INVALID_MESSAGE: _invalid_message,
    Kind.ENCODING: _encoding,
    Kind.CONFIGURATION: _configuration,
    Kind.TLS_FILE: _tls_file,
    Kind.LOCAL_FILE: _local_file,
    Kind.FILE_CHANGED: _file_changed,
    Kind.CONNECTION_REFUSED: _connection_refused,
    Kind.HOST_NOT_FOUND: _host_not_found,
    Kind.CONNECTION: _connection,
    Kind.DISCONNECTED: _disconnected,
    Kind.TIMEOUT: _timeout,
    Kind.TLS_VERIFY: _tls_verify,
    Kind.TLS_HOSTNAME: _tls_hostname,
    Kind.TLS_CLIENT_CERT: _client_cert,
    Kind.TLS: _tls,
    Kind.STARTTLS: _starttls,
    Kind.INSECURE_AUTH: _insecure_auth,
    Kind.AUTH: _auth,
    Kind.AUTH_UNAVAILABLE: _auth_unavailable,
    Kind.AUTH_REQUIRED: _auth_required,
    Kind.SENDER_REFUSED: _sender,
    Kind.RECIPIENTS_REFUSED: _recipients,
    Kind.MESSAGE_REJECTED: _rejected,
    Kind.MESSAGE_TOO_LARGE: _too_large,
    Kind.SERVICE_UNAVAILABLE: _unavailable,
    Kind.REPLY_TOO_LONG: _reply_too_long,
    Kind.NOT_SUPPORTED: _not_supported,
    Kind.SERVER_ERROR: _server_error,
    Kind.PROTOCOL: _protocol,
    Kind.ABORTED: _aborted,
    Kind.UNKNOWN: _unknown,
}

_CANCELLED = ErrorInfo("cancelled", "Sending was cancelled. Your draft is unchanged.")


def describe_failure(failure: Failure, profile: Profile | None = None) -> ErrorInfo:
    """The sentence, hint and reply for what ``classify`` said."""
    return _SENTENCES[failure.kind](failure, profile, _where(profile))


def _oauth_error(exc: BaseException) -> OAuthError | None:
    """The OAuthError that ``exc`` is or was raised from (a token source raises it inside
    mailcore's login), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OAuthError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def describe_error(exc: BaseException, profile: Profile | None = None) -> ErrorInfo:
    """What went wrong, in a sentence and a hint, for every error mailcore, the network and
    the keyring can raise."""
    if isinstance(exc, Cancelled):
        return _CANCELLED
    oauth = _oauth_error(exc)
    if oauth is not None:
        if oauth.kind == "signin":
            return ErrorInfo("oauth-signin", oauth.sentence, oauth.error, SIGN_IN_AGAIN)
        return ErrorInfo(f"oauth-{oauth.kind}", oauth.sentence, oauth.error)
    failure = classify(exc)
    if isinstance(exc, KeyringFailed) and failure.kind is not Kind.ENCODING:
        return ErrorInfo("keyring", str(exc), str(exc.__cause__ or ""))
    return describe_failure(failure, profile)
