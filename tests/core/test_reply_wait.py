"""How the SMTP client waits for a reply: it watches the socket on the CPU for a short while
before it sleeps (mailcore.smtp.SPIN_MAX_NS), and stops watching on a connection whose replies
take longer than that, so a distant server costs no CPU.

The server is a separate process on 127.0.0.1 (so that its replies do not wait for this
process's GIL): ``NOOP <ms>`` is answered after that many milliseconds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import mailcore.smtp
from mailcore.smtp import SMTP, SPIN_MAX_NS, SPIN_START_NS

SERVER = textwrap.dedent("""
    import socket, sys, time
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = conn.makefile("rb")
    conn.sendall(b"220 localhost ESMTP\\r\\n")
    for line in reader:
        verb, _, argument = line.strip().partition(b" ")
        verb = verb.upper()
        if verb == b"NOOP" and argument:
            time.sleep(int(argument) / 1000)
        if verb == b"QUIT":
            conn.sendall(b"221 Bye\\r\\n")
            break
        conn.sendall(b"250-localhost\\r\\n250 PIPELINING\\r\\n" if verb == b"EHLO"
                     else b"250 2.0.0 OK\\r\\n")
""")


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTP]:
    # The watch is skipped while more processes are ready to run than there are CPUs (a test
    # of its own, below); these tests are about the watch itself, whatever else runs
    monkeypatch.setattr(mailcore.smtp, "_CPUS", 1 << 20)
    monkeypatch.setattr(mailcore.smtp, "_BUSY", [0, None, False, None])
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        smtp = SMTP("127.0.0.1", port, timeout=10)
        smtp.ehlo()
        yield smtp
        if smtp.sock is not None:
            smtp.quit()
        smtp.close()
    finally:
        server.kill()
        server.wait()


def noop(smtp: SMTP, delay_ms: int = 0) -> None:
    code, _ = smtp.docmd("NOOP", str(delay_ms) if delay_ms else "")
    assert code == 250


def test_replies_from_a_server_on_this_machine_are_caught_by_the_watch(connection):
    stream = connection.file.raw
    for _ in range(200):
        noop(connection)
    assert stream.caught > 0, "no reply came within the watch"
    # (where it ends depends on the machine's last few replies: on a loaded one several in
    # a row may take longer than the watch, which then stops, as it should)
    assert 0 <= stream.spin_ns <= SPIN_MAX_NS


def test_a_slow_server_stops_the_watch_and_a_fast_one_starts_it_again(connection):
    stream = connection.file.raw
    for _ in range(6):  # 5 ms each: each watch runs out, and the next one is half as long
        noop(connection, 5)
    assert stream.spin_ns == 0
    watched = stream.missed
    for _ in range(10):
        noop(connection, 5)
    assert stream.spin_ns == 0
    assert stream.missed == watched, "the client kept watching for replies that come late"
    noop(connection)  # an answer at once: the next wait is watched again
    for _ in range(20):
        noop(connection)
    assert stream.spin_ns >= SPIN_START_NS, (stream.spin_ns, stream.caught, stream.missed)


def test_a_timeout_still_bounds_the_wait(connection):
    connection.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        connection.docmd("NOOP", "2000")


def test_the_watch_can_be_turned_off(connection, monkeypatch):
    monkeypatch.setattr(SMTP, "watch_replies", False)
    connection.file = None  # the reader is made again (as after STARTTLS), now without it
    for _ in range(20):
        noop(connection)
    stream = connection.file.raw
    assert stream.spin_ns == -1
    assert stream.caught == stream.missed == 0


CLIENT = textwrap.dedent("""
    import json, os, sys
    os.sched_setaffinity(0, {0})
    import mailcore.smtp
    from mailcore.smtp import SMTP
    # the machine counts as busy here (the busy process and the server), which skips the
    # watch altogether (see the next test); this one is about the yield on its own
    mailcore.smtp._CPUS = 1 << 20
    smtp = SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
    smtp.ehlo()
    for _ in range(30):
        smtp.docmd("NOOP", "1")
    stream = smtp.file.raw
    print(json.dumps({"yielded": stream.yielded, "spin_ns": stream.spin_ns,
                      "skipped": stream.skipped, "caught": stream.caught}))
    smtp.quit()
""")
HOG = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"


def test_the_watch_gives_way_to_a_process_that_wants_the_cpu():
    """A client and a busy process on one CPU: the client's watch yields, the busy process
    runs, and the watch ends there (the read sleeps) instead of spinning on."""
    seen = client_beside_busy_processes(CLIENT, [HOG])
    assert seen["yielded"] > 0, seen
    assert seen["skipped"] == 0, seen


def client_beside_busy_processes(client: str, busy: list[str]) -> dict:
    """Run ``client`` (a script given the server's port) against the NOOP server while the
    ``busy`` scripts spin; what it printed (JSON)."""
    import json

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    hogs = [subprocess.Popen([sys.executable, "-c", script]) for script in busy]
    try:
        port = server.stdout.readline().strip()
        out = subprocess.run([sys.executable, "-c", client, port], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return json.loads(out)
    finally:
        for proc in (*hogs, server):
            proc.kill()
            proc.wait()


BUSY_CLIENT = textwrap.dedent("""
    import json, sys
    from mailcore.smtp import SMTP
    smtp = SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
    smtp.ehlo()
    for _ in range(10):  # each reply 1 ms away: on a quiet machine, watches that run out
        smtp.docmd("NOOP", "1")
    stream = smtp.file.raw
    print(json.dumps({"skipped": stream.skipped, "caught": stream.caught,
                      "missed": stream.missed, "yielded": stream.yielded}))
    smtp.quit()
""")


def test_with_more_busy_processes_than_cpus_the_client_does_not_watch():
    """More busy processes than CPUs: no CPU would halt while the client waits, so it sleeps
    on each reply at once instead of watching (the watch would only take CPU from them)."""
    import os

    seen = client_beside_busy_processes(
        BUSY_CLIENT, ["while True:\n    pass\n"] * ((os.cpu_count() or 1) + 1))
    assert seen["skipped"] > 0, seen
    assert seen["caught"] == seen["missed"] == seen["yielded"] == 0, seen
