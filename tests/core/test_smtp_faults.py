"""Faults: each raises a specific exception, returns 0 with fail_silently=True,
and leaves the backend usable."""

from __future__ import annotations

import smtplib
import ssl
import time

import pytest

from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailcore.errors import (
    CertificateHostnameError,
    SMTPAuthNotSupportedError,
    SMTPMessageTooLargeError,
    SMTPStartTLSNotSupportedError,
    SMTPStartTLSRefusedError,
)
from mailcore.smtp import certificate_names
from tests.support.servers import (
    TEST_PASSWORD,
    TEST_USER,
    DropDuringDataServer,
    GreetingRefusedServer,
    ScriptedServer,
    SMTPServer,
)


def message(subject="s"):
    return EmailMessage(subject, "body", "from@example.com", ["to@example.com"])


def backend(host, port, **kwargs):
    kwargs.setdefault("timeout", 5)
    return EmailBackend(host=host, port=port, **kwargs)


def assert_usable_afterwards(b: EmailBackend) -> None:
    """The same backend object sends fine once pointed at a healthy server."""
    assert b.connection is None
    with SMTPServer("plain") as healthy:
        b.host, b.port = healthy.host, healthy.port
        b.username = b.password = ""
        b.use_tls = b.use_ssl = False
        assert b.send_messages([message("after the fault")]) == 1
        (record,) = healthy.handler.wait_for(1)
        assert b"after the fault" in record.data


def test_connection_refused(refused_port):
    b = backend("127.0.0.1", refused_port)
    with pytest.raises(ConnectionRefusedError):
        b.send_messages([message()])
    assert backend("127.0.0.1", refused_port, fail_silently=True).send_messages([message()]) == 0
    assert_usable_afterwards(b)


def test_server_that_never_answers_honours_the_timeout(silent_server):
    b = backend(silent_server.host, silent_server.port, timeout=0.5)
    started = time.monotonic()
    with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)) as caught:
        b.send_messages([message()])
    assert time.monotonic() - started < 4  # 0.5 s timeout, not the OS default
    chain = [caught.value, caught.value.__context__]
    assert any(isinstance(e, TimeoutError) or "timed out" in str(e) for e in chain)
    quiet = backend(silent_server.host, silent_server.port, timeout=0.5, fail_silently=True)
    assert quiet.send_messages([message()]) == 0
    assert_usable_afterwards(b)


def test_421_at_greeting():
    with GreetingRefusedServer() as server:
        b = backend(server.host, server.port)
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            b.send_messages([message()])
        assert caught.value.smtp_code == 421
        assert backend(server.host, server.port, fail_silently=True).send_messages([message()]) == 0
    assert_usable_afterwards(b)


def test_535_on_auth(starttls_server, certs):
    b = backend(
        starttls_server.host,
        starttls_server.port,
        use_tls=True,
        username=TEST_USER,
        password="wrong password",
        ssl_cafile=certs.ca_file,
    )
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        b.send_messages([message()])
    assert caught.value.smtp_code == 535
    assert "wrong password" not in str(caught.value)
    assert starttls_server.handler.messages == []
    # 535 means the credentials are wrong: not tried again with the next mechanism (smtplib
    # would, and each try counts towards the server's lockout)
    assert [(user, ok) for _mech, user, ok in starttls_server.handler.login_attempts] == [
        (TEST_USER, False)]
    b.fail_silently = True
    assert b.send_messages([message()]) == 0
    b.fail_silently = False
    b.password = TEST_PASSWORD
    assert b.send_messages([message()]) == 1  # the same backend, now with the right password


def test_550_for_the_only_recipient():
    with SMTPServer("plain", refuse_rcpt={"to@example.com": "550 5.1.1 No such user"}) as server:
        b = backend(server.host, server.port)
        b.open()
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            b.send_messages([message()])
        assert caught.value.recipients == {"to@example.com": (550, b"5.1.1 No such user")}
        b.fail_silently = True
        assert b.send_messages([message()]) == 0
        ok = EmailMessage("fine", "b", "from@example.com", ["other@example.com"])
        assert b.send_messages([ok]) == 1  # the open connection is still in step
        b.close()
        assert [r.rcpt_tos for r in server.handler.wait_for(1)] == [["other@example.com"]]
        assert server.connections == 1


@pytest.mark.parametrize("pipelining", [False, True])
def test_552_on_data(pipelining):
    with SMTPServer(
        "plain", pipelining=pipelining, data_reply="552 5.3.4 Message too big"
    ) as server:
        b = backend(server.host, server.port)
        b.open()
        with pytest.raises(smtplib.SMTPDataError) as caught:
            b.send_messages([message()])
        assert caught.value.smtp_code == 552
        b.fail_silently = True
        assert b.send_messages([message()]) == 0
        server.handler.data_reply = None
        assert b.send_messages([message("accepted now")]) == 1
        b.close()
        assert server.connections == 1


def test_connection_dropped_during_data():
    with DropDuringDataServer() as server:
        b = backend(server.host, server.port)
        b.open()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            b.send_messages([message()])
        assert b.connection is None  # the dead connection is never reused
        quiet = backend(server.host, server.port, fail_silently=True)
        assert quiet.send_messages([message()]) == 0
    assert_usable_afterwards(b)


def test_untrusted_certificate(certs):
    with SMTPServer("tls", certs=certs.untrusted) as server:
        b = backend(server.host, server.port, use_ssl=True, ssl_cafile=certs.ca_file)
        with pytest.raises(ssl.SSLCertVerificationError):
            b.send_messages([message()])
        assert server.handler.messages == []
        b.fail_silently = True
        assert b.send_messages([message()]) == 0
        b.fail_silently = False
    assert_usable_afterwards(b)


def test_untrusted_certificate_on_starttls_never_falls_back_to_plain(certs):
    with SMTPServer("starttls", certs=certs.untrusted) as server:
        b = backend(server.host, server.port, use_tls=True, ssl_cafile=certs.ca_file)
        with pytest.raises(ssl.SSLCertVerificationError):
            b.send_messages([message()])
        assert server.handler.messages == []


def test_system_cas_do_not_trust_a_private_ca(starttls_server):
    b = backend(starttls_server.host, starttls_server.port, use_tls=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        b.send_messages([message()])


def test_hostname_is_verified(certs, tmp_path):
    """A certificate from the trusted CA, but for another host name, is refused."""
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.test").configure_cert(server_context)
    with SMTPServer("tls", tls_context=server_context) as server:
        b = backend(server.host, server.port, use_ssl=True, ssl_cafile=str(tmp_path / "ca.pem"))
        with pytest.raises(ssl.SSLCertVerificationError, match="match") as caught:
            b.send_messages([message()])
        assert server.handler.messages == []
    # the error names the names the certificate is for (read on a second connection that
    # sends nothing), and keeps ssl's own fields
    assert isinstance(caught.value, CertificateHostnameError)
    assert caught.value.names == ("mail.example.test",)
    assert caught.value.hostname == "127.0.0.1"
    assert caught.value.verify_code == 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
    assert "mail.example.test" in str(caught.value)
    assert_usable_afterwards(b)


def test_hostname_mismatch_on_starttls_names_the_certificates_names(tmp_path):
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example.test", "10.9.8.7").configure_cert(server_context)
    with SMTPServer("starttls", tls_context=server_context) as server:
        b = backend(server.host, server.port, use_tls=True, ssl_cafile=str(tmp_path / "ca.pem"))
        with pytest.raises(CertificateHostnameError) as caught:
            b.send_messages([message()])
        assert caught.value.names == ("mx.example.test", "10.9.8.7")
        assert server.handler.messages == []
        assert server.connections == 2  # the send, and the look at the certificate
    assert_usable_afterwards(b)


def test_certificate_names_read_from_der_agree_with_the_certificate(tmp_path):
    import trustme
    from cryptography import x509

    ca = trustme.CA()
    for names in (("a.example.test", "*.b.example.test", "192.0.2.7", "2001:db8::1"),
                  ("only.example.test",)):
        leaf = ca.issue_cert(*names)
        pem = leaf.cert_chain_pems[0].bytes()
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        expected = [str(n.value) for n in san]
        assert certificate_names(der) == expected == list(names)
    # without a subjectAltName: the subject's common name; garbage: nothing
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "legacy.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    legacy = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(key.public_key()).serial_number(1).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    assert certificate_names(legacy.public_bytes(Encoding.DER)) == ["legacy.example.test"]
    assert certificate_names(b"\x30\x03\x02\x01") == []
    assert certificate_names(b"") == []


def test_starttls_not_offered():
    with SMTPServer("plain") as server:
        b = backend(server.host, server.port, use_tls=True)
        with pytest.raises(SMTPStartTLSNotSupportedError, match="STARTTLS"):
            b.send_messages([message()])
        assert server.handler.messages == []
        b.fail_silently = True
        assert b.send_messages([message()]) == 0


def test_starttls_refused_by_the_server():
    with ScriptedServer(
        replies={
            "EHLO": ["250-localhost", "250 STARTTLS"],
            "STARTTLS": "454 4.7.0 TLS not available",
        }
    ) as server:
        b = backend(server.host, server.port, use_tls=True)
        with pytest.raises(SMTPStartTLSRefusedError) as caught:
            b.send_messages([message()])
        assert isinstance(caught.value, smtplib.SMTPResponseException)
        error = caught.value
        assert (error.smtp_code, error.smtp_error) == (454, b"4.7.0 TLS not available")
        assert not any(c.upper().startswith(b"MAIL") for c in server.commands)
    assert_usable_afterwards(b)


@pytest.mark.parametrize("pipelining", [False, True])
def test_552_at_mail_is_a_message_too_large_with_size_and_limit(pipelining):
    with SMTPServer("plain", data_size_limit=2000, pipelining=pipelining) as server:
        b = backend(server.host, server.port)
        big = EmailMessage("big", "x" * 5000, "from@example.com", ["to@example.com"])
        with pytest.raises(SMTPMessageTooLargeError) as caught:
            b.send_messages([big])
        error = caught.value
        assert isinstance(error, smtplib.SMTPDataError) and error.smtp_code == 552
        # ... and what Django code catches there, as smtplib raises it
        assert isinstance(error, smtplib.SMTPSenderRefused)
        assert error.limit == 2000 and error.size > 5000
        assert error.sender == "from@example.com"
        assert server.handler.messages == []
        assert b.send_messages([message("small")]) == 1  # the connection is back in step


def test_auth_not_offered_before_starttls_says_so(starttls_server):
    b = backend(starttls_server.host, starttls_server.port, username=TEST_USER,
                password=TEST_PASSWORD)
    with pytest.raises(SMTPAuthNotSupportedError) as caught:
        b.send_messages([message()])
    assert isinstance(caught.value, smtplib.SMTPNotSupportedError)
    assert caught.value.starttls_offered is True
    assert starttls_server.handler.login_attempts == []


def test_auth_not_offered_at_all(smtp_server):
    b = backend(smtp_server.host, smtp_server.port, username="u", password="p")
    with pytest.raises(SMTPAuthNotSupportedError) as caught:
        b.send_messages([message()])
    assert caught.value.starttls_offered is False and caught.value.mechanisms == ()
    assert_usable_afterwards(b)


def test_sender_refused():
    with SMTPServer("plain", mail_reply="553 5.7.1 Sender not allowed") as server:
        b = backend(server.host, server.port)
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            b.send_messages([message()])
        assert caught.value.smtp_code == 553
        assert caught.value.sender == "from@example.com"


def test_invalid_addresses_raise_before_anything_is_sent(smtp_server):
    b = backend(smtp_server.host, smtp_server.port, fail_silently=True)
    bad = EmailMessage("s", "b", "from@example.com", ["to@example.com", "a@b@example.com"])
    with pytest.raises(ValueError, match="Invalid address"):
        b.send_messages([bad])
    assert smtp_server.handler.messages == []


def test_missing_attachment_file_is_reported_before_the_transaction(smtp_server, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF" * 100)
    msg = message()
    msg.attach_file(path)
    path.unlink()
    b = backend(smtp_server.host, smtp_server.port)
    with pytest.raises(FileNotFoundError, match="report.pdf"):
        b.send_messages([msg])
    assert smtp_server.handler.messages == []
    assert b.send_messages([message("next")]) == 1


def test_the_typed_errors_are_smtplibs_and_survive_pickling():
    """Django code catches smtplib's classes: every mailcore error is one of them (each
    that closes the connection an SMTPServerDisconnected, each timeout a TimeoutError),
    and each keeps its attributes through pickle (a queue or a process pool)."""
    import pickle

    from mailcore import errors

    def round_trip(error: Exception) -> Exception:
        return pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    closing = [
        errors.SMTPReplyTimeoutError("t", timeout=2.0, received=3),
        errors.SMTPWriteTimeoutError("w", timeout=2.0),
        errors.SMTPReplyLineTooLongError("l", limit=8192),
        errors.SMTPReplyTooManyLinesError("n", limit=1000),
        errors.SMTPReplyTooLargeError("b", limit=65536),
        errors.SMTPServiceUnavailableError(421, b"bye", command="RCPT", recipient="a@b.c"),
        errors.SMTPAborted(),
    ]
    for error in closing:
        assert isinstance(error, smtplib.SMTPServerDisconnected)
        copy = round_trip(error)
        assert type(copy) is type(error) and copy.__dict__ == error.__dict__
        assert copy.args == error.args
    assert all(isinstance(e, TimeoutError) for e in closing[:2])
    assert isinstance(closing[5], smtplib.SMTPResponseException)
    others = [
        errors.SMTPStartTLSRefusedError(454, b"no TLS"),
        errors.SMTPStartTLSNotSupportedError("no STARTTLS"),
        errors.SMTPAuthNotSupportedError("no AUTH", mechanisms=["XOAUTH2"], starttls_offered=True),
        errors.SMTPMessageTooLargeError(552, b"too big", sender="a@b.c", size=9, limit=5),
        errors.InsecureAuthError("clear text"),
    ]
    for error in others:
        assert isinstance(error, smtplib.SMTPException)
        copy = round_trip(error)
        assert type(copy) is type(error) and copy.__dict__ == error.__dict__
    assert isinstance(others[3], smtplib.SMTPDataError) and others[3].smtp_code == 552
    mismatch = errors.CertificateHostnameError("m", hostname="h", names=["x.test"])
    assert isinstance(mismatch, ssl.SSLCertVerificationError) and mismatch.names == ("x.test",)
    assert round_trip(mismatch).names == ("x.test",)
