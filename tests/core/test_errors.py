"""``mailcore.errors.classify`` on what real failures raise: servers on 127.0.0.1 that refuse,
stay silent, flood, close, answer 421, refuse TLS or present the wrong certificate; a refused
port, a connect that times out, a host that does not exist; smtplib's and ssl's own
exceptions as the standard library raises them. And the ``mailcore`` command's exit code and
line for every kind.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from mailcore import BadHeaderError, EmailMessage
from mailcore.backends.filebased import EmailBackend as FileBackend
from mailcore.backends.smtp import EmailBackend
from mailcore.cli import EXIT_CODES, explain
from mailcore.errors import (
    CertificateHostnameError,
    Failure,
    Kind,
    Refusal,
    SMTPConnectionLostError,
    SMTPConnectTimeoutError,
    SMTPMessageRefusedError,
    Stage,
    TLSFileError,
    check_tls_files,
    classify,
)
from tests.support.servers import (
    LOCALHOST,
    TEST_PASSWORD,
    TEST_USER,
    Certificates,
    DropDuringDataServer,
    GreetingRefusedServer,
    HostileServer,
    ScriptedServer,
    SMTPServer,
    _RawServer,
)

TIMEOUT = 1.0
BYE = "421 4.3.2 Shutting down for maintenance"


def message(**kwargs: Any) -> EmailMessage:
    kwargs.setdefault("to", ["to@example.com"])
    return EmailMessage(kwargs.pop("subject", "s"), kwargs.pop("body", "b"), "from@example.com",
                        **kwargs)


def failure_of(server: Any = None, msg: EmailMessage | None = None, **kwargs: Any) -> Failure:
    """Send one message through mailcore's backend; classify what it raised."""
    if server is not None:
        kwargs.setdefault("host", server.host)
        kwargs.setdefault("port", server.port)
    kwargs.setdefault("timeout", TIMEOUT)
    backend = EmailBackend(**kwargs)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever it is, classify says
        backend.send_messages([msg or message()])
    return classify(caught.value)


# -- reaching the server ------------------------------------------------------------------------


def test_a_refused_port(refused_port: int) -> None:
    f = failure_of(host=LOCALHOST, port=refused_port)
    assert (f.kind, f.stage, f.code, f.reason) == (Kind.CONNECTION_REFUSED, Stage.CONNECT, None,
                                                   "ECONNREFUSED")
    assert isinstance(f.exception, ConnectionRefusedError)


def test_a_host_that_does_not_exist() -> None:
    f = failure_of(host="no-such-host.invalid", port=25)
    assert (f.kind, f.stage) == (Kind.HOST_NOT_FOUND, Stage.CONNECT)
    assert isinstance(f.exception, socket.gaierror)


@contextlib.contextmanager
def full_backlog_listener() -> Iterator[tuple[str, int]]:
    """A listening socket whose accept queue is full: a new TCP connect() blocks (the SYNs are
    dropped), as with a far or firewalled host."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(0)
    address = listener.getsockname()
    filler = socket.create_connection(address, timeout=5)
    try:
        yield address
    finally:
        filler.close()
        listener.close()


def test_a_connect_that_times_out() -> None:
    with full_backlog_listener() as (host, port):
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the premise: a connect() here really blocks
            probe.connect((host, port))
        probe.close()
        f = failure_of(host=host, port=port, timeout=0.5)
    assert (f.kind, f.stage, f.reason, f.timeout) == (Kind.TIMEOUT, Stage.CONNECT, "connect", 0.5)
    assert isinstance(f.exception, SMTPConnectTimeoutError)
    assert isinstance(f.exception, TimeoutError) and isinstance(f.exception.__cause__, OSError)


@pytest.mark.parametrize(("stage", "pipelining", "expected"), [
    ("greeting", True, Stage.GREETING),
    ("EHLO", True, Stage.EHLO),
    ("MAIL", False, Stage.MAIL),
    ("MAIL", True, Stage.MAIL),
    ("RCPT", False, Stage.RCPT),
    ("RCPT", True, Stage.RCPT),
    ("DATA", False, Stage.DATA),
    ("end of data", True, Stage.AFTER_DATA),
])
def test_a_silent_server_times_out_at_its_stage(stage: str, pipelining: bool,
                                                expected: Stage) -> None:
    with HostileServer(stage, "silent", pipelining=pipelining) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reason, f.timeout, f.received) == (
        Kind.TIMEOUT, expected, "reply", TIMEOUT, 0)


def test_a_dripped_reply_times_out_with_what_came() -> None:
    with HostileServer("EHLO", "drip", interval=0.2) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reason) == (Kind.TIMEOUT, Stage.EHLO, "reply")
    assert f.received >= 1


def test_a_server_that_stops_reading_is_a_write_timeout(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x00\xff" * (8 * 1024 * 1024))  # more than the socket buffers hold
    msg = message()
    msg.attach_file(big)
    with HostileServer("DATA", "deaf") as server:
        f = failure_of(server, msg)
    assert (f.kind, f.stage, f.reason, f.timeout) == (Kind.TIMEOUT, Stage.DATA, "write", TIMEOUT)


def test_smtplibs_own_timeout(silent_server: Any) -> None:
    """smtplib raises SMTPServerDisconnected while handling the socket's timeout."""
    with pytest.raises(smtplib.SMTPServerDisconnected) as caught:
        smtplib.SMTP(silent_server.host, silent_server.port, timeout=0.3)
    assert isinstance(caught.value.__context__, TimeoutError)
    f = classify(caught.value)
    assert (f.kind, f.stage, f.reason) == (Kind.TIMEOUT, None, "")


@pytest.mark.parametrize(("behaviour", "flood_line", "reason", "limit"), [
    ("lines", b"250-x\r\n", "lines", 1000),
    ("lines", HostileServer.FLOOD_LINE, "bytes", 65536),
    ("line", b"", "line", 8192)])
def test_a_flood_is_a_reply_over_the_limits(behaviour: str, flood_line: bytes, reason: str,
                                            limit: int) -> None:
    with HostileServer("EHLO", behaviour, flood_line=flood_line) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reason, f.limit) == (Kind.REPLY_TOO_LONG, Stage.EHLO, reason, limit)


@pytest.mark.parametrize(("stage", "expected"), [
    ("EHLO", Stage.EHLO), ("MAIL", Stage.MAIL), ("RCPT", Stage.RCPT), ("DATA", Stage.DATA),
    ("end of data", Stage.AFTER_DATA)])
def test_a_421_is_service_unavailable_with_the_servers_reply(stage: str, expected: Stage) -> None:
    with HostileServer(stage, BYE) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.code, f.text) == (
        Kind.SERVICE_UNAVAILABLE, expected, 421, "4.3.2 Shutting down for maintenance")
    assert f.reply == BYE


def test_a_greeting_that_is_not_220() -> None:
    with GreetingRefusedServer() as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.code) == (Kind.SERVICE_UNAVAILABLE, Stage.GREETING, 421)
    with GreetingRefusedServer("554 5.7.1 No SMTP service here") as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reply) == (Kind.CONNECTION_REFUSED, Stage.GREETING,
                                          "554 5.7.1 No SMTP service here")
    assert isinstance(f.exception, smtplib.SMTPConnectError)


@pytest.mark.parametrize("reset", [True, False], ids=["RST", "FIN"])
def test_a_server_that_drops_the_connection(reset: bool) -> None:
    with DropDuringDataServer(reset=reset) as server:
        f = failure_of(server)
    assert f.kind is Kind.DISCONNECTED and f.stage in (Stage.DATA, Stage.AFTER_DATA)
    assert f.reason == ("ECONNRESET" if reset else "")
    assert isinstance(f.exception, SMTPConnectionLostError)


# -- TLS ----------------------------------------------------------------------------------------


def test_an_untrusted_certificate(tls_server: SMTPServer, certs: Certificates) -> None:
    assert certs.untrusted is not None
    f = failure_of(tls_server, use_ssl=True, ssl_cafile=certs.untrusted.ca_file)
    assert f.kind is Kind.TLS_VERIFY
    assert f.verify_code == 20 and f.verify_message == "unable to get local issuer certificate"
    assert f.reason == "CERTIFICATE_VERIFY_FAILED"


@pytest.fixture
def misnamed_tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server certificate from a trusted CA, issued for other names than 127.0.0.1."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.test", "smtp.example.test").configure_cert(context)
    return context, str(tmp_path / "ca.pem")


@pytest.mark.parametrize("mode", ["tls", "starttls"])
def test_a_certificate_for_other_names(misnamed_tls: tuple[ssl.SSLContext, str],
                                       mode: str) -> None:
    context, ca_file = misnamed_tls
    with SMTPServer(mode, tls_context=context) as server:
        f = failure_of(server, use_ssl=mode == "tls", use_tls=mode == "starttls",
                       ssl_cafile=ca_file)
    assert f.kind is Kind.TLS_HOSTNAME
    assert f.names == ("mail.example.test", "smtp.example.test") and f.hostname == LOCALHOST
    assert f.verify_code == 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
    assert isinstance(f.exception, CertificateHostnameError)


def test_ssls_own_hostname_error(misnamed_tls: tuple[ssl.SSLContext, str]) -> None:
    """The standard library's SMTP_SSL raises ssl's error: the kind is the same, the names
    are not known."""
    context, ca_file = misnamed_tls
    with SMTPServer("tls", tls_context=context) as server, pytest.raises(
            ssl.SSLCertVerificationError) as caught:
        smtplib.SMTP_SSL(server.host, server.port, timeout=5,
                         context=ssl.create_default_context(cafile=ca_file))
    f = classify(caught.value)
    assert (f.kind, f.names, f.verify_code) == (Kind.TLS_HOSTNAME, (), 64)


def test_tls_to_a_port_that_does_not_speak_it(smtp_server: SMTPServer,
                                              certs: Certificates) -> None:
    f = failure_of(smtp_server, use_ssl=True, ssl_cafile=certs.ca_file)
    assert (f.kind, f.reason) == (Kind.TLS, "WRONG_VERSION_NUMBER")
    assert isinstance(f.exception, ssl.SSLError)


class ClientCertRequiredServer(_RawServer):
    """Implicit TLS that requires a client certificate: a TLS 1.3 client finishes its side of
    the handshake, then reads the server's "certificate required" alert."""

    def __init__(self, certs: Certificates) -> None:
        super().__init__()
        self.context = certs.server_ssl_context(require_client_cert=True)

    def handle(self, conn: socket.socket, peer: Any) -> None:
        with contextlib.suppress(ssl.SSLError):
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"220 localhost ESMTP\r\n")


def test_a_server_that_wants_a_client_certificate(certs: Certificates) -> None:
    with ClientCertRequiredServer(certs) as server:
        f = failure_of(server, use_ssl=True, ssl_cafile=certs.ca_file)
    assert (f.kind, f.stage, f.reason) == (Kind.TLS_CLIENT_CERT, Stage.GREETING,
                                           "TLSV13_ALERT_CERTIFICATE_REQUIRED")
    assert isinstance(f.exception, smtplib.SMTPServerDisconnected)


def test_starttls_not_offered_and_refused(smtp_server: SMTPServer) -> None:
    f = failure_of(smtp_server, use_tls=True)
    assert (f.kind, f.stage, f.code) == (Kind.STARTTLS, Stage.STARTTLS, None)
    with ScriptedServer(replies={"EHLO": ["250-localhost", "250 STARTTLS"],
                                 "STARTTLS": "454 4.7.0 TLS not available"}) as server:
        f = failure_of(server, use_tls=True)
    assert (f.kind, f.stage, f.reply) == (Kind.STARTTLS, Stage.STARTTLS,
                                          "454 4.7.0 TLS not available")


def test_unusable_tls_files(certs: Certificates, tmp_path: Path) -> None:
    assert certs.untrusted is not None
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    cases = [
        ((str(tmp_path / "gone.pem"), None, None), ("ca", "missing")),
        ((str(tmp_path), None, None), ("ca", "not a file")),
        ((str(not_pem), None, None), ("ca", "not usable")),
        ((None, None, certs.client_key_file), ("key", "key without cert")),
        ((None, str(not_pem), None), ("cert", "not usable")),
        ((None, certs.client_cert_file, certs.untrusted.client_key_file),
         ("cert", "key mismatch")),
    ]
    for files, (role, problem) in cases:
        with pytest.raises(TLSFileError) as caught:
            check_tls_files(*files)
        f = classify(caught.value)
        assert (f.kind, f.reason) == (Kind.TLS_FILE, problem), files
        assert caught.value.role == role and f.path == caught.value.path
    assert caught.value.keyfile == certs.untrusted.client_key_file
    check_tls_files(certs.ca_file, certs.client_cert_file, certs.client_key_file)  # all good


# -- logging in ---------------------------------------------------------------------------------


def test_a_wrong_password(smtp_auth_server: SMTPServer) -> None:
    f = failure_of(smtp_auth_server, username=TEST_USER, password="wrong")
    assert (f.kind, f.stage, f.code) == (Kind.AUTH, Stage.AUTH, 535)
    assert "wrong" not in f.text


def test_login_not_offered_before_starttls(starttls_server: SMTPServer) -> None:
    f = failure_of(starttls_server, username=TEST_USER, password=TEST_PASSWORD)
    assert (f.kind, f.stage, f.starttls_offered) == (Kind.AUTH_UNAVAILABLE, Stage.AUTH, True)


def test_only_unknown_login_mechanisms() -> None:
    with ScriptedServer(replies={"EHLO": ["250-localhost", "250 AUTH XOAUTH2"]}) as server:
        f = failure_of(server, username="u", password="p")
    assert (f.kind, f.mechanisms, f.starttls_offered) == (Kind.AUTH_UNAVAILABLE, ("XOAUTH2",),
                                                          False)


def test_a_login_wanted_before_mail() -> None:
    with SMTPServer("plain", auth_required=True) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.code, f.sender) == (Kind.AUTH_REQUIRED, Stage.MAIL, 530,
                                                   "from@example.com")


INSECURE_AUTH_SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "192.0.2.25/32", "dev", "lo"], check=True)
from aiosmtpd.controller import Controller
from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailcore.errors import classify

class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

controller = Controller(Handler(), hostname="192.0.2.25", port=8025, auth_require_tls=False)
controller.start()
try:
    EmailBackend(host="192.0.2.25", port=8025, username="alice", password="correct horse",
                 timeout=5).send_messages([EmailMessage("s", "b", "f@example.com", ["t@x.test"])])
    print(json.dumps({"sent": True}))
except Exception as exc:
    f = classify(exc)
    print(json.dumps({"kind": f.kind, "stage": f.stage, "type": type(exc).__name__}))
finally:
    controller.stop()
"""


def test_a_password_not_sent_in_the_clear() -> None:
    """To a host that is not this machine (192.0.2.25, in a network namespace of its own)."""
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", INSECURE_AUTH_SCRIPT, root],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"kind": "insecure_auth", "stage": "auth", "type": "InsecureAuthError"}


# -- the transaction ----------------------------------------------------------------------------


def test_a_refused_sender() -> None:
    with SMTPServer("plain", mail_reply="553 5.7.1 Sender not allowed") as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reply, f.sender) == (
        Kind.SENDER_REFUSED, Stage.MAIL, "553 5.7.1 Sender not allowed", "from@example.com")


@pytest.mark.parametrize("pipelining", [False, True])
def test_every_recipient_refused(pipelining: bool) -> None:
    refuse = {"a@example.com": "550 5.1.1 No such user", "b@example.com": "450 4.2.1 Busy"}
    with SMTPServer("plain", refuse_rcpt=refuse, pipelining=pipelining) as server:
        f = failure_of(server, message(to=list(refuse)))
    assert (f.kind, f.stage, f.code) == (Kind.RECIPIENTS_REFUSED, Stage.RCPT, None)
    assert f.refused == (Refusal("a@example.com", 550, "5.1.1 No such user"),
                         Refusal("b@example.com", 450, "4.2.1 Busy"))


def test_smtplibs_own_refusals() -> None:
    refuse = {"a@example.com": "550 5.1.1 No such user"}
    with SMTPServer("plain", refuse_rcpt=refuse, data_reply="554 5.7.1 Spam") as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("from@example.com", ["a@example.com"], b"Subject: x\r\n\r\nx")
            with pytest.raises(smtplib.SMTPDataError) as rejected:
                client.sendmail("from@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx")
    f = classify(refused.value)
    assert (f.kind, f.refused) == (Kind.RECIPIENTS_REFUSED,
                                   (Refusal("a@example.com", 550, "5.1.1 No such user"),))
    f = classify(rejected.value)
    assert (f.kind, f.stage, f.reply) == (Kind.MESSAGE_REJECTED, None, "554 5.7.1 Spam")


def test_the_message_refused_after_its_content() -> None:
    with SMTPServer("plain", data_reply="554 5.7.1 Looks like spam") as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.reply) == (Kind.MESSAGE_REJECTED, Stage.AFTER_DATA,
                                          "554 5.7.1 Looks like spam")
    assert isinstance(f.exception, SMTPMessageRefusedError)


@pytest.mark.parametrize("pipelining", [False, True])
def test_data_refused(pipelining: bool) -> None:
    with HostileServer("DATA", "554 5.5.1 No valid recipients", pipelining=pipelining) as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.code) == (Kind.MESSAGE_REJECTED, Stage.DATA, 554)


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_message_over_the_servers_size(pipelining: bool) -> None:
    with SMTPServer("plain", data_size_limit=1000, pipelining=pipelining) as server:
        f = failure_of(server, message(body="x" * 5000))
    assert (f.kind, f.stage, f.code, f.limit) == (Kind.MESSAGE_TOO_LARGE, Stage.MAIL, 552, 1000)
    assert f.size is not None and f.size > 5000 and f.sender == "from@example.com"


def test_a_552_after_the_content_is_too_large_too() -> None:
    with SMTPServer("plain", data_reply="552 5.3.4 Message too big") as server:
        f = failure_of(server)
    assert (f.kind, f.stage, f.size, f.limit) == (Kind.MESSAGE_TOO_LARGE, Stage.AFTER_DATA,
                                                  None, None)


# -- the message, the caller --------------------------------------------------------------------


def test_a_header_with_a_newline(smtp_server: SMTPServer) -> None:
    f = failure_of(smtp_server, message(subject="Hello\nBcc: victim@example.com"))
    assert f.kind is Kind.INVALID_MESSAGE and isinstance(f.exception, BadHeaderError)
    assert smtp_server.handler.messages == []


def test_an_attachment_that_went_away(smtp_server: SMTPServer, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF" * 100)
    msg = message()
    msg.attach_file(path)
    path.unlink()
    f = failure_of(smtp_server, msg)
    assert (f.kind, f.path, f.reason) == (Kind.LOCAL_FILE, str(path), "ENOENT")


def test_a_non_ascii_password_through_smtplib(smtp_auth_server: SMTPServer) -> None:
    with smtplib.SMTP(smtp_auth_server.host, smtp_auth_server.port, timeout=5) as client:
        with pytest.raises(UnicodeError) as caught:
            client.login(TEST_USER, "p\u00e4ssw\u00f6rd")
    f = classify(caught.value)
    assert (f.kind, f.reason) == (Kind.ENCODING, "ascii")
    wrapped = OSError("login failed")
    wrapped.__cause__ = caught.value
    assert classify(wrapped).kind is Kind.ENCODING  # raised from it


def test_the_file_backend_without_a_folder() -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011
        FileBackend()
    assert classify(caught.value).kind is Kind.CONFIGURATION


def test_an_abort(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port, timeout=TIMEOUT)
    backend.abort()
    with pytest.raises(smtplib.SMTPServerDisconnected) as caught:
        backend.send_messages([message()])
    assert classify(caught.value).kind is Kind.ABORTED


def test_types_decide_never_the_text() -> None:
    """A message that reads like another failure changes nothing."""
    assert classify(smtplib.SMTPServerDisconnected("timed out")).kind is Kind.DISCONNECTED
    assert classify(ValueError("Connection refused")).kind is Kind.INVALID_MESSAGE
    assert classify(OSError("CERTIFICATE_REQUIRED")).kind is Kind.CONNECTION
    assert classify(smtplib.SMTPNotSupportedError("STARTTLS")).kind is Kind.NOT_SUPPORTED
    assert classify(KeyError("x")).kind is Kind.UNKNOWN


def test_the_new_errors_are_smtplibs_and_survive_pickling() -> None:
    errors = [
        SMTPConnectTimeoutError("c", timeout=2.0, command="connect"),
        SMTPConnectionLostError("l", command="RCPT"),
        SMTPMessageRefusedError(554, b"no", command="end of data"),
        TLSFileError("cert", "/c.pem", "key mismatch", "KEY_VALUES_MISMATCH", keyfile="/k.pem"),
    ]
    assert isinstance(errors[0], smtplib.SMTPServerDisconnected | TimeoutError)
    assert isinstance(errors[1], smtplib.SMTPServerDisconnected)
    assert isinstance(errors[2], smtplib.SMTPDataError) and errors[2].smtp_code == 554
    assert isinstance(errors[3], ValueError) and "key mismatch" in str(errors[3])
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
        assert type(copy) is type(error) and copy.__dict__ == error.__dict__
        assert str(copy) == str(error)


# -- the mailcore command: an exit code and a line for every kind ------------------------------


def test_every_kind_has_an_exit_code_and_a_line() -> None:
    assert set(EXIT_CODES) == set(Kind)
    samples: list[BaseException] = [
        smtplib.SMTPServerDisconnected("gone"), ValueError("bad"), KeyError("x"),
        SMTPConnectTimeoutError(timeout=1.0, command="connect"), ConnectionResetError(104, "r"),
        TLSFileError("ca", "/ca.pem", "missing"), ssl.SSLError(1, "x"),
        smtplib.SMTPHeloError(501, b"no"), smtplib.SMTPException("loop"),
    ]
    for exc in samples:
        error = explain(exc, "mail.example.com:25")
        assert error.code == EXIT_CODES[classify(exc).kind]
        assert str(error) and "\n" not in str(error)
