"""One send path: open() picks the transport once (mailcore's own client, or an smtplib class
put in place, as Django's users do), both answer the same send()/send_many(), and
send_messages() honours fail_silently in its one loop. Then mailcore.wire's fallbacks: each
is a log line with its reason, and under the suite's MAILCORE_STRICT_WIRE=1 a failure of the
fast writer raises. Real aiosmtpd servers on 127.0.0.1; the stand-in is a real smtplib
subclass."""

from __future__ import annotations

import logging
import os
import smtplib
import subprocess
import sys
from collections.abc import Iterator

import pytest

import mailcore
import mailcore.message
import mailcore.wire
from mailcore import BadHeaderError, EmailMessage
from mailcore.backends.smtp import (
    EmailBackend,
    MailcoreTransport,
    SendResult,
    SmtplibTransport,
)
from tests.support.servers import ReceivedMessage, SMTPServer

REFUSED = "nobody@example.com"


class StandInSMTP(smtplib.SMTP):
    """A real smtplib client, put in place as a caller's own connection class."""


class StandInBackend(EmailBackend):
    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return StandInSMTP


def _msg(subject: str, to: str = "to@example.com") -> EmailMessage:
    return EmailMessage(subject, "Body\n", "from@example.com", [to])


@pytest.fixture(params=["mailcore", "mailcore-pipelining", "smtplib"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(kind: str) -> Iterator[SMTPServer]:
    with SMTPServer("plain", pipelining=kind == "mailcore-pipelining",
                    refuse_rcpt={REFUSED: "550 5.1.1 No such user"}) as srv:
        yield srv


def _backend(kind: str, server: SMTPServer, **kwargs: object) -> EmailBackend:
    cls = StandInBackend if kind == "smtplib" else EmailBackend
    return cls(host=server.host, port=server.port, timeout=10, **kwargs)


def test_open_picks_the_transport_once_and_close_forgets_it(kind: str, server: SMTPServer) -> None:
    backend = _backend(kind, server)
    assert backend.transport is None
    assert backend.open() is True
    transport = backend.transport
    expected = SmtplibTransport if kind == "smtplib" else MailcoreTransport
    assert type(transport) is expected
    assert transport is not None and transport.connection is backend.connection
    assert backend.open() is False and backend.transport is transport  # decided once
    backend.close()
    assert backend.transport is None and backend.connection is None


def test_both_transports_send_and_report_alike(kind: str, server: SMTPServer) -> None:
    backend = _backend(kind, server)
    with backend:
        assert backend.transport is not None
        result = backend.transport.send(_msg("one"))
        assert isinstance(result, SendResult)
        assert result.envelope_from == "from@example.com"
        assert result.recipients == ["to@example.com"] and result.refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            backend.transport.send(_msg("two", to=REFUSED))
        assert backend.connection is not None  # a refusal leaves the connection in step
        assert backend.send_messages([_msg("three"), _msg("four")]) == 2
    received: list[ReceivedMessage] = server.handler.wait_for(3)
    subjects = [r.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for r in received]
    assert subjects == [b"one", b"three", b"four"]
    assert result.message_id is not None and result.message_id in received[0].data.decode()


def test_a_refusal_raises_after_the_messages_before_it(kind: str, server: SMTPServer) -> None:
    backend = _backend(kind, server)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        backend.send_messages([_msg("first"), _msg("refused", to=REFUSED), _msg("never")])
    assert REFUSED in caught.value.recipients
    assert [r.recipients for r in backend.last_results] == [["to@example.com"]]
    assert len(server.handler.wait_for(1)) == 1
    assert backend.connection is None  # opened by send_messages, so closed by it


def test_fail_silently_passes_over_a_refusal_and_sends_the_rest(kind: str,
                                                                server: SMTPServer) -> None:
    backend = _backend(kind, server, fail_silently=True)
    sent = backend.send_messages([_msg("first"), _msg("refused", to=REFUSED), _msg("last")])
    assert sent == 2
    assert [r.recipients for r in backend.last_results] == [["to@example.com"]] * 2
    received = server.handler.wait_for(2)
    assert [b"Subject: first" in r.data for r in received] == [True, False]
    assert b"Subject: last" in received[1].data


def test_a_lost_connection_stops_the_batch_and_is_never_reused() -> None:
    def reply(record: ReceivedMessage) -> str | None:
        return "421 4.3.2 Going away" if b"Subject: second" in record.data else None

    for pipelined in (False, True):
        with SMTPServer("plain", pipelining=pipelined, data_reply=reply) as srv:
            backend = EmailBackend(host=srv.host, port=srv.port, timeout=10, fail_silently=True)
            backend.open()
            sent = backend.send_messages([_msg("first"), _msg("second"), _msg("third")])
            assert sent == 1, pipelined
            assert backend.connection is None and backend.transport is None
            assert len(srv.handler.wait_for(1)) == 1
            # the next send connects afresh
            assert backend.send_messages([_msg("after")]) == 1
            backend.close()


def test_a_connection_set_from_outside_gets_its_transport_in_open(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port, timeout=10)
    backend.connection = StandInSMTP(smtp_server.host, smtp_server.port, timeout=10)
    try:
        assert backend.send_messages([_msg("outside")]) == 1
        assert type(backend.transport) is SmtplibTransport
    finally:
        backend.close()
    assert len(smtp_server.handler.wait_for(1)) == 1


# -- mailcore.wire: fallbacks say so; a failure of the fast writer raises under the suite ----


def _fixed(msg: EmailMessage) -> EmailMessage:
    msg.extra_headers.update({"Date": "Tue, 01 Dec 2026 12:00:00 -0000",
                              "Message-ID": "<fixed@example.com>"})
    return msg


def _wire_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mailcore.wire"]


def test_the_suite_runs_the_wire_strict() -> None:
    assert mailcore.wire.STRICT is True  # tests/conftest.py sets MAILCORE_STRICT_WIRE=1


def test_the_fast_path_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailcore.wire")
    mailcore.wire.serialize(_msg("fast"))
    assert _wire_records(caplog) == []


def test_a_deliberate_fallback_is_a_debug_line_with_its_reason(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailcore.wire")
    latin = _fixed(_msg("latin"))
    latin.encoding = "iso-8859-1"
    assert mailcore.wire.serialize(latin).getvalue() == latin.message().as_bytes(
        linesep="\r\n")
    patched = _fixed(_msg("patched"))
    original = patched.message
    patched.message = lambda: original()  # type: ignore[method-assign]
    mailcore.wire.serialize(patched)
    monkeypatch.setattr(mailcore.message, "make_msgid", lambda domain=None: "<p@example.com>")
    mailcore.wire.serialize(_msg("helper"))
    records = _wire_records(caplog)
    assert [r.levelno for r in records] == [logging.DEBUG] * 3
    messages = [r.getMessage() for r in records]
    assert "charset 'iso-8859-1'" in messages[0]
    assert "message() is set on the message" in messages[1]
    assert "mailcore.message.make_msgid is patched" in messages[2]


def test_a_fast_writer_failure_raises_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    bug = RuntimeError("a bug in the fast writer")

    def broken(*args: object) -> object:
        raise bug

    monkeypatch.setattr(mailcore.wire._Writer, "text_headers", broken)
    with pytest.raises(mailcore.wire.WireFallbackError) as caught:
        mailcore.wire.serialize(_msg("strict"))
    assert caught.value.__cause__ is bug


def test_without_strict_a_failure_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> object:
        raise RuntimeError("a bug in the fast writer")

    monkeypatch.setattr(mailcore.wire._Writer, "text_headers", broken)
    monkeypatch.setattr(mailcore.wire, "STRICT", False)
    caplog.set_level(logging.DEBUG, logger="mailcore.wire")
    msg = _fixed(_msg("lenient"))
    assert mailcore.wire.serialize(msg).getvalue() == msg.message().as_bytes(linesep="\r\n")
    (record,) = _wire_records(caplog)
    assert record.levelno == logging.WARNING
    assert "a bug in the fast writer" in record.getMessage()
    assert record.exc_info is not None


def test_a_wrong_message_raises_its_own_error_in_strict_mode() -> None:
    msg = EmailMessage("s", "b", "from@example.com", ["to@example.com"],
                       headers={"X-Broken": "one\ntwo"})
    with pytest.raises(BadHeaderError):
        mailcore.wire.serialize(msg)


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("0", False), ("", False)])
def test_the_strict_switch_is_read_from_the_environment(value: str, strict: bool) -> None:
    env = {**os.environ, "MAILCORE_STRICT_WIRE": value}
    out = subprocess.run(
        [sys.executable, "-c", "import mailcore.wire as w; print(w.STRICT)"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    assert out == str(strict)


def test_processes_a_test_starts_run_the_wire_strict_too() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import mailcore.wire as w; print(w.STRICT)"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    assert out == "True"
