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


# -- many messages over a pipelining server: one round trip each ----------------


def _reject_subject(subject: str, reply: str):
    def decide(record):
        return reply if f"Subject: {subject}\r\n".encode() in record.data else None

    return decide


def _subjects(records):
    return [r.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for r in records]


def test_pipelined_batch_delivers_everything_in_order():
    with SMTPServer("plain", pipelining=True) as server:
        backend = backend_for(server)
        messages = [
            EmailMessage(f"m{i}", f"body {i}\n.dot\n", "f@example.com", [f"t{i}@example.com"])
            for i in range(50)
        ]
        assert backend.send_messages(messages) == 50
        records = server.handler.wait_for(50)
        assert _subjects(records) == [f"m{i}" for i in range(50)]
        assert all(r.data.endswith(b"\r\n.dot\r\n") for r in records)
        assert [r.message_id for r in backend.last_results] == [
            r.data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for r in records
        ]
        assert server.connections == 1


def test_pipelined_batch_refused_recipients_in_the_middle():
    with SMTPServer(
        "plain", pipelining=True, refuse_rcpt={"bad@example.com": "550 5.1.1 No such user"}
    ) as server:
        backend = backend_for(server)
        backend.open()
        batch = [
            EmailMessage("one", "b", "f@example.com", ["a@example.com"]),
            EmailMessage("two", "b", "f@example.com", ["bad@example.com"]),
            EmailMessage("three", "b", "f@example.com", ["c@example.com"]),
        ]
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            backend.send_messages(batch)
        assert backend.connection is not None  # the refusal left the connection in step
        backend.fail_silently = True
        assert backend.send_messages(batch) == 2
        backend.close()
        assert _subjects(server.handler.wait_for(3)) == ["one", "one", "three"]
        assert server.connections == 1


def test_pipelined_batch_rejected_content_in_the_middle():
    """When message 2's content is refused after message 3's DATA was already
    accepted, the connection is closed: message 3 is never half-delivered."""
    with SMTPServer(
        "plain", pipelining=True, data_reply=_reject_subject("two", "552 5.3.4 Too big")
    ) as server:
        backend = backend_for(server)
        batch = [
            EmailMessage(s, "b", "f@example.com", ["a@example.com"])
            for s in ("one", "two", "three")
        ]
        with pytest.raises(smtplib.SMTPDataError) as caught:
            backend.send_messages(batch)
        assert caught.value.smtp_code == 552
        assert backend.connection is None
        assert _subjects(server.handler.wait_for(1)) == ["one"]
        assert (
            backend.send_messages([EmailMessage("four", "b", "f@example.com", ["a@example.com"])])
            == 1
        )
        server.handler.wait_for(2)
        assert _subjects(server.handler.messages) == ["one", "four"]
        backend.fail_silently = True
        assert backend.send_messages(batch) == 2
        assert _subjects(server.handler.wait_for(4)) == ["one", "four", "one", "three"]


def test_pipelined_batch_invalid_address_stops_after_the_ones_before():
    with SMTPServer("plain", pipelining=True) as server:
        backend = backend_for(server, fail_silently=True)
        batch = [
            EmailMessage("one", "b", "f@example.com", ["a@example.com"]),
            EmailMessage("two", "b", "f@example.com", ["b@example.com"]),
            EmailMessage("three", "b", "f@example.com", ["not@valid@example.com"]),
            EmailMessage("four", "b", "f@example.com", ["d@example.com"]),
        ]
        with pytest.raises(ValueError, match="Invalid address"):
            backend.send_messages(batch)
        assert _subjects(server.handler.wait_for(2)) == ["one", "two"]


def test_pipelined_batch_skips_messages_without_recipients():
    with SMTPServer("plain", pipelining=True) as server:
        backend = backend_for(server)
        batch = [
            EmailMessage("one", "b", "f@example.com", ["a@example.com"]),
            EmailMessage("nobody", "b", "f@example.com", []),
            EmailMessage("three", "b", "f@example.com", ["c@example.com"]),
        ]
        assert backend.send_messages(batch) == 2
        assert _subjects(server.handler.wait_for(2)) == ["one", "three"]


def test_pipelined_batch_streams_file_attachments(tmp_path):
    import hashlib
    import os

    with SMTPServer("plain", pipelining=True) as server:
        paths = []
        for i in range(3):
            path = tmp_path / f"f{i}.bin"
            path.write_bytes(os.urandom(300_000 + i))
            paths.append(path)
        batch = []
        for path in paths:
            msg = EmailMessage(path.name, "b", "f@example.com", ["a@example.com"])
            msg.attach_file(path)
            batch.append(msg)
        assert backend_for(server).send_messages(batch) == 3
        for record, path in zip(server.handler.wait_for(3), paths):
            (part,) = [p for p in record.message().walk() if p.get_filename() == path.name]
            assert (
                hashlib.sha256(part.get_content()).digest()
                == hashlib.sha256(path.read_bytes()).digest()
            )


def test_transcript_data_gives_every_content_line(smtp_server):
    events = []
    backend = backend_for(
        smtp_server, transcript=lambda e, t: events.append((e, t)), transcript_data=True
    )
    msg = EmailMessage("s", "one\ntwo\n", "f@example.com", ["t@example.com"])
    assert backend.send_messages([msg]) == 1
    content = [t for e, t in events if e == "content"]
    (record,) = smtp_server.handler.wait_for(1)
    assert content == record.data.decode().split("\r\n")[:-1]


def test_a_message_that_cannot_be_prepared_raises_with_or_without_pipelining(tmp_path):
    """A missing attachment is the message's fault, not the connection's: raised whatever
    fail_silently says (as Django raises from message()), after the messages before it."""
    from mailcore.message import FileContent

    for pipelining in (False, True):
        with SMTPServer("plain", pipelining=pipelining) as server:
            gone = EmailMessage("gone", "b", "f@example.com", ["t@example.com"])
            gone.attach("gone.bin", FileContent(tmp_path / "never-there.bin"),
                        "application/octet-stream")
            batch = [EmailMessage(f"m{i}", "b", "f@example.com", ["t@example.com"])
                     for i in range(2)]
            b = backend_for(server, fail_silently=True)
            with pytest.raises(FileNotFoundError):
                b.send_messages([batch[0], gone, batch[1]])
            assert [m.message()["Subject"] for m in server.messages] == ["m0"], pipelining


def test_only_crlf_serialisations_go_on_the_wire(smtp_server):
    from mailcore.smtp import SMTP
    from mailcore.wire import serialize

    msg = EmailMessage("s", "line1\n.\nQUIT\n", "f@example.com", ["t@example.com"])
    with SMTP(smtp_server.host, smtp_server.port, timeout=5) as conn:
        with pytest.raises(ValueError, match="CRLF"):
            conn.send_serialized("f@example.com", ["t@example.com"], serialize(msg, linesep="\n"))
        reply = conn.send_serialized("f@example.com", ["t@example.com"], serialize(msg))
        assert reply.code == 250
    (record,) = smtp_server.handler.wait_for(1)
    assert record.data.endswith(b"line1\r\n.\r\nQUIT\r\n")  # dot-stuffed on the wire, kept


def test_cram_md5_refused_falls_back_to_plain_but_a_refused_plain_is_final():
    """Servers that keep only a hash of the password answer CRAM-MD5 with 535 and accept
    PLAIN (smtplib goes on, so does mailcore); a 535 to PLAIN means the password is wrong,
    and trying LOGIN with it would only count one more failure towards a lockout."""
    import base64

    from tests.support.servers import ScriptedServer

    class AuthServer(ScriptedServer):
        def __init__(self, password: str) -> None:
            super().__init__(replies={"EHLO": ["250-localhost", "250 AUTH CRAM-MD5 PLAIN LOGIN"]})
            self.password = password
            self.auth: list[str] = []

        def handle(self, conn, peer):  # noqa: ANN001
            self._send(conn, self.greeting)
            rfile = conn.makefile("rb")
            while line := rfile.readline():
                words = line.decode().split()
                verb = words[0].upper() if words else ""
                if verb == "AUTH":
                    self.auth.append(words[1].upper())
                    if words[1].upper() == "CRAM-MD5":
                        self._send(conn, "334 " + base64.b64encode(b"<1@localhost>").decode())
                        rfile.readline()
                        self._send(conn, "535 5.7.8 CRAM-MD5 not possible for this account")
                    else:
                        secret = base64.b64decode(words[2]).split(b"\0")[-1].decode()
                        ok = secret == self.password
                        self._send(conn, "235 2.7.0 OK" if ok else "535 5.7.8 Bad credentials")
                elif verb == "QUIT":
                    self._send(conn, "221 Bye")
                    return
                else:
                    self._send(conn, self.replies.get(verb, "250 OK"))

    from mailcore.smtp import SMTP

    with AuthServer("right") as server:
        with SMTP(server.host, server.port, timeout=5) as conn:
            assert conn.login("u", "right")[0] == 235
        assert server.auth == ["CRAM-MD5", "PLAIN"]
        server.auth.clear()
        with SMTP(server.host, server.port, timeout=5) as conn:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                conn.login("u", "wrong")
        assert server.auth == ["CRAM-MD5", "PLAIN"]  # not LOGIN with the same wrong password


def test_pipelined_batch_with_an_smtputf8_message_in_the_middle():
    """A message that needs SMTPUTF8, to a server without it, in the middle of a pipelined
    batch (its commands are made while the message before is answered): it alone is refused,
    before anything of it is written; the ones around it go."""
    from mailcore.errors import SMTPUTF8RequiredError

    with SMTPServer("plain", pipelining=True, enable_SMTPUTF8=False) as server:
        backend = backend_for(server)
        batch = [
            EmailMessage("one", "b", "f@example.com", ["a@example.com"]),
            EmailMessage("two", "b", "f@example.com", ["jörg@example.com"]),
            EmailMessage("three", "b", "f@example.com", ["c@example.com"]),
        ]
        with pytest.raises(SMTPUTF8RequiredError):
            backend.send_messages(batch)
        assert _subjects(server.handler.wait_for(1)) == ["one"]
        backend.fail_silently = True
        assert backend.send_messages(batch) == 2
        assert _subjects(server.handler.wait_for(3)) == ["one", "one", "three"]
        assert [r.recipients for r in backend.last_results] == [["a@example.com"],
                                                               ["c@example.com"]]


@pytest.mark.parametrize("seed", range(40))
def test_content_made_ahead_is_what_write_content_writes(seed):
    """The pipelined send makes a small message's dot-stuffed content while the server
    answers the message before; it is byte for byte what _write_content returns, for pieces
    cut anywhere (a dot, a CR, an LF at either side of a cut)."""
    import random
    import socket

    from mailcore.smtp import SMTP, _small_content
    from mailcore.wire import Serialized

    rng = random.Random(seed)
    alphabet = [b".", b"\r", b"\n", b"\r\n", b"\r\n.", b"a", b"..", b"\n."]
    pieces = [b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
              for _ in range(rng.randrange(1, 6))]
    if seed == 0:
        pieces = [b""]
    if seed == 1:
        pieces = [b"x" * 70000]  # over the write size: written as it goes, not made ahead
    data = Serialized(pieces, [], "\r\n")
    client = SMTP()
    client.sock = socket.socket()  # never written to: the content is returned, not sent
    try:
        expected = client._write_content(data) if seed != 1 else None
    finally:
        client.sock.close()
        client.sock = None
    assert _small_content(data) == expected


def test_content_is_made_ahead_only_from_a_plain_serialized():
    """A Serialized whose chunks are produced otherwise (a subclass's stuffable_chunks, a
    spool file piece, an object of another class) is written by _write_content as it goes."""
    from mailcore.smtp import _small_content
    from mailcore.wire import Serialized

    class Shouting(Serialized):
        def stuffable_chunks(self):
            for chunk, flag in super().stuffable_chunks():
                yield chunk.upper(), flag

    class Duck:
        size = 3
        linesep = "\r\n"

    assert _small_content(Serialized([b"hi\r\n"], [], "\r\n")) == b"hi\r\n.\r\n"
    assert _small_content(Shouting([b"hi\r\n"], [], "\r\n")) is None
    assert _small_content(Duck()) is None
