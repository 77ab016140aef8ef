"""Hostile or broken servers on 127.0.0.1: each case ends in its own exception within the
timeout, with the client's memory bounded, and the same backend sends again afterwards.

The time and memory figures are bounds (generous ones), not benchmarks: what they catch is a
client that waits for ever or holds a whole flood in memory.
"""

from __future__ import annotations

import contextlib
import smtplib
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailcore.errors import (
    SMTPAborted,
    SMTPReplyLineTooLongError,
    SMTPReplyTimeoutError,
    SMTPReplyTooLargeError,
    SMTPReplyTooLongError,
    SMTPReplyTooManyLinesError,
    SMTPServiceUnavailableError,
    SMTPTimeoutError,
    SMTPWriteTimeoutError,
)
from mailcore.smtp import MAX_REPLY_BYTES, MAX_REPLY_LINE, MAX_REPLY_LINES, SMTP, AbortHandle
from tests.support.servers import HostileServer, ScriptedServer, SMTPServer

TIMEOUT = 1.0  # the backend's timeout (EMAIL_TIMEOUT) in these tests
SLACK = 1.5  # what a loaded test machine may add to it
MEMORY_BOUND = 4 * 1024 * 1024  # "a few MB"; the floods are endless
BYE = "421 4.3.2 Shutting down for maintenance"


def message(subject: str = "hostile", to: tuple[str, ...] = ("to@example.com",)) -> EmailMessage:
    return EmailMessage(subject, "body", "from@example.com", list(to))


def backend(server, **kwargs) -> EmailBackend:  # noqa: ANN001
    kwargs.setdefault("timeout", TIMEOUT)
    return EmailBackend(host=server.host, port=server.port, **kwargs)


@dataclass
class Measure:
    elapsed: float = 0.0
    peak: int = 0  # bytes: peak of traced memory above what was traced at the start


@contextlib.contextmanager
def measured() -> Iterator[Measure]:
    """Time and peak memory growth (tracemalloc) of the block."""
    result = Measure()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    try:
        yield result
    finally:
        result.elapsed = time.monotonic() - started
        result.peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()


def assert_bounded(m: Measure, timeout: float = TIMEOUT) -> None:
    assert m.elapsed < timeout + SLACK, f"took {m.elapsed:.2f} s with a {timeout} s timeout"
    assert m.peak < MEMORY_BOUND, f"memory grew by {m.peak / 1e6:.1f} MB"


def assert_reused(b: EmailBackend, server: HostileServer, *, batch: int = 1) -> None:
    """The broken connection was dropped; once the server behaves, the same backend sends
    (through open() and send_messages()) on a fresh connection."""
    assert b.connection is None
    server.behaviour = None
    before = len(server.data)
    assert b.open() is True
    sent = b.send_messages([message(f"after {i}") for i in range(batch)])
    b.close()
    assert sent == batch
    assert b"after 0" in server.data[before]


def assert_reused_elsewhere(b: EmailBackend) -> None:
    """The same backend object sends fine once pointed at a healthy aiosmtpd server."""
    assert b.connection is None
    with SMTPServer("plain") as healthy:
        b.host, b.port = healthy.host, healthy.port
        b.username = b.password = ""
        b.use_tls = b.use_ssl = False
        assert b.send_messages([message("after the fault")]) == 1
        (record,) = healthy.handler.wait_for(1)
        assert b"after the fault" in record.data


def options_for(stage: str) -> dict:
    """Backend options that make the client reach ``stage``."""
    if stage == "AUTH":
        return {"username": "alice", "password": "secret"}  # loopback: allowed without TLS
    if stage == "STARTTLS":
        return {"use_tls": True}
    return {}


def server_for(stage: str, behaviour: str, **kwargs) -> HostileServer:  # noqa: ANN003
    return HostileServer(stage, behaviour, auth=stage == "AUTH", starttls=stage == "STARTTLS",
                         **kwargs)


STAGES = ["greeting", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "end of data"]
ENVELOPE = ["MAIL", "RCPT", "DATA", "end of data"]  # where PIPELINING changes the reading


def stages_with_pipelining() -> list:
    return [pytest.param(stage, pipelining, id=f"{stage}-{'pipelined' if pipelining else 'plain'}")
            for stage in STAGES for pipelining in ((False, True) if stage in ENVELOPE else (True,))]


# -- a reply that never ends: the timeout bounds the whole reply -----------------------------


@pytest.mark.parametrize(("stage", "pipelining"), stages_with_pipelining())
def test_a_reply_dripped_one_byte_every_half_second_ends_at_the_timeout(stage, pipelining):
    with server_for(stage, "drip", interval=0.5, pipelining=pipelining) as server:
        b = backend(server, **options_for(stage))
        with measured() as m, pytest.raises(SMTPReplyTimeoutError) as caught:
            b.send_messages([message()])
        # each read gets a byte well within the timeout: only a deadline for the whole
        # reply ends this
        assert_bounded(m)
        assert m.elapsed > TIMEOUT * 0.9
        error = caught.value
        assert isinstance(error, TimeoutError | smtplib.SMTPServerDisconnected)
        assert error.timeout == TIMEOUT and error.received >= 1
        assert "timed out" in str(error)
        assert server.data == [] or stage == "end of data"
        if stage == "STARTTLS":
            assert_reused_elsewhere(b)  # this raw server can't do TLS
        else:
            assert_reused(b, server)


def test_a_drip_is_cut_at_the_timeout_with_fail_silently_too():
    with HostileServer("EHLO", "drip", interval=0.5) as server:
        b = backend(server, fail_silently=True)
        with measured() as m:
            assert b.send_messages([message()]) == 0
        assert_bounded(m)
        assert_reused(b, server)


@pytest.mark.parametrize("stage", ["greeting", "EHLO", "MAIL"])
def test_a_server_that_never_answers_times_out_as_a_timeout(stage):
    """Not as smtplib's "please run connect() first" once the EHLO closed the connection."""
    with HostileServer(stage, "silent") as server:
        b = backend(server)
        with measured() as m, pytest.raises(SMTPReplyTimeoutError) as caught:
            b.send_messages([message()])
        assert_bounded(m)
        assert isinstance(caught.value, SMTPTimeoutError)
        assert "connect() first" not in str(caught.value)
        assert_reused(b, server)


@pytest.mark.parametrize("options", [{}, {"username": "alice", "password": "x"}],
                         ids=["EHLO on the first send", "EHLO in open() before AUTH"])
def test_a_timeout_at_ehlo_surfaces_as_a_timeout(options):
    with HostileServer("EHLO", "silent", auth=True) as server:
        b = backend(server, **options)
        with pytest.raises(SMTPReplyTimeoutError) as caught:
            b.send_messages([message()])
        assert "connect() first" not in str(caught.value)
        if options:  # open() logs in, so it sends the EHLO itself
            with pytest.raises(SMTPReplyTimeoutError):
                b.open()
        assert_reused(b, server)


def test_an_abort_still_wakes_a_send_waiting_on_a_drip():
    with HostileServer("MAIL", "drip", interval=0.2) as server:
        b = backend(server, timeout=30)
        threading.Timer(0.5, b.abort).start()
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPServerDisconnected) as caught:
            b.send_messages([message()])
        assert time.monotonic() - started < 5
        assert isinstance(caught.value, SMTPAborted)
        assert_reused(b, server)


# -- floods: bounded memory ------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["greeting", "EHLO", "MAIL", "end of data"])
@pytest.mark.parametrize(("line", "error"), [
    (b"250-x\r\n", SMTPReplyTooManyLinesError),  # short lines: the line count stops it
    (b"250-" + b"x" * 70 + b"\r\n", SMTPReplyTooLargeError),  # longer ones: the byte count
], ids=["short lines", "long lines"])
def test_endless_250_lines_are_cut_off_with_memory_bounded(stage, line, error):
    with HostileServer(stage, "lines", flood_line=line) as server:
        b = backend(server, timeout=5)
        with measured() as m, pytest.raises(error) as caught:
            b.send_messages([message()])
        assert_bounded(m, timeout=5)
        assert isinstance(caught.value, SMTPReplyTooLongError | smtplib.SMTPServerDisconnected)
        assert caught.value.limit == (MAX_REPLY_LINES if error is SMTPReplyTooManyLinesError
                                      else MAX_REPLY_BYTES)
        # it was a flood: the server wrote at least 1000 lines (and goes on till it sees
        # the connection closed)
        deadline = time.monotonic() + 5
        while server.flooded < 1000 * len(line) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.flooded >= 1000 * len(line)
        assert_reused(b, server)


@pytest.mark.parametrize("stage", ["greeting", "EHLO", "RCPT"])
def test_one_endless_line_is_cut_off_with_memory_bounded(stage):
    with HostileServer(stage, "line") as server:
        b = backend(server, timeout=5)
        with measured() as m, pytest.raises(SMTPReplyLineTooLongError) as caught:
            b.send_messages([message()])
        assert_bounded(m, timeout=5)
        assert caught.value.limit == MAX_REPLY_LINE
        assert_reused(b, server)


def test_the_memory_bound_holds_for_a_long_flood():
    """The issue's case: a server answering EHLO with an endless 250- stream grew the client
    by over 600 MB in seconds. Here the client reads at most about 64 KiB of it."""
    with HostileServer("EHLO", "lines") as server:
        b = backend(server, timeout=5)
        with measured() as m, pytest.raises(SMTPReplyTooLongError):
            b.send_messages([message()])
        assert m.peak < 1024 * 1024, f"memory grew by {m.peak / 1e6:.2f} MB"


def test_limits_at_their_edges_and_settable_per_connection():
    longest = "250 " + "y" * (MAX_REPLY_LINE - 6)  # with CRLF: exactly MAX_REPLY_LINE bytes
    many = [f"250-line{i}" for i in range(MAX_REPLY_LINES - 1)] + ["250 last"]
    with ScriptedServer(replies={"NOOP": longest, "RSET": many, "HELP": [longest + "y"]}) as server:
        client = SMTP(server.host, server.port, timeout=5, local_hostname="localhost")
        assert client.noop() == (250, longest[4:].encode())
        code, text = client.docmd("RSET")
        assert code == 250 and len(text.split(b"\n")) == MAX_REPLY_LINES
        with pytest.raises(SMTPReplyLineTooLongError):
            client.docmd("HELP")
        assert client.sock is None  # closed: the conversation is out of step
        client = SMTP(server.host, server.port, timeout=5, local_hostname="localhost")
        client.max_reply_lines = 10
        with pytest.raises(SMTPReplyTooManyLinesError):
            client.docmd("RSET")


# -- a 421 anywhere: the server's code and text ----------------------------------------------


@pytest.mark.parametrize(("stage", "pipelining"), [
    p for p in stages_with_pipelining() if p.values[0] != "greeting"])
def test_421_at_each_stage_carries_the_servers_code_and_text(stage, pipelining):
    with server_for(stage, BYE, pipelining=pipelining) as server:
        b = backend(server, **options_for(stage))
        with measured() as m, pytest.raises(SMTPServiceUnavailableError) as caught:
            b.send_messages([message()])
        assert_bounded(m)
        error = caught.value
        assert (error.smtp_code, error.smtp_error) == (421, b"4.3.2 Shutting down for maintenance")
        assert error.command == stage
        assert isinstance(error, smtplib.SMTPResponseException | smtplib.SMTPServerDisconnected)
        assert "Connection unexpectedly closed" not in str(error)
        assert "connect() first" not in str(error)
        if stage != "end of data":
            assert server.data == []
        if stage == "STARTTLS":
            assert_reused_elsewhere(b)
        else:
            assert_reused(b, server)


@pytest.mark.parametrize("pipelining", [False, True])
def test_421_at_the_second_rcpt_names_that_recipient(pipelining):
    with HostileServer("RCPT", BYE, nth=2, pipelining=pipelining) as server:
        b = backend(server)
        with pytest.raises(SMTPServiceUnavailableError) as caught:
            b.send_messages([message(to=("a@example.com", "b@example.com"))])
        assert caught.value.command == "RCPT" and caught.value.recipient == "b@example.com"
        assert server.data == []
        assert_reused(b, server)


@pytest.mark.parametrize("pipelining", [False, True])
def test_421_after_the_second_message_of_a_batch(pipelining):
    with HostileServer("end of data", BYE, nth=2, pipelining=pipelining) as server:
        b = backend(server)
        with pytest.raises(SMTPServiceUnavailableError) as caught:
            b.send_messages([message(f"batch {i}") for i in range(3)])
        assert caught.value.command == "end of data"
        assert [r.code for r in b.last_results] == [250]  # the first was delivered
        assert len(server.data) == 2  # the third was never sent
        b.fail_silently = True
        server.behaviour, server.nth = BYE, 1
        assert b.send_messages([message("quiet")]) == 0
        b.fail_silently = False
        assert_reused(b, server, batch=3)


def test_a_command_after_a_421_raises_the_421_not_connect_first():
    with ScriptedServer(replies={"NOOP": BYE}) as server:
        client = SMTP(server.host, server.port, timeout=5, local_hostname="localhost")
        assert client.noop()[0] == 421
        assert client.sock is None  # the server closes after a 421: so does the client
        with pytest.raises(SMTPServiceUnavailableError) as caught:
            client.ehlo()
        assert caught.value.smtp_error == b"4.3.2 Shutting down for maintenance"


# -- a server that stops reading ---------------------------------------------------------------


def test_a_server_that_stops_reading_the_content_times_out_as_a_write_timeout(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x00\xff" * (8 * 1024 * 1024))  # far more than the socket buffers hold
    with HostileServer("DATA", "deaf") as server:
        b = backend(server)
        msg = message()
        msg.attach_file(big)
        with measured() as m, pytest.raises(SMTPWriteTimeoutError) as caught:
            b.send_messages([msg])
        assert m.elapsed < TIMEOUT + SLACK
        assert isinstance(caught.value, TimeoutError) and caught.value.timeout == TIMEOUT
        assert_reused(b, server)


def test_abort_handles_keep_working_with_the_limits(silent_server):
    handle = AbortHandle()
    threading.Timer(0.3, handle.abort).start()
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        SMTP(silent_server.host, silent_server.port, timeout=30, abort_handle=handle,
             local_hostname="localhost")
    assert time.monotonic() - started < 5
