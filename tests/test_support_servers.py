"""Tests of the test servers themselves, driven by the standard library's smtplib (no mocks)."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time

import pytest

from tests.support.servers import (
    DATA_SIZE_DEFAULT,
    LOCALHOST,
    TEST_PASSWORD,
    TEST_USER,
    Certificates,
    DropDuringDataServer,
    GreetingRefusedServer,
    NoStartTLSServer,
    RecordingHandler,
    ScriptedServer,
    SMTPServer,
    free_port,
    refused_port,
)

pytestmark = pytest.mark.timeout(30)

MESSAGE = (
    b"From: sender@example.com\r\n"
    b"To: to@example.com\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b"first line\r\n"
    b".starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"  # a line that is only a dot must survive, too
    b"last line\r\n"
)


def _read_reply(rfile) -> tuple[int, list[bytes]]:
    lines = []
    while True:
        line = rfile.readline()
        assert line, "server closed the connection"
        lines.append(line.rstrip(b"\r\n"))
        if line[3:4] != b"-":
            return int(line[:3]), lines


# -- helpers -----------------------------------------------------------------------------------


def test_free_port_is_bindable():
    port = free_port()
    assert 0 < port < 65536
    with socket.create_server((LOCALHOST, port)):
        pass


def test_refused_port_refuses():
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCALHOST, refused_port()), timeout=1)


def test_refused_port_fixture_refuses(refused_port):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCALHOST, refused_port), timeout=1)


def test_certificates_files(certs: Certificates):
    for path in (
        certs.ca_file,
        certs.server_cert_file,
        certs.server_key_file,
        certs.client_cert_file,
        certs.client_key_file,
    ):
        with open(path, "rb") as f:
            assert f.read().startswith(b"-----BEGIN ")
    assert certs.untrusted is not None
    with open(certs.ca_file, "rb") as a, open(certs.untrusted.ca_file, "rb") as b:
        assert a.read() != b.read()
    ctx = certs.server_ssl_context(require_client_cert=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert certs.server_ssl_context().verify_mode == ssl.CERT_NONE


# -- plain -------------------------------------------------------------------------------------


def test_plain_records_envelope_and_exact_bytes(smtp_server: SMTPServer):
    assert smtp_server.host == "127.0.0.1"
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert not client.has_extn("pipelining")
        assert client.esmtp_features["size"] == str(DATA_SIZE_DEFAULT)
        assert client.has_extn("8bitmime")
        refused = client.sendmail(
            "sender@example.com", ["to@example.com", "bcc@example.com"], MESSAGE
        )
    assert refused == {}
    (msg,) = smtp_server.wait_for(1)
    assert msg.mail_from == "sender@example.com"
    assert msg.rcpt_tos == ["to@example.com", "bcc@example.com"]  # Bcc only in the envelope
    assert msg.data == MESSAGE  # CRLF kept, dot-stuffing undone
    assert b"\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast" in msg.data
    assert msg.session_tls is False
    assert msg.auth_login is None
    assert msg.peer[0] == "127.0.0.1"
    assert abs(msg.received_at - time.time()) < 60
    assert msg.mail_options == [f"SIZE={len(MESSAGE)}"]
    assert msg.message()["Subject"] == "hello"
    assert smtp_server.connections == 1


def test_bare_lf_and_8bit_bytes_kept(smtp_server: SMTPServer):
    body = "Subject: x\r\n\r\nbare\nlf and caf\u00e9\r\n".encode()
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.sendmail("a@example.com", ["b@example.com"], body, mail_options=["BODY=8BITMIME"])
    (msg,) = smtp_server.wait_for(1)
    assert msg.data == body
    assert "BODY=8BITMIME" in msg.mail_options


def test_smtputf8(smtp_server: SMTPServer):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail(
            "j\u00f6rg@example.com", ["m\u00fcller@example.com"], b"x\r\n", ["SMTPUTF8"]
        )
    (msg,) = smtp_server.wait_for(1)
    assert msg.smtp_utf8 is True
    assert msg.mail_from == "j\u00f6rg@example.com"
    assert msg.rcpt_tos == ["m\u00fcller@example.com"]


def test_no_starttls_server_does_not_advertise_starttls():
    with NoStartTLSServer() as server, smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo()
        assert not c.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            c.starttls()


def test_size_limit_advertised_and_enforced():
    with SMTPServer(data_size_limit=100) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "100"
            with pytest.raises(smtplib.SMTPSenderRefused) as exc:
                client.sendmail("a@example.com", ["b@example.com"], b"x" * 200 + b"\r\n")
            assert exc.value.smtp_code == 552
        assert server.messages == []
    with SMTPServer(data_size_limit=None) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert not client.has_extn("size")


def test_connection_counting(smtp_server: SMTPServer):
    assert smtp_server.connections == 0  # the readiness probe is not counted
    for _ in range(2):
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"x\r\n")
    msgs = smtp_server.wait_for(2)
    assert smtp_server.connections == 2
    assert msgs[0].connection_id == 1
    assert msgs[1].connection_id == 2


def test_several_messages_on_one_connection(smtp_server: SMTPServer):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        for i in range(3):
            client.sendmail("a@example.com", [f"r{i}@example.com"], b"x\r\n")
    msgs = smtp_server.wait_for(3)
    assert smtp_server.connections == 1
    assert {m.connection_id for m in msgs} == {1}
    assert [m.rcpt_tos for m in msgs] == [[f"r{i}@example.com"] for i in range(3)]


def test_wait_for_times_out(smtp_server: SMTPServer):
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        smtp_server.wait_for(1, timeout=0.2)
    assert time.monotonic() - start < 2


def test_wait_for_wakes_up_on_arrival(smtp_server: SMTPServer):
    def send():
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"x\r\n")

    thread = threading.Thread(target=send)
    thread.start()
    assert len(smtp_server.wait_for(1, timeout=5)) == 1
    thread.join(5)


# -- faults ------------------------------------------------------------------------------------


def test_refused_recipient(smtp_server: SMTPServer):
    smtp_server.handler.refuse_rcpt = {"Bad@Example.com": "550 5.1.1 No such user"}
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        refused = client.sendmail("a@example.com", ["ok@example.com", "bad@example.com"], MESSAGE)
        assert refused == {"bad@example.com": (550, b"5.1.1 No such user")}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            client.sendmail("a@example.com", ["bad@example.com"], MESSAGE)
    assert exc.value.recipients == {"bad@example.com": (550, b"5.1.1 No such user")}
    (msg,) = smtp_server.wait_for(1)
    assert msg.rcpt_tos == ["ok@example.com"]


def test_data_reply_552(smtp_server: SMTPServer):
    smtp_server.handler.data_reply = "552 5.3.4 Message too big"
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert exc.value.smtp_code == 552
    assert exc.value.smtp_error == b"5.3.4 Message too big"
    assert smtp_server.messages == []
    (rejected,) = smtp_server.handler.rejected
    assert rejected.data == MESSAGE


def test_data_reply_callable(smtp_server: SMTPServer):
    smtp_server.handler.data_reply = lambda rec: "451 4.3.0 later" if b"fail" in rec.data else None
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail("a@example.com", ["b@example.com"], b"fail\r\n")
        client.sendmail("a@example.com", ["b@example.com"], b"fine\r\n")
    (msg,) = smtp_server.wait_for(1)
    assert msg.data == b"fine\r\n"


def test_mail_reply(smtp_server: SMTPServer):
    smtp_server.handler.mail_reply = "550 5.7.1 Sender rejected"
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert exc.value.smtp_code == 550
    assert exc.value.sender == "a@example.com"


# -- AUTH --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_plain_auth_success(smtp_auth_server: SMTPServer, mechanism: str):
    with smtplib.SMTP(smtp_auth_server.host, smtp_auth_server.port, timeout=5) as client:
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN"}
        client.user, client.password = TEST_USER, TEST_PASSWORD
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == 235
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    (msg,) = smtp_auth_server.wait_for(1)
    assert msg.auth_login == TEST_USER
    assert smtp_auth_server.handler.login_attempts == [(mechanism, TEST_USER, True)]


def test_plain_auth_wrong_password(smtp_auth_server: SMTPServer):
    with smtplib.SMTP(smtp_auth_server.host, smtp_auth_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            client.login(TEST_USER, "wrong")
    assert exc.value.smtp_code == 535
    # smtplib.login() tries every common mechanism before giving up
    assert smtp_auth_server.handler.login_attempts == [
        ("PLAIN", TEST_USER, False),
        ("LOGIN", TEST_USER, False),
    ]


def test_auth_required():
    with SMTPServer(auth={TEST_USER: TEST_PASSWORD}, auth_required=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as exc:
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
            assert exc.value.smtp_code == 530
            client.login(TEST_USER, TEST_PASSWORD)
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert server.wait_for(1)[0].auth_login == TEST_USER


def test_auth_not_offered_without_credentials(smtp_server: SMTPServer):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHg=")
        assert code == 502


# -- STARTTLS / TLS ----------------------------------------------------------------------------


def test_starttls_and_auth(starttls_server: SMTPServer, certs: Certificates):
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    with smtplib.SMTP(starttls_server.host, starttls_server.port, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # only after STARTTLS
        code, _ = client.starttls(context=ctx)
        assert code == 220
        client.ehlo()
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.login(TEST_USER, TEST_PASSWORD)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    (msg,) = starttls_server.wait_for(1)
    assert msg.session_tls is True
    assert msg.tls_version is not None and msg.tls_version.startswith("TLS")
    assert msg.auth_login == TEST_USER
    assert msg.data == MESSAGE
    assert starttls_server.connections == 1  # STARTTLS does not count as a new connection


def test_starttls_auth_refused_before_tls(starttls_server: SMTPServer):
    with smtplib.SMTP(starttls_server.host, starttls_server.port, timeout=5) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=")
        assert code == 538


def test_starttls_wrong_password(starttls_server: SMTPServer, certs: Certificates):
    with smtplib.SMTP(starttls_server.host, starttls_server.port, timeout=5) as client:
        client.starttls(context=certs.client_ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            client.login(TEST_USER, "nope")
    assert exc.value.smtp_code == 535


def test_require_starttls(certs: Certificates):
    with SMTPServer("starttls", certs=certs, require_starttls=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPSenderRefused) as exc:
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
            assert exc.value.smtp_code == 530
            client.starttls(context=certs.client_ssl_context())
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert server.wait_for(1)[0].session_tls is True


def test_implicit_tls_and_auth(tls_server: SMTPServer, certs: Certificates):
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    with smtplib.SMTP_SSL(tls_server.host, tls_server.port, context=ctx, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("auth")
        assert not client.has_extn("starttls")
        client.login(TEST_USER, TEST_PASSWORD)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    (msg,) = tls_server.wait_for(1)
    assert msg.session_tls is True
    assert msg.auth_login == TEST_USER
    assert msg.data == MESSAGE
    assert tls_server.connections == 1


def test_implicit_tls_hostname_localhost(tls_server: SMTPServer, certs: Certificates):
    ctx = certs.client_ssl_context()
    with smtplib.SMTP_SSL("localhost", tls_server.port, context=ctx, timeout=5) as client:
        assert client.noop()[0] == 250


def test_implicit_tls_wrong_password(tls_server: SMTPServer, certs: Certificates):
    ctx = certs.client_ssl_context()
    with smtplib.SMTP_SSL(tls_server.host, tls_server.port, context=ctx, timeout=5) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            client.login(TEST_USER, "nope")
    assert exc.value.smtp_code == 535


def test_untrusted_certificate_fails_verification(certs: Certificates):
    assert certs.untrusted is not None
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    with SMTPServer("tls", certs=certs.untrusted) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL(server.host, server.port, context=ctx, timeout=5)
    with SMTPServer("starttls", certs=certs.untrusted) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=ctx)
        assert server.messages == []


def test_client_certificate_required(certs: Certificates):
    with SMTPServer("tls", certs=certs, require_client_cert=True) as server:
        assert server.connections == 0  # probe presented the client cert, and is not counted
        ctx = certs.client_ssl_context(with_client_cert=True)
        with smtplib.SMTP_SSL(server.host, server.port, context=ctx, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        (msg,) = server.wait_for(1)
        assert msg.session_tls is True
        assert msg.peer_cert is not None
        assert ("email", "client@example.com") in msg.peer_cert["subjectAltName"]

        # Without a client certificate the server aborts the TLS 1.3 session after the
        # handshake, so smtplib fails on its first read.
        no_cert = certs.client_ssl_context()
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
            with smtplib.SMTP_SSL(server.host, server.port, context=no_cert, timeout=5) as c:
                c.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert len(server.messages) == 1


def test_starttls_client_certificate_required(certs: Certificates):
    with SMTPServer("starttls", certs=certs, require_client_cert=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls(context=certs.client_ssl_context(with_client_cert=True))
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        (msg,) = server.wait_for(1)
        assert msg.peer_cert is not None


# -- pipelining --------------------------------------------------------------------------------


def test_pipelined_commands_on_raw_socket():
    with SMTPServer(
        pipelining=True, refuse_rcpt={"bad@example.com": "550 5.1.1 No such user"}
    ) as s:
        with socket.create_connection((s.host, s.port), timeout=5) as sock:
            rfile = sock.makefile("rb")
            assert _read_reply(rfile)[0] == 220
            sock.sendall(b"EHLO client.example\r\n")
            code, lines = _read_reply(rfile)
            assert code == 250
            assert b"250-PIPELINING" in lines
            assert lines[-1].startswith(b"250 ")
            sock.sendall(
                b"MAIL FROM:<a@example.com>\r\n"
                b"RCPT TO:<ok@example.com>\r\n"
                b"RCPT TO:<bad@example.com>\r\n"
                b"DATA\r\n"
            )
            codes = [_read_reply(rfile)[0] for _ in range(4)]
            assert codes == [250, 250, 550, 354]
            sock.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            assert _read_reply(rfile)[0] == 250
            assert _read_reply(rfile)[0] == 221
            rfile.close()
        (msg,) = s.wait_for(1)
        assert msg.rcpt_tos == ["ok@example.com"]
        assert msg.data == b"Subject: pipelined\r\n\r\nbody\r\n"


def test_pipelining_not_advertised_by_default(smtp_server: SMTPServer):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("pipelining")


# -- misbehaving servers -----------------------------------------------------------------------


def test_silent_server_times_out(silent_server):
    start = time.monotonic()
    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP(silent_server.host, silent_server.port, timeout=0.5)
    assert time.monotonic() - start < 1.0
    assert silent_server.connections == 1


def test_greeting_refused():
    with GreetingRefusedServer() as server:
        with pytest.raises(smtplib.SMTPConnectError) as exc:
            smtplib.SMTP(server.host, server.port, timeout=5)
    assert exc.value.smtp_code == 421
    assert b"Service not available" in exc.value.smtp_error


def test_drop_during_data():
    with DropDuringDataServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("pipelining")
            assert client.has_extn("8bitmime")
            assert client.has_extn("size")
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert server.dropped.wait(5)
        assert server.data and server.data[0]
        assert server.commands[-1].upper() == b"DATA"


def test_scripted_server_custom_replies():
    replies = {"RCPT": "451 4.7.1 Greylisted"}
    with ScriptedServer(replies=replies) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert exc.value.recipients == {"b@example.com": (451, b"4.7.1 Greylisted")}
        assert server.commands[0].startswith(b"ehlo ")
    with ScriptedServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert server.data == [MESSAGE]


def test_servers_stop_quickly_with_open_clients(certs: Certificates):
    for make in (
        lambda: SMTPServer("plain"),
        lambda: SMTPServer("tls", certs=certs),
        lambda: DropDuringDataServer(),
        lambda: ScriptedServer(),
    ):
        server = make().start()
        if isinstance(server, SMTPServer) and server.mode == "tls":
            client = ssl.create_default_context(cafile=certs.ca_file).wrap_socket(
                socket.create_connection(server.address, timeout=5), server_hostname="localhost"
            )
        else:
            client = socket.create_connection(server.address, timeout=5)
        client.recv(100)  # greeting
        start = time.monotonic()
        server.stop()
        assert time.monotonic() - start < 2.5
        client.close()
    # a stopped SMTPServer no longer accepts connections
    plain = SMTPServer().start()
    port = plain.port
    plain.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCALHOST, port), timeout=1)


def test_handler_can_be_shared_and_reset():
    handler = RecordingHandler()
    with SMTPServer(handler=handler) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"x\r\n")
        assert handler.wait_for(1)[0].data == b"x\r\n"
        handler.reset()
        assert handler.messages == [] and handler.connections == 0
