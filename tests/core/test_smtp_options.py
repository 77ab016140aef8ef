"""The SMTP backend's protocol options (issue 15) against real servers on 127.0.0.1:
auth_mechanism, SMTPUTF8 and 8BITMIME in the envelope, IDNA domains, LMTP, quit_after,
local_hostname and helo."""

from __future__ import annotations

import smtplib

import pytest

from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailcore.errors import (
    Kind,
    SMTPAuthNotSupportedError,
    SMTPUTF8RequiredError,
    Stage,
    classify,
)
from mailcore.smtp import SMTP
from mailcore.wire import serialize
from tests.support.servers import TEST_PASSWORD, TEST_USER, ScriptedServer, SMTPServer

JORG = "j\u00f6rg@example.test"  # a non-ASCII local part


def backend_for(server, **kwargs) -> EmailBackend:
    lines: list[tuple[str, str]] = []
    kwargs.setdefault("transcript", lambda event, text: lines.append((event, text)))
    backend = EmailBackend(host=server.host, port=server.port, timeout=5, **kwargs)
    backend.lines = lines  # type: ignore[attr-defined]
    return backend


def client_lines(backend) -> list[str]:
    return [text for event, text in backend.lines if event == "client"]


# -- auth_mechanism ----------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_auth_mechanism_forces_the_one_asked_for(mechanism):
    with SMTPServer("plain", auth={TEST_USER: TEST_PASSWORD}) as server:
        backend = backend_for(server, username=TEST_USER, password=TEST_PASSWORD,
                              auth_mechanism=mechanism.lower())
        assert backend.send_messages([EmailMessage("s", "b", "a@example.com",
                                                   ["b@example.com"])]) == 1
        assert server.handler.login_attempts == [(mechanism, TEST_USER, True)]
        assert f"AUTH {mechanism} ********" in client_lines(backend) or (
            f"AUTH {mechanism}" in client_lines(backend))
        assert TEST_PASSWORD not in repr(backend.lines)


def test_auth_mechanism_not_offered_names_what_the_server_offers():
    with SMTPServer("plain", auth={TEST_USER: TEST_PASSWORD}) as server:
        backend = backend_for(server, username=TEST_USER, password=TEST_PASSWORD,
                              auth_mechanism="CRAM-MD5")
        with pytest.raises(SMTPAuthNotSupportedError) as info:
            backend.send_messages([EmailMessage("s", "b", "a@example.com", ["b@example.com"])])
        assert "CRAM-MD5" in str(info.value)
        assert "LOGIN PLAIN" in str(info.value)
        assert info.value.mechanisms == ("LOGIN", "PLAIN")
        assert classify(info.value).kind is Kind.AUTH_UNAVAILABLE
        assert server.handler.login_attempts == []
        assert not any(line.upper().startswith("AUTH") for line in client_lines(backend))
        assert server.messages == []


def test_auth_mechanism_checked_when_the_backend_is_made():
    with pytest.raises(ValueError, match="one of"):
        EmailBackend(auth_mechanism="DIGEST-MD5")
    with pytest.raises(ValueError, match="oauth_token"):
        EmailBackend(username="u", password="p", auth_mechanism="XOAUTH2")
    with pytest.raises(ValueError, match="password"):
        EmailBackend(username="u", oauth_token="t", auth_mechanism="PLAIN")


# -- SMTPUTF8, IDNA, 8BITMIME -------------------------------------------------------------------


def test_smtputf8_offered_the_local_part_goes_as_utf8():
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        backend = backend_for(server)
        msg = EmailMessage("s", "b", "from@example.test", ["to@example.test"], bcc=[JORG])
        assert backend.send_messages([msg]) == 1
        (record,) = server.wait_for(1)
        assert record.rcpt_tos == ["to@example.test", JORG]
        assert "SMTPUTF8" in [o.upper() for o in record.mail_options]
        assert record.smtp_utf8 is True
        assert b"=?utf-8?" not in record.data  # (the Bcc is not in the headers)
        mail = next(line for line in client_lines(backend) if line.lower().startswith("mail"))
        assert mail.endswith("SMTPUTF8")
        assert f"<{JORG}>" in " ".join(client_lines(backend))
        assert backend.last_results[0].recipients == ["to@example.test", JORG]


def test_smtputf8_sender_as_the_server_sees_it():
    """The client alone, with a UTF-8 sender (the header side is mailcore.message's)."""
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        data = serialize(EmailMessage("s", "b", "a@example.test", ["b@example.test"]))
        client = SMTP(server.host, server.port, timeout=5)
        try:
            client.send_serialized(JORG, ["m\u00fcller@example.test"], data)
        finally:
            client.quit()
        (record,) = server.wait_for(1)
        assert record.mail_from == JORG
        assert record.rcpt_tos == ["m\u00fcller@example.test"]
        assert record.smtp_utf8 is True


def test_smtputf8_not_offered_is_an_error_before_mail_and_nothing_is_sent():
    with SMTPServer("plain", enable_SMTPUTF8=False, pipelining=True) as server:
        backend = backend_for(server)
        first = EmailMessage("one", "b", "from@example.test", ["to@example.test"])
        second = EmailMessage("two", "b", "from@example.test", ["to@example.test"], bcc=[JORG])
        with pytest.raises(SMTPUTF8RequiredError) as info:
            backend.send_messages([first, second])
        error = info.value
        assert isinstance(error, smtplib.SMTPNotSupportedError)
        assert error.address == JORG and error.role == "recipient"
        assert error.server == f"{server.host}:{server.port}"
        assert JORG in str(error) and f"{server.host}:{server.port}" in str(error)
        assert "SMTPUTF8" in str(error) and "nothing was sent" in str(error)
        failure = classify(error)
        assert failure.kind is Kind.NOT_SUPPORTED and failure.stage is Stage.MAIL
        assert failure.reason == "smtputf8" and failure.address == JORG
        # the message before it went; of this one, not even MAIL was written
        assert [m.message()["Subject"] for m in server.wait_for(1)] == ["one"]
        mails = [line for line in client_lines(backend) if line.lower().startswith("mail")]
        assert len(mails) == 1
        assert not any("\u00f6" in line or "=?" in line for line in client_lines(backend))


def test_smtputf8_not_offered_fail_silently_goes_on_with_the_next_message():
    with SMTPServer("plain", enable_SMTPUTF8=False) as server:
        backend = backend_for(server, fail_silently=True)
        msgs = [EmailMessage("utf8", "b", "from@example.test", [JORG]),
                EmailMessage("ascii", "b", "from@example.test", ["to@example.test"])]
        assert backend.send_messages(msgs) == 1
        (record,) = server.wait_for(1)
        assert record.rcpt_tos == ["to@example.test"]


def test_idna_domain_stays_punycode_without_smtputf8():
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        backend = backend_for(server)
        msg = EmailMessage("s", "b", "from@example.test", ["bob@ex\u00e4mple.test"])
        assert backend.send_messages([msg]) == 1
        (record,) = server.wait_for(1)
        assert record.rcpt_tos == ["bob@xn--exmple-cua.test"]
        assert "SMTPUTF8" not in [o.upper() for o in record.mail_options]
        assert record.smtp_utf8 is False


def test_utf8_local_part_with_idna_domain():
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        backend = backend_for(server)
        msg = EmailMessage("s", "b", "from@example.test", ["to@example.test"],
                           bcc=[("J\u00f6rg", "j\u00f6rg@ex\u00e4mple.test")])
        assert backend.send_messages([msg]) == 1
        (record,) = server.wait_for(1)
        assert record.rcpt_tos[1] == "j\u00f6rg@xn--exmple-cua.test"


def test_a_quoted_non_ascii_local_part_stays_quoted():
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        backend = backend_for(server)
        msg = EmailMessage("s", "b", "from@example.test", ["to@example.test"],
                           bcc=['"j\u00f6 rg"@example.test'])
        assert backend.send_messages([msg]) == 1
        assert server.wait_for(1)[0].rcpt_tos[1] == '"j\u00f6 rg"@example.test'


def test_a_control_character_in_a_utf8_local_part_is_refused_before_anything_is_sent():
    with SMTPServer("plain", enable_SMTPUTF8=True) as server:
        backend = backend_for(server)
        msg = EmailMessage("s", "b", "from@example.test", ["to@example.test"],
                           bcc=["j\u00f6\u202erg@example.test"])  # a bidi override
        with pytest.raises(ValueError, match="Invalid address"):
            backend.send_messages([msg])
        assert server.messages == []
        assert not any(line.lower().startswith("mail") for line in client_lines(backend))


@pytest.mark.parametrize("body, eight_bit", [("b\u00f6dy\n", True), ("body\n", False)])
def test_body_8bitmime_for_8bit_content_only(body, eight_bit):
    with SMTPServer("plain") as server:
        backend = backend_for(server)
        assert backend.send_messages([EmailMessage("s", body, "a@example.test",
                                                   ["b@example.test"])]) == 1
        (record,) = server.wait_for(1)
        assert ("BODY=8BITMIME" in [o.upper() for o in record.mail_options]) is eight_bit
        assert (b"Content-Transfer-Encoding: 8bit" in record.data) is eight_bit


def test_no_body_8bitmime_when_the_server_does_not_offer_it():
    ehlo = ["250-localhost", "250 SIZE 10485760"]
    with ScriptedServer(replies={"EHLO": ehlo}) as server:
        backend = backend_for(server)
        assert backend.send_messages([EmailMessage("s", "b\u00f6dy", "a@example.test",
                                                   ["b@example.test"])]) == 1
        mail = next(c for c in server.commands if c.upper().startswith(b"MAIL"))
        assert b"BODY=" not in mail.upper()


# -- LMTP --------------------------------------------------------------------------------------


def _per_recipient(refused: dict[str, str]):
    def reply(record):
        return "\r\n".join(refused.get(r, "250 2.0.0 delivered") for r in record.rcpt_tos)
    return reply


def test_lmtp_one_recipient_refused_after_data():
    refusal = "552 5.2.2 bob's mailbox is full"
    with SMTPServer("plain", lmtp=True,
                    data_reply=_per_recipient({"bob@example.test": refusal})) as server:
        backend = backend_for(server, protocol="lmtp")
        msg = EmailMessage("s", "b", "a@example.test", ["ann@example.test", "bob@example.test",
                                                        "cy@example.test"])
        assert backend.send_messages([msg]) == 1
        (result,) = backend.last_results
        assert result.recipients == ["ann@example.test", "cy@example.test"]
        assert result.refused == {"bob@example.test": (552, b"5.2.2 bob's mailbox is full")}
        assert result.code == 250
        assert client_lines(backend)[0].lower().startswith("lhlo ")
        servers = [text for event, text in backend.lines if event == "server"]
        assert "552 5.2.2 bob's mailbox is full" in servers


def test_lmtp_all_recipients_refused_after_data():
    refusal = "550 5.1.1 no such user"
    with SMTPServer("plain", lmtp=True, data_reply=_per_recipient(
            {"a@example.test": refusal, "b@example.test": refusal})) as server:
        backend = backend_for(server, protocol="lmtp")
        msgs = [EmailMessage("1", "b", "x@example.test", ["a@example.test", "b@example.test"]),
                EmailMessage("2", "b", "x@example.test", ["ok@example.test"])]
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            backend.send_messages(msgs)
        assert set(info.value.recipients) == {"a@example.test", "b@example.test"}
        backend.fail_silently = True
        assert backend.send_messages(msgs) == 1
        assert backend.last_results[0].recipients == ["ok@example.test"]


def test_lmtp_pipelined_per_recipient_replies():
    with SMTPServer("plain", lmtp=True, pipelining=True, data_reply=_per_recipient(
            {"b@example.test": "450 4.2.1 try later"})) as server:
        backend = backend_for(server, protocol="lmtp")
        msgs = [EmailMessage(str(i), "b", "x@example.test", ["a@example.test", "b@example.test"])
                for i in range(3)]
        assert backend.send_messages(msgs) == 3
        assert [r.refused for r in backend.last_results] == [
            {"b@example.test": (450, b"4.2.1 try later")}] * 3
        assert [r.recipients for r in backend.last_results] == [["a@example.test"]] * 3


# -- quit_after --------------------------------------------------------------------------------


def _scripted(**replies):
    ehlo = ["250-localhost", "250-AUTH PLAIN LOGIN", "250-8BITMIME", "250 SIZE 10485760"]
    return ScriptedServer(replies={"EHLO": ehlo, "AUTH": "235 2.7.0 OK", **replies})


@pytest.mark.parametrize("stage, expected", [
    ("connect", []),
    ("banner", []),
    ("ehlo", [b"EHLO"]),
    ("helo", [b"EHLO"]),
    ("tls", [b"EHLO"]),  # no STARTTLS asked: where TLS would be
    ("auth", [b"EHLO", b"AUTH"]),
    ("mail", [b"EHLO", b"AUTH", b"MAIL"]),
    ("rcpt", [b"EHLO", b"AUTH", b"MAIL", b"RCPT", b"RCPT"]),
])
def test_quit_after_each_stage(stage, expected):
    with _scripted() as server:
        backend = backend_for(server, username="u", password="p", quit_after=stage)
        msg = EmailMessage("s", "b", "a@example.test", ["b@example.test", "c@example.test"])
        assert backend.send_messages([msg]) == 0
        verbs = [c.split(b" ", 1)[0].upper() for c in server.commands]
        assert verbs == [*expected, b"QUIT"]
        assert server.data == []
        assert backend.last_results == []
        assert backend.connection is None
        assert client_lines(backend)[-1].lower() == "quit"


def test_quit_after_tls_stops_after_starttls_and_the_ehlo_after_it(certs):
    with SMTPServer("starttls", certs=certs, auth={TEST_USER: TEST_PASSWORD}) as server:
        backend = backend_for(server, use_tls=True, ssl_cafile=certs.ca_file,
                              username=TEST_USER, password=TEST_PASSWORD, quit_after="tls")
        assert backend.send_messages([EmailMessage("s", "b", "a@example.test",
                                                   ["b@example.test"])]) == 0
        lines = [t.lower() for t in client_lines(backend)]
        assert lines[0].startswith("ehlo") and lines[1] == "starttls"
        assert lines[2].startswith("ehlo") and lines[3] == "quit"
        assert any(event == "tls" for event, _ in backend.lines)
        assert server.handler.login_attempts == []
        assert server.messages == []


def test_quit_after_rcpt_with_every_recipient_refused_raises():
    with _scripted(RCPT="550 5.1.1 no") as server:
        backend = backend_for(server, quit_after="rcpt")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            backend.send_messages([EmailMessage("s", "b", "a@example.test", ["b@example.test"])])
        assert [c.split(b" ", 1)[0].upper() for c in server.commands][-1] == b"QUIT"


def test_quit_after_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="quit_after"):
        EmailBackend(quit_after="data")


# -- local_hostname, helo ----------------------------------------------------------------------


def test_local_hostname_is_the_ehlo_name():
    with _scripted() as server:
        backend = backend_for(server, local_hostname="client.example.test")
        assert backend.send_messages([EmailMessage("s", "b", "a@example.test",
                                                   ["b@example.test"])]) == 1
        assert server.commands[0] == b"ehlo client.example.test"


def test_helo_instead_of_ehlo_and_no_esmtp_options():
    with _scripted() as server:
        backend = backend_for(server, local_hostname="client.example.test", helo=True)
        assert backend.send_messages([EmailMessage("s", "b\u00f6dy", "a@example.test",
                                                   ["b@example.test"])]) == 1
        assert server.commands[0] == b"helo client.example.test"
        assert not any(c.upper().startswith(b"EHLO") for c in server.commands)
        mail = next(c for c in server.commands if c.upper().startswith(b"MAIL"))
        assert mail == b"mail FROM:<a@example.test>"  # no SIZE, no BODY: HELO has no ESMTP


def test_transcript_events_come_in_order_as_they_happen():
    """Each event is told as it happens, so a caller can stamp it (swaks's time lapses)."""
    import time

    stamped: list[tuple[float, str, str]] = []
    with SMTPServer("plain") as server:
        backend = EmailBackend(host=server.host, port=server.port, timeout=5,
                               transcript=lambda e, t: stamped.append((time.monotonic(), e, t)))
        assert backend.send_messages([EmailMessage("s", "b", "a@example.test",
                                                   ["b@example.test"])]) == 1
    times = [t for t, _, _ in stamped]
    assert times == sorted(times)
    events = [e for _, e, _ in stamped]
    assert events[0] == "connect" and events[-1] == "server"
    texts = [t for _, _, t in stamped]
    assert texts.index("ehlo " + backend._connection_params()["local_hostname"]) < next(
        i for i, t in enumerate(texts) if t.startswith("mail FROM"))
