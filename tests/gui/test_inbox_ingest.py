"""The local test inbox under a burst (issue 16, points 2 and 1c): every message from several
concurrent clients stored, listed, searchable and shown in the window; the server's memory not
growing with what it received; no acknowledged message lost when the server is killed; the
journal of the group commit repairing what a crash left; the lean SMTP loop's parsing.

Real parts: the real inbox child process, real SMTP clients (smtplib, raw sockets) on
127.0.0.1 in threads, real files. Nothing here is timed."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailgui.model.inbox import JOURNAL_NAME, InboxServer, InboxStore
from mailgui.model.inbox_tools import SearchIndex

BURST = 2000
CLIENTS = 4


ROOT = Path(__file__).parents[2]


def message(i: int, size: int = 5120) -> bytes:
    head = (f"From: Sender {i % 7} <s{i % 7}@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            f"Subject: burst {i}\r\nMessage-ID: <m{i}@example.test>\r\n\r\n").encode()
    line = f"word{i} token-{i:05d} and some padding text to fill the line\r\n".encode()
    return head + line * max(1, size // len(line))


def flood(port: int, indexes: range, clients: int = CLIENTS,
          replies: list[str] | None = None) -> int:
    """Send message(i) for each i, spread over ``clients`` concurrent SMTP sessions (a few
    messages per connection, as programs under test do); return how many got a 250."""
    chunks = [list(indexes[k::clients]) for k in range(clients)]
    lock = threading.Lock()

    def session(mine: list[int]) -> int:
        done = 0
        for start in range(0, len(mine), 50):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                    client.ehlo()
                    for i in mine[start:start + 50]:
                        client.mail("a@example.test")
                        client.rcpt("bob@example.test")
                        code, reply = client.data(message(i))
                        if code == 250:
                            done += 1
                            if replies is not None:
                                with lock:
                                    replies.append(reply.decode())
            except (OSError, smtplib.SMTPException):
                return done  # the server went away (the crash test)
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(session, chunks))


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[InboxServer, list]]:
    seen: list = []
    lock = threading.Lock()

    def heard(item: object) -> None:
        with lock:
            seen.append(item)

    srv = InboxServer(InboxStore(tmp_path / "inbox", 0, 0), on_message=heard)
    srv.start()
    yield srv, seen
    srv.stop()


def test_a_burst_from_concurrent_clients_is_stored_listed_and_searchable(server) -> None:  # noqa: ANN001
    srv, seen = server
    assert flood(srv.port, range(BURST)) == BURST
    # every 250 came after the app was told: the count it heard is the count sent
    assert len(seen) == BURST and len({m.id for m in seen}) == BURST
    stored = srv.store.list()
    assert len(stored) == BURST
    assert sorted(m.subject for m in stored) == sorted(f"burst {i}" for i in range(BURST))
    by_subject = {m.subject: m for m in stored}
    for i in (0, 1, 999, BURST - 1):
        assert srv.store.read(by_subject[f"burst {i}"].id) == message(i)  # byte for byte
    assert by_subject["burst 5"].from_header == "Sender 5 <s5@example.test>"
    # searchable: by a word of each body, by subject, by address; counts equal
    index = SearchIndex(srv.store)
    assert index.search("token-01234", stored) == {by_subject["burst 1234"].id}
    assert len(index.search("padding", stored)) == BURST
    assert len(index.search("s3@example.test", stored)) == len(range(3, BURST, 7))
    # once the server is idle, every small message has its details and the journal is gone
    folder = srv.store.folder
    assert _wait_for(lambda: not (folder / JOURNAL_NAME).exists()
                     and len(list(folder.glob("*.details.json"))) == BURST)


def test_the_server_does_not_keep_what_it_received(server) -> None:  # noqa: ANN001
    srv, _seen = server
    pid = srv.pid
    assert pid is not None
    assert flood(srv.port, range(200)) == 200  # warmed up: imports, buffers, the pool
    before = _rss_kib(pid)
    big = 100 * 1024 * 1024 // (50 * 1024)  # 100 MB of 50 KB messages

    def fifty_kb(port: int) -> int:
        def session(k: int) -> int:
            done = 0
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                for i in range(k, big, CLIENTS):
                    done += client.sendmail("a@example.test", ["b@example.test"],
                                            message(10_000 + i, 50 * 1024)) == {}
            return done

        with ThreadPoolExecutor(CLIENTS) as pool:
            return sum(pool.map(session, range(CLIENTS)))

    assert fifty_kb(srv.port) == big
    assert len(srv.store.list()) == 200 + big
    grown = _rss_kib(pid) - before
    assert grown < 32 * 1024, f"the server grew by {grown} KiB after 100 MB"


def test_a_killed_server_loses_no_message_that_got_its_250(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    srv = InboxServer(InboxStore(folder, 0, 0))
    port = srv.start()
    pid = srv.pid
    assert pid is not None
    replies: list[str] = []
    result: list[int] = []
    sender = threading.Thread(target=lambda: result.append(
        flood(port, range(3000), replies=replies)))
    sender.start()
    assert _wait_for(lambda: len(replies) >= 300, timeout=60)
    os.kill(pid, signal.SIGKILL)  # mid-burst: no chance to checkpoint or to close anything
    sender.join(60)
    assert result and 300 <= result[0] < 3000
    acked = {r.rsplit(" ", 1)[1] for r in replies}
    assert len(acked) == result[0]
    srv.stop()
    # as it is on disk right after the kill, and after a restart (which replays the journal)
    on_disk = {m.id for m in InboxStore(folder).list()}
    assert acked <= on_disk
    again = InboxServer(InboxStore(folder, 0, 0))
    again.start()
    try:
        kept = {m.id: m for m in again.store.list()}
        assert acked <= set(kept)
        for msg_id in list(acked)[:50]:
            data = again.store.read(msg_id)
            i = int(kept[msg_id].subject.split()[1])
            assert data == message(i)
    finally:
        again.stop()


def test_the_journal_brings_back_what_a_crash_left_unwritten(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    store = InboxStore(folder, 0, 0)
    kept = store.add("a@example.test", ["b@example.test"], message(1))
    # a batch made durable in the journal, whose files were never written (power lost)
    batch = store.begin_batch([("a@example.test", ["b@example.test"], message(i), "peer")
                               for i in (2, 3)])
    store.sync_journal()
    lost = [item.id for item in batch.items]
    # listed and readable from the journal already, by a store that was not told of them
    # (the app's, after the server's crash), though their files are not there
    fresh = InboxStore(folder)
    assert [m.id for m in fresh.list()] == [kept.id, *lost]
    assert fresh.read(lost[1]) == message(3)
    assert not fresh.path(lost[0]).exists()
    # and one whose .eml was cut short
    short = store.begin_batch([("c@example.test", ["d@example.test"], message(4), "")])
    store.sync_journal()
    store.write_batch(short)
    store.path(short.items[0].id).write_bytes(message(4)[:100])
    again = InboxStore(folder, 0, 0)
    assert sorted(again.recover()) == sorted([*lost, short.items[0].id])
    listed = {m.id: m for m in again.list()}
    assert set(listed) == {kept.id, *lost, short.items[0].id}
    assert again.read(lost[0]) == message(2) and again.read(lost[1]) == message(3)
    assert again.read(short.items[0].id) == message(4)
    assert listed[lost[0]].subject == "burst 2" and listed[lost[0]].peer == "peer"
    assert not (folder / JOURNAL_NAME).exists()  # checkpointed: nothing left to replay
    assert again.recover() == []
    # a torn last record (never acknowledged) is left out, the whole ones before it kept
    torn = InboxStore(folder, 0, 0)
    whole = torn.begin_batch([("e@example.test", ["f@example.test"], message(5), "")])
    torn.sync_journal()
    with open(folder / JOURNAL_NAME, "ab") as journal:
        journal.write(b"MGJ1" + b"\x00" * 10)
    assert InboxStore(folder, 0, 0).recover() == [whole.items[0].id]


def _session(port: int, script: bytes, replies: int, *, pieces: int = 1) -> list[bytes]:
    """Send ``script`` in ``pieces`` writes (1: pipelined in one) and read reply lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        step = max(1, len(script) // pieces)
        for start in range(0, len(script), step):
            s.sendall(script[start:start + step])
            if pieces > 1:
                time.sleep(0.001)
        return [f.readline() for _ in range(replies)]


def test_the_lean_loop_answers_as_an_smtp_server_does(server) -> None:  # noqa: ANN001
    srv, seen = server
    script = (b"MAIL FROM:<a@example.test>\r\n"  # before HELO
              b"EHLO client\r\n"
              b"RCPT TO:<b@example.test>\r\n"  # before MAIL
              b"DATA\r\n"  # before RCPT
              b"MAIL FROM:<a@example.test> BODY=8BITMIME SMTPUTF8\r\n"
              b"MAIL FROM:<x@example.test>\r\n"  # nested
              b"NOOP\r\nVRFY bob\r\nXYZZY\r\nRSET\r\n"
              b"MAIL FROM:<a@example.test> FOO=BAR\r\n"
              b"mail from:<>\r\nrcpt to:<b@example.test>\r\nDATA extra\r\nQUIT\r\n")
    replies = _session(srv.port, script, 19)
    codes = [r[:3] for r in replies]
    assert codes[0] == b"503" and b"HELO first" in replies[0]
    ehlo = replies[1:6]
    assert [r[:4] for r in ehlo] == [b"250-"] * 4 + [b"250 "]
    assert {b"8BITMIME", b"SMTPUTF8", b"PIPELINING"} <= {r[4:].strip() for r in ehlo}
    assert codes[6:] == [b"503", b"503", b"250", b"503", b"250", b"252", b"500", b"250",
                         b"555", b"250", b"250", b"501", b"221"]
    assert seen == []


@pytest.mark.parametrize("pieces", [1, 7, 400])
def test_data_split_anywhere_ends_at_the_final_dot_only(server, pieces: int) -> None:  # noqa: ANN001
    srv, seen = server
    content = (b"Subject: split\r\n\r\n.leading dot\r\n.\r\nnot yet\r\nx.\r\n"
               + b"line\r\n" * 50 + b".\r\n")  # lines of a lone "." inside, dot-stuffed
    stuffed = content.replace(b"\r\n.", b"\r\n..")
    script = (b"EHLO c\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
              + stuffed + b".\r\n"
              b"MAIL FROM:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n.\r\n"
              b"QUIT\r\n")
    replies = _session(srv.port, script, 14, pieces=pieces)
    assert [r[:3] for r in replies[5:]] == [b"250", b"250", b"354", b"250",
                                            b"250", b"250", b"354", b"250", b"221"]
    assert _wait_for(lambda: len(seen) == 2, timeout=20)
    first, second = sorted(seen, key=lambda m: m.mail_from)
    assert srv.store.read(first.id) == content
    assert srv.store.read(second.id) == b""
    assert first.subject == "split"


def test_the_window_lists_every_message_of_a_burst(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox, view = gui.controller.inbox, gui.window.inbox
    gui.window.side.setCurrentIndex(0)  # the inbox pane is shown while the burst lands
    inbox.set_limits(0, 0)  # keep all (the default keeps Mailpit's 500)
    batches: list[int] = []
    take = inbox._take_arrivals

    def counted() -> None:  # how many rows each frame added
        before = view.list.topLevelItemCount()
        take()
        batches.append(view.list.topLevelItemCount() - before)

    inbox._arrival_timer.timeout.disconnect()
    inbox._arrival_timer.timeout.connect(counted)
    sent: list[int] = []
    sender = threading.Thread(target=lambda: sent.append(flood(inbox.port, range(BURST))))
    sender.start()
    qtbot.waitUntil(lambda: view.list.isVisible(), timeout=30000)  # from the first arrival
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == BURST, timeout=120000)
    sender.join(60)
    assert sent == [BURST]
    assert len(inbox.messages) == BURST
    subjects = {view.list.topLevelItem(i).text(3) for i in range(view.list.topLevelItemCount())}
    assert subjects == {f"burst {i}" for i in range(BURST)}
    # the first is being read (the count follows a burst a few times a second)
    qtbot.waitUntil(lambda: gui.window.inbox_badge.count == BURST - 1, timeout=2000)
    # rows joined the list a frame's worth at a time, not one by one (a frame takes what its
    # share of time allows; the rest waits for the next)
    assert sum(batches) == BURST and len(batches) < BURST
    assert len(inbox.store.list()) == BURST


def _journal_syncs(trace: Path) -> int:
    """The fdatasync/fsync calls on the journal in an ``strace -y`` log."""
    return sum(1 for line in trace.read_text().splitlines()
               if ("fdatasync(" in line or "fsync(" in line) and JOURNAL_NAME in line
               and "= 0" in line)


@pytest.mark.parametrize("sync_each", [False, True], ids=["synced-soon", "sync-each"])
def test_a_250_means_stored_and_the_journal_reaches_the_disk(tmp_path: Path,
                                                             sync_each: bool) -> None:
    """By default a "250" follows the message's journal record being written (a killed
    server loses nothing) and the journal is synced to the disk within SYNC_AFTER, once for
    many messages; ``--sync-each`` syncs before every batch's 250s. Counted from the real
    process's system calls (strace), the server killed with SIGKILL (no shutdown sync)."""
    from mailgui.model.inbox_server import SYNC_AFTER

    folder, trace = tmp_path / "in", tmp_path / "trace"
    argv = [sys.executable, "-m", "mailgui.model.inbox_server", "--dir", str(folder),
            *(["--sync-each"] if sync_each else [])]
    proc = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=fdatasync,fsync",
                             "-o", str(trace), *argv],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    sent = 20
    try:
        ready = proc.stdout.readline().split()
        assert ready and ready[0] == b"READY", proc.stderr.read()
        port = int(ready[1])
        for i in range(sent):  # one at a time: each its own batch
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail("a@example.test", ["b@example.test"], message(i))
        time.sleep(SYNC_AFTER + 0.2)  # (before the idle checkpoint at 0.5 s)
        syncs = _journal_syncs(trace)
        proc.send_signal(signal.SIGKILL)  # the server only: strace reports and exits
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    if sync_each:
        assert syncs >= sent  # before each 250
    else:
        assert 1 <= syncs <= sent // 4  # it reached the disk, in few syncs for many messages
    # everything acknowledged is there for the store a restart opens
    stored = InboxStore(folder).list()
    assert sorted(m.subject for m in stored) == sorted(f"burst {i}" for i in range(sent))
