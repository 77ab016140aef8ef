"""Queued sending (mailcore.backends.celery, mailcore.queue) with real parts: a redis-server on
127.0.0.1 started here (one per module, AOF synced at every write so a restart loses nothing),
real Celery workers (``python -m mailcore worker``, prefork pools; never task_always_eager) and
a loopback aiosmtpd server that counts what it receives by Message-ID."""

from __future__ import annotations

import collections
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mailcore
import mailcore.cli
from mailcore import queue
from mailcore.conf import ImproperlyConfigured, settings
from tests.support.redis import RedisServer
from tests.support.servers import SMTPServer

ROOT = Path(__file__).resolve().parents[2]
MESSAGE_ID = re.compile(rb"^Message-ID: (.+?)\r\n", re.M | re.I)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True) as server:
        yield server


@pytest.fixture
def qname() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def producer(redis_server: RedisServer, qname: str, tmp_path: Path) -> dict[str, object]:
    """The producer's settings (this process): the test's queue on the module's Redis."""
    values = {"EMAIL_QUEUE_BROKER_URL": redis_server.url, "EMAIL_QUEUE_NAME": qname,
              "EMAIL_QUEUE_SPOOL_DIR": str(tmp_path / "spool"),
              "EMAIL_QUEUE_SPOOL_THRESHOLD": 1024 * 1024}
    settings.configure(**values)
    return values


class Workers:
    """``python -m mailcore worker`` processes, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process writes it
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailcore", "worker", "-c", str(concurrency),
             "-n", f"{name}@%h", "-l", os.environ.get("QUEUE_TEST_LOGLEVEL", "WARNING")],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # warm shutdown
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
            with _suppress_lookup():
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
            proc.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


class _suppress_lookup:  # noqa: N801 - a tiny context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, *_: object) -> bool:
        return exc_type is ProcessLookupError or exc_type is PermissionError


@pytest.fixture
def start_workers(producer: dict[str, object], tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def start(server: SMTPServer, **queue_settings: object) -> Workers:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCORE_")}
        values: dict[str, object] = dict(producer)
        values.update({
            "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": server.port, "EMAIL_TIMEOUT": 30,
            "EMAIL_QUEUE_RETRY_BACKOFF": 0.2, "EMAIL_QUEUE_RETRY_BACKOFF_MAX": 0.5,
            "EMAIL_QUEUE_MAX_RETRIES": 4, "EMAIL_QUEUE_LOCK_TTL": 2,
            "EMAIL_QUEUE_VISIBILITY_TIMEOUT": 3, "EMAIL_QUEUE_IDLE_CLOSE": 10,
            "EMAIL_QUEUE_PREFETCH": 4,
        })
        values.update(queue_settings)
        env.update({f"MAILCORE_{k}": str(v) for k, v in values.items()})
        env["MAILCORE_STRICT_WIRE"] = "1"
        env["PYTHONPATH"] = str(ROOT)
        logs = tmp_path / f"logs{len(made)}"
        logs.mkdir()
        workers = Workers(env, logs)
        made.append(workers)
        return workers

    yield start
    for workers in made:
        workers.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               workers: Workers | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            logs = workers.log_text() if workers is not None else ""
            raise AssertionError(f"not within {timeout}s: {what}\n{logs}")
        time.sleep(0.05)


def ids_received(server: SMTPServer) -> collections.Counter[str]:
    """Message-ID -> how many times the server accepted it."""
    return collections.Counter(message_id(m.data) for m in server.messages)


def message_id(data: bytes) -> str:
    match = MESSAGE_ID.search(data)
    assert match is not None, data[:500]
    return match.group(1).decode()


def batch(n: int, tag: str = "m") -> list[mailcore.EmailMessage]:
    return [mailcore.EmailMessage(f"{tag} {i}", f"Message {i}.\n" * 20, "from@example.com",
                                  [f"to{i}@example.com"]) for i in range(n)]


def finished(config: queue.QueueConfig | None = None, sent: int = 0) -> Callable[[], bool]:
    def check() -> bool:
        st = queue.status(config)
        return st.pending == 0 and st.sent >= sent

    return check


# -- the tests ------------------------------------------------------------------------------


def test_thousand_messages_delivered_exactly_once(producer, start_workers) -> None:
    with SMTPServer("plain", pipelining=True) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(1000)) == 1000
        ids = backend.last_message_ids
        assert len(set(ids)) == 1000
        assert queue.status().queued == 1000  # nothing delivered before a worker runs
        assert server.messages == []

        workers = start_workers(server)
        workers.start("a", concurrency=2)
        wait_until(lambda: len(server.messages) >= 1000, 90, "1,000 delivered", workers)
        wait_until(finished(sent=1000), 30, "the queue empty", workers)
        received = ids_received(server)
        assert set(received) == set(ids)
        assert max(received.values()) == 1
        st = queue.status()
        assert (st.queued, st.retrying, st.sent, st.dead) == (0, 0, 1000, 0)
        # one connection per worker process, kept between tasks
        assert 1 <= server.connections <= 2
        # the CLI says the same
        out = io.StringIO()
        assert mailcore.cli.run(["queue", "status", "--json"], stdout=out) == 0
        counts = json.loads(out.getvalue())
        assert (counts["queued"], counts["sent"], counts["dead"]) == (0, 1000, 0)


def test_redis_on_a_unix_socket_delivers_exactly_once(tmp_path_factory, qname,
                                                      start_workers, producer) -> None:
    """Redis on the workers' machine, reached through its Unix socket: the broker URL in
    Celery's form (redis+socket://) serves Celery, the producer's fast publishing and the
    queue's records alike."""
    folder = tmp_path_factory.mktemp("redis-socket")
    with RedisServer(folder, unix_socket=True) as local, \
            SMTPServer("plain", pipelining=True) as server:
        url = local.socket_url + "?virtual_host=2"
        assert queue.redis_py_url(url) == f"unix://{local.socket_path}?db=2"
        settings.configure(EMAIL_QUEUE_BROKER_URL=url)
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(200, "sock")) == 200
        ids = backend.last_message_ids
        # the tasks are in database 2 of the socket's Redis, none on the TCP one
        import redis

        assert redis.Redis(unix_socket_path=str(local.socket_path), db=2).llen(qname) > 0
        assert redis.Redis(unix_socket_path=str(local.socket_path), db=0).llen(qname) == 0
        workers = start_workers(server, EMAIL_QUEUE_BROKER_URL=url)
        workers.start("s")
        wait_until(lambda: len(server.messages) >= 200, 60, "200 delivered", workers)
        wait_until(finished(sent=200), 30, "the queue empty", workers)
        received = ids_received(server)
        assert set(received) == set(ids) and max(received.values()) == 1
        st = queue.status()
        assert (st.queued, st.sent, st.dead) == (0, 200, 0)


def test_temporary_failure_retried_then_delivered_once(producer, start_workers) -> None:
    tries: collections.Counter[str] = collections.Counter()

    def reply(record) -> str | None:
        mid = message_id(record.data)
        tries[mid] += 1
        return "451 4.3.0 Try again later" if tries[mid] <= 2 else None

    with SMTPServer("plain", pipelining=True, data_reply=reply) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(3)) == 3
        workers = start_workers(server)
        workers.start("a")
        wait_until(finished(sent=3), 60, "3 delivered after two 451s each", workers)
        assert ids_received(server) == {mid: 1 for mid in backend.last_message_ids}
        assert collections.Counter(message_id(m.data) for m in server.handler.rejected) == {
            mid: 2 for mid in backend.last_message_ids}
        st = queue.status()
        assert (st.sent, st.retrying, st.dead) == (3, 0, 0)


def test_permanent_failures_are_dead_lettered_with_the_reply(producer, start_workers,
                                                             tmp_path) -> None:
    refused = "550 5.7.1 Message refused by policy"
    with SMTPServer("plain", pipelining=True, data_size_limit=None) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        bad, good = batch(2, "policy")
        assert backend.send_messages([bad]) == 1
        bad_id = backend.last_message_ids[0]
        server.handler.data_reply = lambda r: refused if message_id(r.data) == bad_id else None
        # a spooled message whose file changed after it was queued
        big = mailcore.EmailMessage("big", "body", "from@example.com", ["big@example.com"])
        big.attach("blob.bin", os.urandom(1_200_000), "application/octet-stream")
        assert backend.send_messages([good, big]) == 2
        good_id, big_id = backend.last_message_ids
        (spooled,) = Path(producer["EMAIL_QUEUE_SPOOL_DIR"]).glob("*.eml")
        with open(spooled, "r+b") as f:
            f.seek(-10, os.SEEK_END)
            f.write(b"XXXXXXXXXX")

        workers = start_workers(server)
        workers.start("a")
        wait_until(lambda: queue.status().dead == 2 and queue.status().pending == 0, 60,
                   "two dead letters", workers)
        assert set(ids_received(server)) == {good_id}
        # refused once, never tried again
        assert [message_id(r.data) for r in server.handler.rejected] == [bad_id]
        letters = {d.message_id: d for d in queue.dead_letters()}
        assert set(letters) == {bad_id, big_id}
        assert letters[bad_id].code == 550
        assert letters[bad_id].reply == refused
        assert letters[bad_id].attempts == 1
        assert letters[bad_id].recipients == ("to0@example.com",)
        assert letters[big_id].code is None and "checksum" in letters[big_id].detail

        out = io.StringIO()
        assert mailcore.cli.run(["queue", "dead"], stdout=out) == 0
        assert bad_id in out.getvalue() and refused in out.getvalue()

        # retried by hand once the server takes it
        server.handler.data_reply = None
        err = io.StringIO()
        assert mailcore.cli.run(["queue", "retry", bad_id], stdout=io.StringIO(),
                                stderr=err) == 0
        wait_until(lambda: bad_id in ids_received(server), 30, "the retried message", workers)
        assert [d.message_id for d in queue.dead_letters()] == [big_id]
        assert mailcore.cli.run(["queue", "retry", "<nobody@example.com>"],
                                stdout=io.StringIO(), stderr=err) == 1
        assert "not in the dead-letter list" in err.getvalue()


def test_worker_killed_mid_batch_loses_nothing(producer, start_workers) -> None:
    with SMTPServer("plain", pipelining=True) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(400)) == 400
        ids = set(backend.last_message_ids)
        workers = start_workers(server)
        first = workers.start("a", concurrency=2)
        wait_until(lambda: len(server.messages) >= 100, 60, "100 delivered", workers)
        workers.kill(first)
        killed_at = time.time()
        before_kill = {m.connection_id for m in server.messages if m.received_at <= killed_at}
        workers.start("b", concurrency=2)
        wait_until(lambda: set(ids_received(server)) >= ids, 90, "all 400 delivered", workers)
        wait_until(finished(), 30, "the queue empty", workers)

        received = ids_received(server)
        assert set(received) == ids
        duplicates = [mid for mid, n in received.items() if n > 1]
        # The documented window: accepted by the server, the worker killed before it recorded
        # the message as sent. At most one message per killed pool process, and each one the
        # last message its connection to the killed worker carried.
        assert len(duplicates) <= 2
        records = server.messages
        for mid in duplicates:
            copies = sorted((r for r in records if message_id(r.data) == mid),
                            key=lambda r: r.received_at)
            assert len(copies) == 2
            first_copy = copies[0]
            assert first_copy.connection_id in before_kill
            # its final dot left the worker before the kill (the server may read it a moment
            # after): nothing on that connection came later
            assert first_copy.received_at <= killed_at + 0.5
            later_on_that_connection = [r for r in records
                                        if r.connection_id == first_copy.connection_id
                                        and r.received_at > first_copy.received_at]
            assert later_on_that_connection == []
        st = queue.status()
        assert (st.sent, st.dead, st.pending) == (400, 0, 0)


def test_redis_restarted_mid_batch_loses_nothing(producer, start_workers, redis_server) -> None:
    with SMTPServer("plain", pipelining=True) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(300)) == 300
        ids = set(backend.last_message_ids)
        workers = start_workers(server)
        workers.start("a", concurrency=2)
        wait_until(lambda: len(server.messages) >= 60, 60, "60 delivered", workers)
        redis_server.restart(down_for=1.0)
        wait_until(lambda: len(server.messages) >= 300, 90, "all 300 after the restart",
                   workers)
        wait_until(finished(sent=300), 60, "the queue empty", workers)
        received = ids_received(server)
        assert set(received) == ids
        assert max(received.values()) == 1  # no worker died: no window, no duplicate
        st = queue.status()
        assert (st.sent, st.dead, st.pending) == (300, 0, 0)


def test_fifty_megabyte_attachment_goes_through_the_spool(producer, start_workers,
                                                          redis_server, qname,
                                                          tmp_path) -> None:
    blob = tmp_path / "big.bin"
    content = os.urandom(50 * 1024 * 1024)
    blob.write_bytes(content)
    message = mailcore.EmailMessage("Fifty megabytes", "See attached.", "from@example.com",
                                    ["to@example.com"])
    message.attach_file(str(blob), "application/octet-stream")
    backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
    assert backend.send_messages([message]) == 1
    (mid,) = backend.last_message_ids
    # the broker holds a small task; the bytes are in the shared folder
    entries = redis_server.client().lrange(qname, 0, -1)
    assert len(entries) == 1 and len(entries[0]) < 8192
    (spooled,) = Path(producer["EMAIL_QUEUE_SPOOL_DIR"]).glob("*.eml")
    assert spooled.stat().st_size > 50 * 1024 * 1024 * 4 // 3

    with SMTPServer("plain", pipelining=True, data_size_limit=None) as server:
        workers = start_workers(server, EMAIL_QUEUE_VISIBILITY_TIMEOUT=600,
                                EMAIL_QUEUE_LOCK_TTL=30)
        workers.start("a")
        wait_until(finished(sent=1), 120, "the big message sent", workers)
        (record,) = server.messages
        assert message_id(record.data) == mid
        parts = [p for p in record.message().iter_attachments()]
        assert parts[0].get_filename() == "big.bin"
        assert parts[0].get_content() == content
    assert list(Path(producer["EMAIL_QUEUE_SPOOL_DIR"]).glob("*.eml")) == []


def test_a_batch_with_some_failures_retries_or_dead_letters_only_those(
        producer, start_workers, redis_server, qname) -> None:
    plan: dict[str, list[str]] = {}
    tries: collections.Counter[str] = collections.Counter()

    def reply(record) -> str | None:
        mid = message_id(record.data)
        tries[mid] += 1
        script = plan.get(mid, [])
        return script[tries[mid] - 1] if tries[mid] <= len(script) else None

    with SMTPServer("plain", pipelining=True, data_reply=reply) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
        assert backend.send_messages(batch(30, "mixed")) == 30
        ids = backend.last_message_ids
        assert redis_server.client().llen(qname) == 1  # one task carries the 30
        plan[ids[3]] = ["451 4.3.0 Busy, later"]
        plan[ids[12]] = ["452 4.2.2 Mailbox full", "451 4.3.0 Busy, later"]
        plan[ids[7]] = ["550 5.1.1 No such user"]
        plan[ids[29]] = ["554 5.7.1 Rejected by policy"]
        workers = start_workers(server)
        workers.start("a")
        wait_until(lambda: (lambda st: st.pending == 0 and st.sent == 28 and st.dead == 2)(
            queue.status()), 60, "28 sent and 2 dead", workers)

        # every other message of the batch went once, on the first try, none of them again
        received = ids_received(server)
        assert received == {mid: 1 for mid in ids if mid not in (ids[7], ids[29])}
        assert collections.Counter(message_id(r.data) for r in server.handler.rejected) == {
            ids[3]: 1, ids[12]: 2, ids[7]: 1, ids[29]: 1}
        client = redis_server.client()
        attempts = {mid: json.loads(client.get(f"mailcore:queue:{qname}:sent:{mid}"))["attempts"]
                    for mid in received}
        assert attempts == {mid: {ids[3]: 2, ids[12]: 3}.get(mid, 1) for mid in received}
        # the batch's first pass was pipelined on one kept connection, in order
        first_pass = [r for r in server.messages if attempts[message_id(r.data)] == 1]
        assert len({r.connection_id for r in first_pass}) == 1
        assert [message_id(r.data) for r in first_pass] == [
            mid for mid in ids if attempts.get(mid) == 1]
        letters = {d.message_id: d for d in queue.dead_letters()}
        assert set(letters) == {ids[7], ids[29]}
        assert (letters[ids[7]].code, letters[ids[7]].reply, letters[ids[7]].attempts) == (
            550, "550 5.1.1 No such user", 1)
        assert letters[ids[29]].reply == "554 5.7.1 Rejected by policy"
        assert queue.status().duplicates == 0


def test_worker_killed_mid_batch_leaves_the_whole_batch_to_another(
        producer, start_workers, redis_server, qname) -> None:
    def slow(record) -> None:
        time.sleep(0.01)  # so that the worker is killed in the middle of the batch
        return None

    with SMTPServer("plain", pipelining=True, data_reply=slow) as server:
        backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend",
                                          batch_size=200)
        assert backend.send_messages(batch(200, "one-task")) == 200
        ids = set(backend.last_message_ids)
        assert redis_server.client().llen(qname) == 1
        workers = start_workers(server)
        first = workers.start("a")
        wait_until(lambda: len(server.messages) >= 40, 60, "40 delivered", workers)
        workers.kill(first)
        before = set(ids_received(server))
        assert 40 <= len(before) < 200  # killed mid-batch: its task was not acknowledged
        workers.start("b")
        wait_until(lambda: set(ids_received(server)) >= ids, 90, "all 200 delivered", workers)
        wait_until(finished(), 30, "the queue empty", workers)

        received = ids_received(server)
        duplicates = [mid for mid, n in received.items() if n > 1]
        assert len(duplicates) <= 1  # the documented window: one message per killed process
        st = queue.status()
        assert (st.sent, st.dead, st.pending) == (200, 0, 0)
        # the whole batch came back to worker b, which skipped what had been recorded as sent
        assert st.duplicates >= len(before) - 1


def test_payload_json_holds_the_exact_bytes(producer) -> None:
    plain = batch(1)[0]
    odd = mailcore.EmailMessage('Quote " and \\ back\tslash', 'tab\there "q" \\ é\n',
                                "from@example.com", ["to@example.com"])
    for message in (plain, odd):
        prepared = queue._prepare(message, queue.QueueConfig.from_settings(), 1.0)
        assert prepared is not None
        payload, raw = prepared
        record = queue._Encoded(payload, raw).json
        encoded = json.loads(record)
        assert encoded["text"].encode("latin-1") == raw
        # "q": written the quick way (printable ASCII lines), read back the quick way
        assert encoded.pop("q", None) == (1 if message is plain else None)
        assert {k: v for k, v in encoded.items() if k != "text"} == payload
        read = queue._loads_payload(record.encode("ascii"))
        assert queue._with_text(read) == json.loads(record)
        assert read.get("raw") == (raw if message is plain else None)
        if message is odd:
            assert read["text"].encode("latin-1") == raw


# -- without workers ----------------------------------------------------------------------------


def test_an_invalid_message_queues_nothing(producer) -> None:
    backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
    good = batch(1)[0]
    bad = mailcore.EmailMessage("x", "y", "from@example.com", ["to@example.com\r\nRCPT TO:<x@y>"])
    with pytest.raises(ValueError):
        backend.send_messages([good, bad])
    assert queue.status().pending == 0
    assert backend.send_messages([mailcore.EmailMessage("x", "y", "a@example.com", [])]) == 0


def test_big_message_without_a_spool_folder_is_refused(producer) -> None:
    settings.EMAIL_QUEUE_SPOOL_DIR = None
    message = mailcore.EmailMessage("big", "body", "from@example.com", ["to@example.com"])
    message.attach("blob.bin", b"\0" * 1_100_000, "application/octet-stream")
    backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_QUEUE_SPOOL_DIR"):
        backend.send_messages([message])
    assert queue.status().pending == 0


def test_rate_limit_per_destination_is_shared(producer) -> None:
    config = queue.QueueConfig.from_settings(
        rate_limits={"slow.example": "3/m", "*": "100/m"})
    state = queue.QueueState(config)  # a second process's view of the same Redis
    other = queue.QueueState(config)
    waits = [state.rate_wait(["slow.example"]) for _ in range(2)]
    waits.append(other.rate_wait(["slow.example"]))
    assert waits == [0.0, 0.0, 0.0]
    refused = state.rate_wait(["slow.example", "fast.example"])
    assert 0 < refused <= 60
    assert other.rate_wait(["fast.example"]) == 0.0  # other destinations go on


def test_temporary_or_permanent_by_classify() -> None:
    import smtplib

    from mailcore.errors import SMTPMessageRefusedError, classify

    def temporary(exc: BaseException) -> bool:
        return queue.is_temporary(classify(exc))

    assert temporary(SMTPMessageRefusedError(451, b"4.3.0 later", command="end of data"))
    assert not temporary(SMTPMessageRefusedError(550, b"5.7.1 no", command="end of data"))
    assert temporary(smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}))
    assert not temporary(smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy"),
                                                        "b@x": (550, b"unknown")}))
    assert temporary(ConnectionRefusedError(111, "refused"))
    assert temporary(smtplib.SMTPServerDisconnected("gone"))
    assert not temporary(ValueError("bad address"))


def test_no_secret_in_reprs(producer) -> None:
    url = "redis://:hunter2-redis@127.0.0.1:6390/1"
    settings.configure(EMAIL_QUEUE_BROKER_URL=url,
                       EMAIL_QUEUE_DELIVERY_OPTIONS={"password": "hunter2-smtp"})
    backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend")
    seen = " ".join([repr(settings), repr(settings.as_dict()), repr(backend),
                     repr(backend.config), queue.redact_url(url)])
    assert "hunter2" not in seen
    assert "127.0.0.1:6390" in repr(backend.config)


def test_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MAILCORE_EMAIL_QUEUE_RATE_LIMIT", '{"example.com": "10/s"}')
    monkeypatch.setenv("MAILCORE_EMAIL_QUEUE_DELIVERY_OPTIONS", '{"timeout": 5}')
    monkeypatch.setenv("MAILCORE_EMAIL_QUEUE_MAX_RETRIES", "3")
    monkeypatch.setenv("MAILCORE_EMAIL_QUEUE_RETRY_BACKOFF", "1.5")
    config = queue.QueueConfig.from_settings()
    assert config.rate_limits == {"example.com": (10, 1.0)}
    assert config.delivery_options == {"timeout": 5}
    assert (config.max_retries, config.retry_backoff) == (3, 1.5)
    assert config.state_url == config.broker_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("MAILCORE_EMAIL_QUEUE_RATE_LIMIT", "lots")
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT"):
        queue.QueueConfig.from_settings()


def test_the_command_queues_and_says_where(producer, redis_server, tmp_path) -> None:
    """`mailcore send --backend celery` queues the message on the configured broker; a broker
    that is not there or refuses the login is one line and an exit code, and queues nothing."""
    from mailcore.cli import EXIT_AUTH, EXIT_CONNECTION, EXIT_OK
    from mailcore.cli import run as cli_run

    argv = ["send", "--backend", "celery", "--from", "a@example.com", "--to",
            "b@example.com", "--subject", "queued from the command", "--body", "x"]
    err = io.StringIO()
    assert cli_run(argv, stdout=io.StringIO(), stderr=err) == EXIT_OK
    said = err.getvalue()
    assert said.startswith("mailcore: queued <") and redis_server.url in said
    assert queue.status().queued == 1

    with RedisServer(tmp_path / "locked", password="s3cret-pass") as locked:
        settings.configure(EMAIL_QUEUE_BROKER_URL=locked.url)  # no password given
        err = io.StringIO()
        assert cli_run(argv, stdout=io.StringIO(), stderr=err) == EXIT_AUTH
        assert "refused the login" in err.getvalue() and "nothing was queued" in err.getvalue()
        gone = locked.url
    settings.configure(EMAIL_QUEUE_BROKER_URL=gone)  # stopped: nobody listens there
    err = io.StringIO()
    assert cli_run(argv, stdout=io.StringIO(), stderr=err) == EXIT_CONNECTION
    assert f"broker at {gone} could not be reached" in err.getvalue()
    assert "s3cret" not in err.getvalue()


DJANGO_PROJECT = """
import json, sys
from django.conf import settings
settings.configure(
    EMAIL_BACKEND="mailcore.backends.celery.EmailBackend",  # the one setting
    EMAIL_QUEUE_BROKER_URL=sys.argv[1], EMAIL_QUEUE_NAME=sys.argv[2],
    DEFAULT_FROM_EMAIL="shop@example.com",
)
from django.core import mail
sent = mail.send_mail("Your order", "It ships today.", None, ["ann@example.com"])
mass = mail.send_mass_mail([("Note %d" % i, "Body", None, ["b%d@example.com" % i])
                            for i in range(3)])
print(json.dumps([sent, mass]))
"""


def test_a_django_project_queues_with_one_setting(redis_server, qname, start_workers) -> None:
    """A real Django project (its own process, Django's settings and django.core.mail) sets
    only EMAIL_BACKEND and the broker; `mailcore worker` delivers what it queued."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCORE_")}
    env["PYTHONPATH"] = str(ROOT)
    project = subprocess.run([sys.executable, "-c", DJANGO_PROJECT, redis_server.url, qname],
                             capture_output=True, text=True, timeout=60, env=env)
    assert project.returncode == 0, project.stderr
    assert json.loads(project.stdout) == [1, 3]
    assert queue.status().queued == 4  # this process's settings: the same broker and queue
    with SMTPServer("plain", pipelining=True) as server:
        workers = start_workers(server)
        workers.start("a")
        wait_until(lambda: len(server.messages) >= 4, 60, "4 delivered", workers)
        wait_until(finished(sent=4), 30, "the queue empty", workers)
        subjects = sorted(m.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
                          for m in server.messages)
        assert subjects == [b"Note 0", b"Note 1", b"Note 2", b"Your order"]
        assert all(b"From: shop@example.com" in m.data for m in server.messages)
