"""The SMTP backend against real servers on 127.0.0.1: what reaches the server."""

from __future__ import annotations

import smtplib

import pytest

import mailcore
from mailcore import EmailMessage, EmailMultiAlternatives, get_connection, send_mail, send_mass_mail
from mailcore.backends.smtp import EmailBackend
from tests.support.servers import TEST_PASSWORD, TEST_USER, SMTPServer

from .mimeview import normalise


def backend_for(server, **kwargs) -> EmailBackend:
    return EmailBackend(host=server.host, port=server.port, timeout=5, **kwargs)


def test_send_mail_reaches_server_with_envelope_and_crlf(smtp_server):
    mailcore.settings.configure(EMAIL_HOST=smtp_server.host, EMAIL_PORT=smtp_server.port)
    sent = send_mail("Hello", "line one\nline two\n", "Ann <ann@example.com>", ["bob@example.com"])
    assert sent == 1
    (record,) = smtp_server.handler.wait_for(1)
    assert record.mail_from == "ann@example.com"
    assert record.rcpt_tos == ["bob@example.com"]
    assert b"\r\nSubject: Hello\r\n" in record.data
    assert record.data.endswith(b"line one\r\nline two\r\n")
    stripped = record.data.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped
    assert record.session_tls is False


def test_bcc_in_envelope_never_in_headers(smtp_server):
    msg = EmailMessage(
        "s",
        "b",
        "from@example.com",
        ["to@example.com"],
        bcc=["secret@example.com"],
        cc=["cc@example.com"],
        connection=backend_for(smtp_server),
    )
    assert msg.send() == 1
    (record,) = smtp_server.handler.wait_for(1)
    assert record.rcpt_tos == ["to@example.com", "cc@example.com", "secret@example.com"]
    assert b"secret@example.com" not in record.data
    assert b"Cc: cc@example.com" in record.data


def test_delivered_bytes_are_the_serialized_bytes(smtp_server):
    msg = EmailMultiAlternatives(
        "Grüße", "Ünïcode body\n.starts with dot\n", "a@example.com", ["b@example.com"]
    )
    msg.attach_alternative("<p>hi</p>", "text/html")
    msg.attach("x.bin", bytes(range(256)) * 20, "application/octet-stream")
    backend = backend_for(smtp_server)
    assert backend.send_messages([msg]) == 1
    (record,) = smtp_server.handler.wait_for(1)
    expected = msg.message().as_bytes(linesep="\r\n")
    assert normalise(record.data) == normalise(expected)
    (result,) = backend.last_results
    assert result.message_id.encode() in record.data
    assert result.size == len(record.data)  # exact, announced with SIZE before sending
    assert result.code == 250


def test_idn_and_unicode_addresses_are_encoded_on_the_wire(smtp_server):
    msg = EmailMessage("s", "b", "Jörg <from@bücher.example>", ["to@münchen.example"])
    assert backend_for(smtp_server).send_messages([msg]) == 1
    (record,) = smtp_server.handler.wait_for(1)
    assert record.mail_from == "from@xn--bcher-kva.example"
    assert record.rcpt_tos == ["to@xn--mnchen-3ya.example"]
    assert b"From: =?utf-8?b?SsO2cmc=?= <from@xn--bcher-kva.example>" in record.data


def test_send_mass_mail_uses_one_connection(smtp_server):
    mailcore.settings.configure(EMAIL_HOST=smtp_server.host, EMAIL_PORT=smtp_server.port)
    datatuple = [
        (f"Subject {i}", f"Body {i}", "from@example.com", [f"to{i}@example.com"]) for i in range(25)
    ]
    assert send_mass_mail(datatuple) == 25
    records = smtp_server.handler.wait_for(25)
    assert smtp_server.connections == 1
    assert [r.rcpt_tos for r in records] == [[f"to{i}@example.com"] for i in range(25)]


@pytest.mark.parametrize("pipelining", [False, True])
def test_send_messages_reuses_an_open_connection(pipelining):
    with SMTPServer("plain", pipelining=pipelining) as server:
        backend = backend_for(server)
        assert backend.open() is True
        assert backend.open() is False
        messages = [
            EmailMessage(f"m{i}", "b", "f@example.com", ["t@example.com"]) for i in range(3)
        ]
        assert backend.send_messages(messages[:2]) == 2
        assert backend.connection is not None  # not closed: it was open before
        assert backend.send_messages(messages[2:]) == 1
        backend.close()
        assert backend.connection is None
        server.handler.wait_for(3)
        assert server.connections == 1


def test_context_manager_opens_and_closes(smtp_server):
    with get_connection(host=smtp_server.host, port=smtp_server.port) as connection:
        assert connection.connection is not None
        EmailMessage("a", "b", "f@example.com", ["t@example.com"], connection=connection).send()
        EmailMessage("c", "d", "f@example.com", ["t@example.com"], connection=connection).send()
    assert connection.connection is None
    smtp_server.handler.wait_for(2)
    assert smtp_server.connections == 1


def test_send_messages_closes_a_connection_it_opened(smtp_server):
    backend = backend_for(smtp_server)
    assert backend.send_messages([EmailMessage("s", "b", "f@example.com", ["t@example.com"])]) == 1
    assert backend.connection is None


def test_starttls_with_auth_and_private_ca(starttls_server, certs):
    backend = backend_for(
        starttls_server,
        use_tls=True,
        username=TEST_USER,
        password=TEST_PASSWORD,
        ssl_cafile=certs.ca_file,
    )
    assert (
        backend.send_messages([EmailMessage("tls", "b", "f@example.com", ["t@example.com"])]) == 1
    )
    (record,) = starttls_server.handler.wait_for(1)
    assert record.session_tls is True
    assert record.auth_login == TEST_USER


def test_private_ca_from_settings(starttls_server, certs):
    mailcore.settings.configure(
        EMAIL_HOST=starttls_server.host,
        EMAIL_PORT=starttls_server.port,
        EMAIL_USE_TLS=True,
        EMAIL_HOST_USER=TEST_USER,
        EMAIL_HOST_PASSWORD=TEST_PASSWORD,
        EMAIL_SSL_CAFILE=certs.ca_file,
    )
    assert send_mail("s", "b", "f@example.com", ["t@example.com"]) == 1
    (record,) = starttls_server.handler.wait_for(1)
    assert record.session_tls and record.auth_login == TEST_USER


def test_implicit_tls_with_auth(tls_server, certs):
    backend = backend_for(
        tls_server,
        use_ssl=True,
        username=TEST_USER,
        password=TEST_PASSWORD,
        ssl_cafile=certs.ca_file,
    )
    assert (
        backend.send_messages([EmailMessage("ssl", "b", "f@example.com", ["t@example.com"])]) == 1
    )
    (record,) = tls_server.handler.wait_for(1)
    assert record.session_tls is True
    assert record.auth_login == TEST_USER


def test_client_certificate(certs):
    with SMTPServer("tls", certs=certs, require_client_cert=True) as server:
        backend = backend_for(
            server,
            use_ssl=True,
            ssl_cafile=certs.ca_file,
            ssl_certfile=certs.client_cert_file,
            ssl_keyfile=certs.client_key_file,
        )
        assert (
            backend.send_messages([EmailMessage("c", "b", "f@example.com", ["t@example.com"])]) == 1
        )
        (record,) = server.handler.wait_for(1)
        assert record.peer_cert


def test_plain_auth_to_loopback_is_allowed(smtp_auth_server):
    backend = backend_for(smtp_auth_server, username=TEST_USER, password=TEST_PASSWORD)
    assert backend.send_messages([EmailMessage("s", "b", "f@example.com", ["t@example.com"])]) == 1
    (record,) = smtp_auth_server.handler.wait_for(1)
    assert record.auth_login == TEST_USER


def test_tls_and_ssl_are_mutually_exclusive():
    with pytest.raises(ValueError, match="mutually exclusive"):
        EmailBackend(use_tls=True, use_ssl=True)


@pytest.mark.parametrize("pipelining", [False, True])
def test_one_refused_recipient_among_several(pipelining):
    """As in Django (and smtplib.sendmail), the message goes to the others; the
    refusal is reported in last_results."""
    with SMTPServer(
        "plain", pipelining=pipelining, refuse_rcpt={"bad@example.com": "550 5.1.1 No such user"}
    ) as server:
        backend = backend_for(server)
        msg = EmailMessage(
            "s", "b", "f@example.com", ["ok@example.com", "bad@example.com", "ok2@example.com"]
        )
        assert backend.send_messages([msg]) == 1
        (record,) = server.handler.wait_for(1)
        assert record.rcpt_tos == ["ok@example.com", "ok2@example.com"]
        (result,) = backend.last_results
        assert result.refused == {"bad@example.com": (550, b"5.1.1 No such user")}
        assert result.recipients == ["ok@example.com", "ok2@example.com"]


@pytest.mark.parametrize("pipelining", [False, True])
def test_refusals_in_the_middle_of_a_mass_send(pipelining):
    """With PIPELINING, a message whose recipients are all refused raises and
    the connection stays in step for the next messages."""
    with SMTPServer(
        "plain", pipelining=pipelining, refuse_rcpt={"bad@example.com": "550 5.1.1 No such user"}
    ) as server:
        backend = backend_for(server)
        backend.open()
        good = [
            EmailMessage(f"g{i}", "b", "f@example.com", [f"ok{i}@example.com"]) for i in range(3)
        ]
        bad = EmailMessage("bad", "b", "f@example.com", ["bad@example.com"])
        assert backend.send_messages(good[:2]) == 2
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            backend.send_messages([bad])
        assert "bad@example.com" in caught.value.recipients
        assert backend.send_messages(good[2:]) == 1
        backend.close()
        records = server.handler.wait_for(3)
        assert [r.rcpt_tos for r in records] == [
            ["ok0@example.com"],
            ["ok1@example.com"],
            ["ok2@example.com"],
        ]
        assert server.connections == 1


def test_pipelining_sends_one_round_trip_for_the_envelope():
    from tests.support.servers import ScriptedServer

    with ScriptedServer() as server:
        backend = EmailBackend(host=server.host, port=server.port, timeout=5)
        msg = EmailMessage("s", "b", "f@example.com", ["a@example.com", "b@example.com"])
        assert backend.send_messages([msg]) == 1
        commands = [c.split(b":")[0].split(b" ")[0].upper() for c in server.commands]
        assert commands[:5] == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA"]
        assert b"SIZE=" in server.commands[1].upper()


def test_transcript_redacts_auth_and_summarises_data(starttls_server, certs):
    lines = []
    backend = backend_for(
        starttls_server,
        use_tls=True,
        username=TEST_USER,
        password=TEST_PASSWORD,
        ssl_cafile=certs.ca_file,
        transcript=lambda event, text: lines.append((event, text)),
    )
    assert (
        backend.send_messages(
            [EmailMessage("t", "secret body text", "f@example.com", ["t@example.com"])]
        )
        == 1
    )
    text = "\n".join(f"{e} {t}" for e, t in lines)
    assert TEST_PASSWORD not in text
    import base64

    for secret in (
        TEST_PASSWORD,
        base64.b64encode(TEST_PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{TEST_USER}\0{TEST_PASSWORD}".encode()).decode(),
    ):
        assert secret not in text
    assert "AUTH" in text and "********" in text
    assert any(e == "tls" for e, _ in lines)
    assert "secret body text" not in text
    assert any(e == "data" and "bytes of message content" in t for e, t in lines)
    assert ("client", "quit") in lines
