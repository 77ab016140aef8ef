"""mailcore's hooks beyond Django, against real servers: abort(), progress callbacks, the file
backend's ``filename``, the "auth" transcript event and deterministic multipart boundaries."""

from __future__ import annotations

import contextlib
import os
import random
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mailcore
from mailcore import EmailMessage, EmailMultiAlternatives
from mailcore.backends.filebased import EmailBackend as FileBackend
from mailcore.backends.smtp import EmailBackend
from mailcore.smtp import AbortHandle, SMTPAborted
from mailcore.wire import serialize
from tests.support.servers import (
    LOCALHOST,
    TEST_PASSWORD,
    TEST_USER,
    ScriptedServer,
    SMTPServer,
    _RawServer,
)

BOUNDARY = re.compile(rb'boundary="(={15}\d{19}==)"')
ANY_BOUNDARY = re.compile(rb"={15}\d{19}==")
LIVENESS = 15  # seconds: only a bound so that a hang fails the test, never a timing claim


def message(subject: str = "s", **kwargs) -> EmailMessage:
    return EmailMessage(subject, "body\n", "from@example.com", ["to@example.com"], **kwargs)


def big_message(path: Path, size: int, subject: str = "big") -> EmailMessage:
    with path.open("wb") as f:
        f.truncate(size)  # sparse, but read (and base64-encoded) for real
    msg = message(subject)
    msg.attach_file(str(path), "application/octet-stream")
    return msg


def backend_for(server, **kwargs) -> EmailBackend:  # noqa: ANN001
    kwargs.setdefault("timeout", 60)  # far longer than any test waits: aborts must wake it
    return EmailBackend(host=server.host, port=server.port, **kwargs)


def sends_fine_afterwards(b: EmailBackend, server: SMTPServer | None = None) -> None:
    """The same backend object sends over a fresh connection to a healthy server."""
    assert b.connection is None
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(SMTPServer("plain"))
        before = len(server.messages)
        b.host, b.port = server.host, server.port
        b.use_tls = b.use_ssl = False
        b.username = b.password = ""
        assert b.send_messages([message("after the abort")]) == 1
        records = server.wait_for(before + 1)
        assert b"after the abort" in records[-1].data


class AbortWhen:
    """A transcript callback that starts a timer calling ``backend.abort()`` once an event
    matches; records every event."""

    def __init__(self, match: Callable[[str, str], bool], delay: float = 0.2) -> None:
        self.match = match
        self.delay = delay
        self.backend: EmailBackend | None = None
        self.events: list[tuple[str, str]] = []
        self.fired = threading.Event()

    def __call__(self, event: str, text: str) -> None:
        self.events.append((event, text))
        if not self.fired.is_set() and self.match(event, text):
            self.fired.set()
            timer = threading.Timer(self.delay, self.backend.abort)
            timer.daemon = True
            timer.start()


def aborting_backend(server, match: Callable[[str, str], bool], **kwargs) -> tuple:  # noqa: ANN001
    watcher = AbortWhen(match)
    b = backend_for(server, transcript=watcher, **kwargs)
    watcher.backend = b
    return b, watcher


def timed_send(b: EmailBackend, msgs: list) -> tuple[BaseException, float]:  # noqa: ANN001
    started = time.monotonic()
    with pytest.raises(SMTPAborted) as caught:
        b.send_messages(msgs)
    return caught.value, time.monotonic() - started


# -- abort(): while connecting --------------------------------------------------------------


def test_aborted_is_a_disconnect_with_its_own_type() -> None:
    exc = SMTPAborted()
    assert isinstance(exc, smtplib.SMTPServerDisconnected)
    assert str(exc) == "sending was aborted"


def test_abort_while_waiting_for_the_greeting(silent_server) -> None:  # noqa: ANN001
    b, watcher = aborting_backend(silent_server, lambda e, t: e == "connect")
    exc, elapsed = timed_send(b, [message()])
    assert watcher.fired.is_set() and elapsed < LIVENESS
    assert silent_server.connections == 1
    assert not any(e == "server" for e, _ in watcher.events)  # no greeting ever came
    assert isinstance(exc.__cause__, OSError)  # what woke the thread, kept as the cause
    sends_fine_afterwards(b)


def test_abort_while_waiting_for_the_greeting_fail_silently(silent_server) -> None:  # noqa: ANN001
    b, watcher = aborting_backend(silent_server, lambda e, t: e == "connect", fail_silently=True)
    assert b.send_messages([message()]) == 0
    assert watcher.fired.is_set()
    sends_fine_afterwards(b)


@contextlib.contextmanager
def full_backlog_listener() -> Iterator[tuple[str, int]]:
    """A listening socket whose accept queue is full: a new TCP connect() blocks (SYNs are
    dropped), as with a far, slow or firewalled host."""
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


def test_abort_during_a_blocking_tcp_connect() -> None:
    with full_backlog_listener() as (host, port):
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the premise: a connect() here really blocks
            probe.connect((host, port))
        probe.close()
        watcher = AbortWhen(lambda e, t: e == "connect")
        b = EmailBackend(host=host, port=port, timeout=60, transcript=watcher)
        watcher.backend = b
        exc, elapsed = timed_send(b, [message()])
        assert watcher.fired.is_set() and elapsed < LIVENESS
        assert [e for e, _ in watcher.events] == ["connect"]  # never connected
        assert isinstance(exc.__cause__, OSError)
    sends_fine_afterwards(b)


class StallsInStartTLS(_RawServer):
    """Greets, offers STARTTLS, answers it with 220 and then never speaks TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()

    def handle(self, conn: socket.socket, peer: object) -> None:
        self._send(conn, "220 localhost ESMTP stalls")
        rfile = conn.makefile("rb")
        try:
            while not self._stopping.is_set():
                line = rfile.readline()
                if not line:
                    return
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb in (b"EHLO", b"HELO"):
                    self._send(conn, ["250-localhost", "250 STARTTLS"])
                elif verb == b"STARTTLS":
                    self._send(conn, "220 2.0.0 Ready to start TLS")
                    self.stalled.set()
                    while conn.recv(65536):  # the ClientHello, unanswered
                        pass
                    return
                else:
                    self._send(conn, "502 5.5.2 no")
        finally:
            rfile.close()


def test_abort_during_the_starttls_handshake(certs) -> None:  # noqa: ANN001
    with StallsInStartTLS() as server:
        b, watcher = aborting_backend(
            server, lambda e, t: e == "server" and t.startswith("220 2.0.0"),
            use_tls=True, ssl_cafile=certs.ca_file,
        )
        exc, elapsed = timed_send(b, [message()])
        assert server.stalled.is_set() and watcher.fired.is_set() and elapsed < LIVENESS
        assert not any(e == "tls" for e, _ in watcher.events)  # TLS never started
    sends_fine_afterwards(b)


def test_abort_during_the_implicit_tls_handshake(silent_server, certs) -> None:  # noqa: ANN001
    b, watcher = aborting_backend(silent_server, lambda e, t: e == "connect", use_ssl=True,
                                  ssl_cafile=certs.ca_file)
    exc, elapsed = timed_send(b, [message()])
    assert watcher.fired.is_set() and elapsed < LIVENESS
    sends_fine_afterwards(b)


# -- abort(): before, between and during sends ----------------------------------------------


def test_abort_before_a_send_makes_it_fail_at_once_then_it_is_forgotten(smtp_server) -> None:  # noqa: ANN001
    b = backend_for(smtp_server)
    b.abort()
    with pytest.raises(SMTPAborted):
        b.send_messages([message()])
    assert smtp_server.connections == 0  # not even a connection was made
    b.abort()
    b.fail_silently = True
    assert b.send_messages([message()]) == 0
    assert smtp_server.connections == 0
    b.fail_silently = False
    sends_fine_afterwards(b, smtp_server)


def test_abort_of_an_idle_open_connection_drops_it(smtp_server) -> None:  # noqa: ANN001
    b = backend_for(smtp_server)
    assert b.open() is True
    first = b.connection
    b.abort()
    with pytest.raises(SMTPAborted):
        b.send_messages([message()])
    assert b.connection is None and first.sock is None
    assert b.send_messages([message("fresh")]) == 1  # a new connection, opened and closed
    assert smtp_server.connections == 2
    assert [r.data.count(b"fresh") for r in smtp_server.wait_for(1)] == [1]
    b.close()


def test_abort_on_a_new_backend_with_nothing_open_is_harmless() -> None:
    b = EmailBackend(host=LOCALHOST, port=1)
    b.abort()
    b.abort()  # idempotent, never blocks, needs no connection
    b.close()


@pytest.mark.parametrize("pipelining", [False, True], ids=["no-pipelining", "pipelining"])
def test_abort_mid_data_of_a_20_mb_attachment_delivers_nothing(pipelining, tmp_path) -> None:  # noqa: ANN001
    with SMTPServer("plain", pipelining=pipelining, data_size_limit=None) as server:
        seen: list[tuple[int, int]] = []
        aborted = threading.Event()
        b = backend_for(server)

        def progress(done: int, total: int) -> None:
            seen.append((done, total))
            if done >= total // 4 and not aborted.is_set():
                # another thread aborts; the content write is under way
                threading.Thread(target=lambda: (b.abort(), aborted.set())).start()
                assert aborted.wait(LIVENESS)

        b.progress = progress
        big = big_message(tmp_path / "big.bin", 20 * 1024 * 1024)
        with pytest.raises(SMTPAborted):
            b.send_messages([big])
        total = seen[-1][1]
        assert total > 20 * 1024 * 1024 and seen[-1][0] < total  # stopped well before the end
        assert b.connection is None
        b.progress = None
        sends_fine_afterwards(b, server)  # a fresh connection to the same server
        assert len(server.messages) == 1 and server.handler.rejected == []
        assert b"after the abort" in server.messages[0].data


def test_abort_mid_pipelined_batch_keeps_what_was_delivered(tmp_path) -> None:  # noqa: ANN001
    with SMTPServer("plain", pipelining=True, data_size_limit=None) as server:
        b = backend_for(server)
        aborted = threading.Event()

        def progress(done: int, total: int) -> None:
            if total > 1024 * 1024 and done > 0 and not aborted.is_set():
                threading.Thread(target=lambda: (b.abort(), aborted.set())).start()
                assert aborted.wait(LIVENESS)

        b.progress = progress
        msgs = [message("first"), big_message(tmp_path / "b.bin", 8 * 1024 * 1024), message("3")]
        with pytest.raises(SMTPAborted):
            b.send_messages(msgs)
        assert [r.message_id for r in b.last_results] == [server.wait_for(1)[0].message()[
            "Message-ID"]]
        b.progress = None
        sends_fine_afterwards(b, server)
        subjects = [r.message()["Subject"] for r in server.messages]
        assert subjects == ["first", "after the abort"]


def test_abort_handle_on_a_bare_connection(smtp_server) -> None:  # noqa: ANN001
    handle = AbortHandle()
    conn = mailcore.smtp.SMTP(smtp_server.host, smtp_server.port, abort_handle=handle)
    assert conn.noop()[0] == 250
    handle.abort()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        conn.noop()
    conn.close()
    with pytest.raises(SMTPAborted):  # until reset(), every new socket is refused at once
        mailcore.smtp.SMTP(smtp_server.host, smtp_server.port, abort_handle=handle)
    handle.reset()
    with mailcore.smtp.SMTP(smtp_server.host, smtp_server.port, abort_handle=handle) as again:
        assert again.noop()[0] == 250


# -- progress -------------------------------------------------------------------------------


def check_progress(calls: list[tuple[int, int]], total: int) -> None:
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert {t for _, t in calls} == {total}
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert max(b - a for a, b in zip(dones, dones[1:])) <= 1_000_000


@pytest.mark.parametrize("pipelining", [False, True], ids=["no-pipelining", "pipelining"])
def test_progress_is_monotonic_and_ends_at_the_exact_size(pipelining, tmp_path) -> None:  # noqa: ANN001
    attachment = tmp_path / "data.bin"
    attachment.write_bytes(os.urandom(3_000_000))
    with SMTPServer("plain", pipelining=pipelining) as server:
        calls: list[tuple[int, int]] = []
        threads: set[int] = set()

        def progress(done: int, total: int) -> None:
            calls.append((done, total))
            threads.add(threading.get_ident())

        b = mailcore.get_connection("mailcore.backends.smtp.EmailBackend", host=server.host,
                                    port=server.port, timeout=10, progress=progress)
        msg = EmailMessage("s", ".dots\n.at line starts\n", "from@example.com", ["to@example.com"])
        msg.attach_file(str(attachment))
        assert b.send_messages([msg]) == 1
        (record,) = server.wait_for(1)
        total = len(record.data)  # the bytes before dot-stuffing, ending in CRLF
        check_progress(calls, total)
        assert len(calls) >= 6  # 4 MB of base64: several writes, each reported
        assert b.last_results[0].size == total
        assert threads == {threading.get_ident()}  # on the sending thread


def test_progress_for_each_message_of_a_pipelined_batch() -> None:
    with SMTPServer("plain", pipelining=True) as server:
        calls: list[tuple[int, int]] = []
        b = backend_for(server, progress=lambda d, t: calls.append((d, t)))
        assert b.send_messages([message("one"), message("two, longer")]) == 2
        sizes = [len(r.data) for r in server.wait_for(2)]
        assert calls == [(0, sizes[0]), (sizes[0], sizes[0]), (0, sizes[1]), (sizes[1], sizes[1])]


class Stop(Exception):
    pass


class StopOSError(OSError):
    pass


@pytest.mark.parametrize("error", [Stop, StopOSError])
@pytest.mark.parametrize("pipelining", [False, True], ids=["no-pipelining", "pipelining"])
def test_a_raising_progress_callback_stops_the_send(pipelining, error, tmp_path) -> None:  # noqa: ANN001
    with SMTPServer("plain", pipelining=pipelining, data_size_limit=None) as server:

        def progress(done: int, total: int) -> None:
            if done > total // 2:
                raise error("stop")

        # even fail_silently lets it through: the caller asked for it
        b = backend_for(server, progress=progress, fail_silently=True)
        assert b.open() is True
        with pytest.raises(error):
            b.send_messages([big_message(tmp_path / "big.bin", 4 * 1024 * 1024)])
        assert b.connection is None  # dropped, not reused
        b.progress = None
        b.fail_silently = False
        sends_fine_afterwards(b, server)
        assert [r.message()["Subject"] for r in server.messages] == ["after the abort"]


def test_progress_callback_raising_at_the_very_end_still_delivers_nothing(smtp_server) -> None:  # noqa: ANN001
    def progress(done: int, total: int) -> None:
        if done == total:
            raise Stop("no")

    b = backend_for(smtp_server, progress=progress)
    with pytest.raises(Stop):
        b.send_messages([message()])
    b.progress = None
    sends_fine_afterwards(b, smtp_server)
    assert len(smtp_server.messages) == 1


# -- the file backend -----------------------------------------------------------------------


def test_file_backend_filename_and_progress(tmp_path) -> None:  # noqa: ANN001
    calls: list[tuple[int, int]] = []
    b = mailcore.get_connection("mailcore.backends.filebased.EmailBackend",
                                file_path=tmp_path / "out",
                                progress=lambda d, t: calls.append((d, t)))
    assert b.filename is None
    attachment = tmp_path / "a.bin"
    attachment.write_bytes(os.urandom(1_500_000))
    msg = message()
    msg.attach_file(str(attachment))
    assert b.send_messages([msg]) == 1
    written = Path(b.filename)
    assert written.parent == tmp_path / "out" and written.is_file()
    total = calls[-1][1]
    check_progress(calls, total)
    assert written.stat().st_size == total + 1 + 79 + 1  # the message, "\n", dashes, "\n"
    assert b.send_messages([message("again")]) == 1
    assert b.filename == str(written)  # one file per backend object, as in Django


@pytest.mark.parametrize("error", [Stop, StopOSError])
def test_file_backend_raising_progress_leaves_no_half_message(tmp_path, error) -> None:  # noqa: ANN001
    b = FileBackend(file_path=tmp_path, fail_silently=True)
    assert b.send_messages([message("kept")]) == 1
    before = Path(b.filename).read_bytes()

    def progress(done: int, total: int) -> None:
        if done > total // 3:
            raise error("stop")

    b.progress = progress
    with pytest.raises(error):
        b.send_messages([big_message(tmp_path / "big.bin", 2 * 1024 * 1024)])
    assert Path(b.filename).read_bytes() == before
    assert b.stream is None


# -- the "auth" transcript event ------------------------------------------------------------


@pytest.mark.parametrize(("mechanisms", "used"), [(("LOGIN", "PLAIN"), "PLAIN"),
                                                  (("LOGIN",), "LOGIN")])
def test_auth_event_names_user_and_mechanism_never_the_password(mechanisms, used) -> None:  # noqa: ANN001
    auth = {TEST_USER: TEST_PASSWORD}
    with SMTPServer("plain", auth=auth, auth_mechanisms=mechanisms) as server:
        events: list[tuple[str, str]] = []
        b = backend_for(server, username=TEST_USER, password=TEST_PASSWORD,
                        transcript=lambda e, t: events.append((e, t)))
        assert b.send_messages([message()]) == 1
        assert ("auth", f"authenticated as {TEST_USER} ({used})") in events
        assert [e for e, _ in events].count("auth") == 1
        assert not any(TEST_PASSWORD in t for _, t in events)
        assert server.handler.login_attempts == [(used, TEST_USER, True)]


def test_auth_event_over_starttls_and_none_for_a_wrong_password(starttls_server, certs) -> None:  # noqa: ANN001
    events: list[tuple[str, str]] = []
    b = backend_for(starttls_server, use_tls=True, ssl_cafile=certs.ca_file, username=TEST_USER,
                    password=TEST_PASSWORD, transcript=lambda e, t: events.append((e, t)))
    assert b.send_messages([message()]) == 1
    kinds = [e for e, _ in events]
    assert kinds.index("tls") < kinds.index("auth")
    events.clear()
    b.password = "wrong"
    with pytest.raises(smtplib.SMTPAuthenticationError):
        b.send_messages([message()])
    assert "auth" not in [e for e, _ in events]
    assert not any("wrong" in t for _, t in events)


# -- deterministic boundaries ---------------------------------------------------------------


def rich_message(**kwargs) -> EmailMultiAlternatives:
    msg = EmailMultiAlternatives(
        "Seeded", "plain body\n", "from@example.com", ["to@example.com"],
        headers={"Date": "Tue, 01 Apr 2025 10:00:00 -0000", "Message-ID": "<fixed@example.com>"},
        **kwargs,
    )
    msg.attach_alternative("<p>html</p>", "text/html")
    msg.attach("data.bin", bytes(range(256)) * 10, "application/octet-stream")
    return msg


@pytest.mark.parametrize("encoding", [None, "iso-8859-1"], ids=["fast-writer", "email-package"])
def test_boundary_seed_makes_the_bytes_repeatable(encoding) -> None:  # noqa: ANN001
    msg = rich_message()
    msg.encoding = encoding
    assert EmailMessage.boundary_seed is None and msg.boundary_seed is None
    msg.boundary_seed = 20250401
    first = serialize(msg).getvalue()
    assert serialize(msg).getvalue() == first
    assert serialize(msg, linesep="\n").getvalue() == first.replace(b"\r\n", b"\n")
    boundaries = BOUNDARY.findall(first)
    assert len(boundaries) == 2 and len(set(boundaries)) == 2  # mixed and alternative
    msg.boundary_seed = 7
    other = serialize(msg).getvalue()
    assert other != first and ANY_BOUNDARY.sub(b"B", other) == ANY_BOUNDARY.sub(b"B", first)


@pytest.mark.parametrize("encoding", [None, "iso-8859-1"], ids=["fast-writer", "email-package"])
def test_without_a_seed_boundaries_stay_random(encoding) -> None:  # noqa: ANN001
    msg = rich_message()
    msg.encoding = encoding
    one, two = serialize(msg).getvalue(), serialize(msg).getvalue()
    assert one != two
    assert ANY_BOUNDARY.sub(b"B", one) == ANY_BOUNDARY.sub(b"B", two)
    # ... drawn from the random module, as before (and as Django does)
    random.seed(99)
    three = serialize(msg).getvalue()
    random.seed(99)
    assert serialize(msg).getvalue() == three


def test_a_seeded_message_is_delivered_byte_for_byte_as_serialized(smtp_server) -> None:  # noqa: ANN001
    msg = rich_message()
    msg.boundary_seed = 1
    expected = serialize(msg).getvalue()
    assert backend_for(smtp_server).send_messages([msg]) == 1
    assert smtp_server.wait_for(1)[0].data == expected


# -- found in review ----------------------------------------------------------------------


@pytest.mark.parametrize("mechanisms", [("PLAIN",), ("LOGIN",)])
def test_non_ascii_password_is_sent_as_utf8_and_never_quoted(certs, mechanisms):
    """smtplib would raise UnicodeEncodeError quoting a character of the password."""
    password = "pässwörd-✓"
    events = []
    with SMTPServer("starttls", certs=certs, auth={"zoë": password},
                    auth_mechanisms=mechanisms) as server:
        backend = EmailBackend(
            host=server.host, port=server.port, use_tls=True, username="zoë",
            password=password, ssl_cafile=certs.ca_file, timeout=5,
            transcript=lambda e, t: events.append(f"{e} {t}"),
        )
        msg = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
        assert backend.send_messages([msg]) == 1
        assert server.handler.wait_for(1)[0].auth_login == "zoë"
        backend.password = "wröng"
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            backend.send_messages([msg])
    text = "\n".join(events) + str(caught.value)
    for secret in (password, "wröng", "ö", "✓"):
        assert secret not in text.replace("zoë", "")


def test_abort_after_the_final_dot_waits_for_the_answer():
    """Cancel can't stop a message whose final dot is sent: it is reported delivered."""
    dot_received = threading.Event()

    def slow_accept(record):
        dot_received.set()
        time.sleep(0.6)  # the server thinks before answering
        return None

    with SMTPServer("plain", data_reply=slow_accept) as server:
        backend = EmailBackend(host=server.host, port=server.port, timeout=5)
        result = {}

        def send():
            try:
                result["sent"] = backend.send_messages(
                    [EmailMessage("late", "b", "f@example.com", ["t@example.com"])])
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion
                result["error"] = exc

        worker = threading.Thread(target=send)
        worker.start()
        assert dot_received.wait(5)
        backend.abort()
        worker.join(10)
        assert result == {"sent": 1}
        assert len(server.handler.messages) == 1
        assert backend.last_results[0].code == 250


class _NoFinalReply(ScriptedServer):
    """Reads a whole message, then never answers its final dot (until the client leaves)."""

    def _read_data(self, rfile) -> None:  # noqa: ANN001
        super()._read_data(rfile)
        while rfile.read1(65536):
            pass


@pytest.mark.parametrize("pipelining", [False, True], ids=["no-pipelining", "pipelining"])
def test_abort_waits_for_the_final_reply_only_so_long(pipelining, monkeypatch) -> None:  # noqa: ANN001
    """Once the final dot is out, an abort waits for the server's verdict (cutting the line
    could not stop the message, only lose the news) - but not for ever: a server that never
    answers is cut off after COMMIT_GRACE, and the error says the fate is unknown."""
    monkeypatch.setattr(AbortHandle, "COMMIT_GRACE", 0.5)
    ehlo = ScriptedServer.DEFAULT_EHLO if pipelining else ("250-localhost", "250 SIZE 10485760")
    with _NoFinalReply(replies={"EHLO": list(ehlo)}) as server:
        b = EmailBackend(host=LOCALHOST, port=server.port)  # no timeout: it would wait for ever
        failure: list[BaseException] = []

        def send() -> None:
            try:
                b.send_messages([message("fate unknown")])
            except BaseException as exc:  # noqa: BLE001
                failure.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + LIVENESS
        while not server.data and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.data, "the message reached the server"
        b.abort()
        sender.join(LIVENESS)
        assert not sender.is_alive()
        (error,) = failure
        assert isinstance(error, SMTPAborted) and "may or may not have been delivered" in str(error)


def test_a_file_that_grows_during_the_send_is_not_delivered(smtp_server, tmp_path) -> None:  # noqa: ANN001
    from mailcore.wire import FileChangedError

    path = tmp_path / "growing.log"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    msg = message("growing")
    msg.attach_file(path)  # > 1 MiB: kept as a reference and streamed

    def progress(done: int, total: int) -> None:
        if 0 < done < total and path.stat().st_size == 3 * 1024 * 1024:
            with path.open("ab") as f:  # a log file still being written to
                f.write(b"more lines\n" * 1000)

    b = EmailBackend(host=smtp_server.host, port=smtp_server.port, timeout=10, progress=progress)
    with pytest.raises(FileChangedError, match="grew while the message was being sent"):
        b.send_messages([msg])
    assert smtp_server.messages == []
    path.write_bytes(b"x" * 100)  # shrunk between attach_file and the send: sent as it is now
    assert EmailBackend(host=smtp_server.host, port=smtp_server.port,
                        timeout=10).send_messages([msg]) == 1
