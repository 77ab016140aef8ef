"""What the composer says of a failure: a sentence and an optional hint for every kind that
``mailcore.errors.classify`` knows, worded from the failure's fields, never from the
exception's text. Plain Python, no Qt; the new kinds are made by real servers on 127.0.0.1.
"""

from __future__ import annotations

import errno
import smtplib
import ssl
from pathlib import Path

import pytest
import trustme

import mailcore
from mailcore import errors
from mailcore.errors import Kind, Stage, classify
from mailgui.model.draft import Draft
from mailgui.model.errors import Cancelled, ErrorInfo, describe_error, describe_failure
from mailgui.model.passwords import ASKED_AGAIN_HINT, asked_again, asked_again_sentence
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringFailed
from mailgui.model.sending import SendOutcome, send_draft
from tests.support.servers import (
    Certificates,
    HostileServer,
    ScriptedServer,
    SMTPServer,
)

PROFILE = Profile("Work", "smtp", host="mail.example.com", port=587, security="starttls",
                  username="alice", timeout=30)
WHERE = "mail.example.com:587"


def _send(server: object, **fields: object) -> SendOutcome:
    fields.setdefault("security", "none")
    body = str(fields.pop("body", "x"))
    profile = Profile("P", "smtp", host=server.host, port=server.port,  # type: ignore[attr-defined]
                      timeout=1, from_email="t@example.com", **fields)  # type: ignore[arg-type]
    outcome = send_draft(Draft(to="bob@example.com", body=body), profile)
    assert not outcome.ok and outcome.error is not None
    return outcome


def _unicode_error() -> UnicodeError:
    try:
        "p\u00e4ss".encode("ascii")
    except UnicodeError as exc:
        return exc
    raise AssertionError("unreachable")


# One exception of each kind, as the library raises it, and what the window must say: the
# label, words of what happened, words of the hint ("" for none).
SAMPLES: dict[Kind, tuple[BaseException, str, str, str]] = {
    Kind.INVALID_MESSAGE: (mailcore.BadHeaderError("Header values can't contain newlines"),
                           "header", "A header is not valid", ""),
    Kind.ENCODING: (_unicode_error(), "encoding", "could not be written as ascii",
                    "user name or the password"),
    Kind.CONFIGURATION: (mailcore.ImproperlyConfigured("EMAIL_PORT: not a number"), "config",
                         "not set up right: EMAIL_PORT", ""),
    Kind.TLS_FILE: (errors.TLSFileError("ca", "/etc/ca.pem", "missing"), "tls-files",
                    "The CA file /etc/ca.pem set in the profile does not exist.", ""),
    Kind.LOCAL_FILE: (FileNotFoundError(errno.ENOENT, "No such file", "/tmp/gone.pdf"), "file",
                      "The file /tmp/gone.pdf can't be read: it does not exist", ""),
    Kind.FILE_CHANGED: (None, "file", "", ""),  # made by a real file below
    Kind.CONNECTION_REFUSED: (ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                              "unreachable", f"Nothing is listening at {WHERE}",
                              "Is the server running"),
    Kind.HOST_NOT_FOUND: (__import__("socket").gaierror(-2, "Name or service not known"),
                          "unreachable", 'The host name "mail.example.com" could not be found.',
                          "Check the host"),
    Kind.CONNECTION: (OSError(errno.ENETUNREACH, "Network is unreachable"), "network",
                      f"Could not talk to {WHERE}: Network is unreachable.", ""),
    Kind.DISCONNECTED: (errors.SMTPConnectionLostError(command="greeting"), "disconnected",
                        f"The server at {WHERE} closed the connection unexpectedly as it "
                        "greeted.", "may want a client certificate"),
    Kind.TIMEOUT: (errors.SMTPReplyTimeoutError(timeout=30.0, command="EHLO"), "timeout",
                   f"The server at {WHERE} did not answer within 30 seconds (waiting for its "
                   "answer to EHLO).", ""),
    Kind.TLS_VERIFY: (None, "tls-untrusted", "is not trusted", "set its CA file"),  # real
    Kind.TLS_HOSTNAME: (errors.CertificateHostnameError(
        hostname="mail.example.com", names=["smtp.example.com", "mx.example.com"]),
        "tls-hostname", "is for smtp.example.com, mx.example.com, not mail.example.com.",
        "a name the certificate is for"),
    Kind.TLS_CLIENT_CERT: (None, "tls-client-cert", "asks for a client certificate",
                           "Set one (and its key)"),  # made below from ssl's reason
    Kind.TLS: (None, "tls", f"The TLS connection to {WHERE} failed.",
               "The port probably does not speak TLS"),  # below: TLS to a plain port
    Kind.STARTTLS: (errors.SMTPStartTLSNotSupportedError("no"), "unsupported",
                    f"The server at {WHERE} does not offer STARTTLS.",
                    "Choose another security setting"),
    Kind.INSECURE_AUTH: (errors.InsecureAuthError("not encrypted"), "insecure-auth",
                         "The password was not sent", "Choose STARTTLS or implicit TLS"),
    Kind.AUTH: (smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"), "auth",
                f"The server at {WHERE} refused the user name or password for alice.",
                "Check them in the profile."),
    Kind.AUTH_UNAVAILABLE: (errors.SMTPAuthNotSupportedError(starttls_offered=True),
                            "unsupported", "does not offer login (AUTH)", "choose STARTTLS"),
    Kind.AUTH_REQUIRED: (smtplib.SMTPSenderRefused(530, b"5.7.0 Authentication required",
                                                   "t@example.com"),
                         "auth-required", "takes mail only after a login", "Set a user name"),
    Kind.SENDER_REFUSED: (smtplib.SMTPSenderRefused(553, b"5.7.1 Not yours", "t@example.com"),
                          "refused-sender", "The server refused the sender address "
                          "t@example.com.", ""),
    Kind.RECIPIENTS_REFUSED: (smtplib.SMTPRecipientsRefused(
        {"a@example.com": (550, b"5.1.1 No such user")}), "refused-recipients",
        "The server refused every recipient (a@example.com); nothing was sent.", ""),
    Kind.MESSAGE_REJECTED: (errors.SMTPMessageRefusedError(451, b"4.7.1 Greylisted",
                                                           command="end of data"),
                            "refused-data", "not accepted for now", "Try again later."),
    Kind.MESSAGE_TOO_LARGE: (errors.SMTPMessageTooLargeError(552, b"5.3.4 Too big",
                                                             size=2_000_000, limit=1_000_000),
                             "refused-data", "(2,000,000 bytes; it takes at most 1,000,000 "
                             "bytes)", "Attach smaller files"),
    Kind.SERVICE_UNAVAILABLE: (errors.SMTPServiceUnavailableError(
        421, b"4.3.2 Shutting down", command="MAIL"), "unavailable",
        "closed the connection at MAIL (the sender): \u201c4.3.2 Shutting down\u201d.",
        "Try again later."),
    Kind.REPLY_TOO_LONG: (errors.SMTPReplyLineTooLongError(limit=8192), "disconnected",
                          "an answer too long to read (a line over 8192 bytes)", ""),
    Kind.NOT_SUPPORTED: (smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server"),
                         "unsupported", "does not support what was asked: SMTPUTF8 not "
                         "supported by server.", ""),
    Kind.SERVER_ERROR: (smtplib.SMTPHeloError(501, b"5.5.4 Bad EHLO"), "smtp",
                        "answered with an error", ""),
    Kind.PROTOCOL: (smtplib.SMTPException("Server AUTH mechanism infinite loop."), "smtp",
                    f"The conversation with {WHERE} failed: Server AUTH mechanism infinite "
                    "loop.", ""),
    Kind.ABORTED: (errors.SMTPAborted(), "cancelled", "Sending was cancelled.", ""),
    Kind.UNKNOWN: (KeyError("x"), "bug", "Unexpected error: KeyError", ""),
}


def _sample(kind: Kind, tmp_path: Path, certs: Certificates) -> BaseException:
    exc = SAMPLES[kind][0]
    if exc is not None:
        return exc
    if kind is Kind.FILE_CHANGED:
        path = tmp_path / "grows.log"
        path.write_bytes(b"x" * 1536 * 1024)
        msg = mailcore.EmailMessage("s", "b", "f@example.com", ["t@example.com"])
        msg.attach_file(path)  # over 1 MiB: kept as a reference and streamed
        from mailcore.wire import serialize

        data = serialize(msg)
        with path.open("ab") as f:  # a log still being written to, after its size was known
            f.write(b"more\n" * 1000)
        with pytest.raises(OSError) as caught:
            b"".join(data.chunks())
        return caught.value
    context = ssl.create_default_context(cafile=certs.ca_file)
    if kind is Kind.TLS_VERIFY:
        assert certs.untrusted is not None
        with SMTPServer("tls", certs=certs.untrusted) as server, pytest.raises(
                ssl.SSLCertVerificationError) as caught:
            smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)
        return caught.value
    if kind is Kind.TLS:
        with SMTPServer("plain") as server, pytest.raises(ssl.SSLError) as caught:
            smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)
        return caught.value
    assert kind is Kind.TLS_CLIENT_CERT
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"  # as ssl sets it on a real one
    lost = errors.SMTPConnectionLostError(command="greeting")
    lost.__cause__ = alert
    return lost


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_every_kind_has_a_sentence(kind: Kind, tmp_path: Path, certs: Certificates) -> None:
    assert set(SAMPLES) == set(Kind)
    exc = _sample(kind, tmp_path, certs)
    assert classify(exc).kind is kind, exc
    info = describe_error(exc, PROFILE)
    _, label, what, hint = SAMPLES[kind]
    assert info.kind == label
    assert what in info.what, info
    assert (hint in info.hint) if hint else info.hint == "", info
    assert info.sentence == " ".join(part for part in (info.what, info.hint) if part)
    assert "\n" not in info.sentence


def test_the_server_reply_is_kept_apart_from_the_sentence() -> None:
    info = describe_error(smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"),
                          PROFILE)
    assert info.reply == "535 5.7.8 Bad credentials" and "535" not in info.sentence
    refused = describe_error(smtplib.SMTPRecipientsRefused(
        {"a@example.com": (550, b"5.1.1 No such user"), "b@example.com": (450, b"Busy")}))
    assert refused.reply == "a@example.com: 550 5.1.1 No such user\nb@example.com: 450 Busy"


def test_words_of_an_exception_decide_nothing() -> None:
    """The old ladder read "timed out" and "STARTTLS" in messages; types decide now."""
    assert describe_error(smtplib.SMTPServerDisconnected("timed out"), PROFILE).kind == (
        "disconnected")
    info = describe_error(smtplib.SMTPNotSupportedError("STARTTLS AUTH"), PROFILE)
    assert info.kind == "unsupported" and "does not support what was asked" in info.what
    assert describe_error(OSError("CERTIFICATE_REQUIRED"), PROFILE).kind == "network"


def test_mailguis_own_failures() -> None:
    assert describe_error(Cancelled("cancelled")).kind == "cancelled"
    try:
        raise KeyringFailed("The system keyring failed (DBusException).") from RuntimeError("x")
    except KeyringFailed as exc:
        info = describe_error(exc, PROFILE)
    assert (info.kind, info.sentence, info.reply) == (
        "keyring", "The system keyring failed (DBusException).", "x")


def test_a_password_asked_again_keeps_the_sentence_and_swaps_the_hint() -> None:
    refused = describe_error(smtplib.SMTPAuthenticationError(535, b"5.7.8 No"), PROFILE)
    again = asked_again(refused)
    assert again.what == refused.what and again.reply == refused.reply
    assert again.hint == ASKED_AGAIN_HINT != refused.hint
    assert asked_again_sentence(PROFILE) == f"{refused.what} {ASKED_AGAIN_HINT}"
    assert isinstance(again, ErrorInfo) and again.kind == "auth"


def test_the_port_465_hint_is_for_a_timeout_before_any_reply() -> None:
    tls_port = Profile("P", "smtp", host="mail.example.com", port=465, security="starttls")
    greeting = describe_error(errors.SMTPReplyTimeoutError(timeout=5.0, command="greeting"),
                              tls_port)
    assert "Port 465 speaks implicit TLS" in greeting.hint
    later = describe_error(errors.SMTPReplyTimeoutError(timeout=5.0, command="MAIL"), tls_port)
    assert later.hint == ""


# -- the new types, made by real servers ------------------------------------------------------


@pytest.fixture
def misnamed_tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.test", "smtp.example.test").configure_cert(context)
    return context, str(tmp_path / "ca.pem")


def test_a_certificate_for_other_names_names_them(misnamed_tls: tuple[ssl.SSLContext, str]
                                                  ) -> None:
    context, ca_file = misnamed_tls
    with SMTPServer("tls", tls_context=context) as server:
        outcome = _send(server, security="tls", ca_file=ca_file)
    assert outcome.error is not None and outcome.error.kind == "tls-hostname"
    assert outcome.error.what == (f"The certificate of 127.0.0.1:{server.port} is for "
                                  "mail.example.test, smtp.example.test, not 127.0.0.1.")
    assert "Set the host in the profile" in outcome.error.hint


def test_starttls_refused_quotes_the_server() -> None:
    with ScriptedServer(replies={"EHLO": ["250-localhost", "250 STARTTLS"],
                                 "STARTTLS": "454 4.7.0 TLS not available"}) as server:
        outcome = _send(server, security="starttls")
    assert outcome.error is not None and outcome.error.kind == "tls"
    assert outcome.error.what == f"The server at 127.0.0.1:{server.port} refused STARTTLS."
    assert outcome.reply == "454 4.7.0 TLS not available"


def test_a_421_says_the_servers_text() -> None:
    with HostileServer("RCPT", "421 4.3.2 Shutting down for maintenance") as server:
        outcome = _send(server)
    assert outcome.error is not None and outcome.error.kind == "unavailable"
    assert outcome.error.what == (
        f"The server at 127.0.0.1:{server.port} is not available now: it closed the connection "
        "at RCPT (a recipient): \u201c4.3.2 Shutting down for maintenance\u201d.")
    assert outcome.error.hint == "Try again later."
    assert outcome.error.failure is not None and outcome.error.failure.stage is Stage.RCPT


@pytest.mark.parametrize(("behaviour", "words"), [
    ("silent", "did not answer within 1 seconds (waiting for its answer to EHLO)."),
    ("drip", "did not finish its answer within 1 seconds (waiting for its answer to EHLO)."),
])
def test_a_timeout_says_how_long_and_for_what(behaviour: str, words: str) -> None:
    with HostileServer("EHLO", behaviour, interval=0.2) as server:
        outcome = _send(server)
    assert outcome.error is not None and outcome.error.kind == "timeout"
    assert outcome.error.what == f"The server at 127.0.0.1:{server.port} {words}"


def test_a_message_over_the_servers_size_says_size_and_limit() -> None:
    with SMTPServer("plain", data_size_limit=1000) as server:
        outcome = _send(server, body="x" * 5000)
    assert outcome.error is not None and outcome.error.kind == "refused-data"
    failure = outcome.error.failure
    assert failure is not None and failure.size is not None and failure.size > 5000
    assert outcome.error.what == (f"The message is too big for the server ({failure.size:,} "
                                  "bytes; it takes at most 1,000 bytes).")
    assert outcome.reply.startswith("552")


def test_describe_failure_words_what_classify_said() -> None:
    failure = classify(errors.SMTPConnectTimeoutError(timeout=3.0, command="connect"))
    info = describe_failure(failure, PROFILE)
    assert info.what == f"Could not connect to {WHERE} within 3 seconds: nothing answered."
    assert "firewall" in info.hint and info.failure is failure
