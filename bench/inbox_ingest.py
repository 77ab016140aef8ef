"""How fast does the local test inbox take mail? Side by side, in one run.

    .venv/bin/python bench/inbox_ingest.py [--messages 2000] [--sessions 4] [--rounds 2]
                                           [--before REF] [--no-profile] [--out FILE]

Each row starts a server the way the app does (``InboxServer``: the server process with
``--ack``, a reader thread that hears of every stored message and acknowledges it) in a fresh
folder, floods it, and reports messages per second from the first connection until the last
message is stored *and* the app side has been told of it (listed), the count the app heard of
and the count of ``.eml`` files (both must equal the count sent), and the peak RSS of the
server process. The clients:

* Postfix's ``smtp-source -c -l 5120 -m N -s S -f a@x -t b@y``: S parallel sessions, one message
  per connection (it reconnects for each), no pipelining: what the issue's target is about;
* mailcore's own client: ``send_messages`` of N 5 KB messages, each new, over one pipelined
  connection.

Rows: ``aiosmtpd-null`` (aiosmtpd with a handler that stores nothing: the ceiling the old
server loop set), ``before`` (the inbox of git ``REF``, default HEAD, exported to a temp dir)
and ``inbox`` (this tree). Rounds are interleaved. A last, untimed pass per row runs under
``py-spy`` and prints where the server's time goes (self time, top functions).

A report, not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMTP_SOURCE = "/usr/sbin/smtp-source"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

# The app's side, run in a child with PYTHONPATH at the tree under test: starts InboxServer,
# says "PORT <port> <pid>", then for each "wait N" line waits until N messages were heard of
# and prints "DONE <monotonic time of the Nth> <count>".
APP_SIDE = r"""
import sys, threading, time
from pathlib import Path
from mailgui.model.inbox import InboxServer, InboxStore
count = 0
last = 0.0
cond = threading.Condition()
def seen(_item):
    global count, last
    with cond:
        count += 1
        last = time.monotonic()
        cond.notify_all()
server = InboxServer(InboxStore(Path(sys.argv[1]), 0, 0), on_message=seen)
port = server.start(30)
print("PORT", port, server.pid, flush=True)
for line in sys.stdin:
    words = line.split()
    if words[:1] == ["wait"]:
        want = int(words[1])
        with cond:
            cond.wait_for(lambda: count >= want, timeout=float(words[2]))
            print("DONE", last, count, flush=True)
server.stop()
"""

# aiosmtpd with a handler that does nothing but say 250 (what the old loop could reach).
NULL_SIDE = r"""
import asyncio, os, sys, time
from aiosmtpd.smtp import SMTP
class Handler:
    count = 0
    last = 0.0
    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        Handler.last = time.monotonic()
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), decode_data=False, enable_SMTPUTF8=True), "127.0.0.1", 0)
    print("PORT", server.sockets[0].getsockname()[1], os.getpid(), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.split()
        if words[:1] == [b"wait"]:
            deadline = time.monotonic() + float(words[2])
            while Handler.count < int(words[1]) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            print("DONE", Handler.last, Handler.count, flush=True)
asyncio.run(main())
"""

# mailcore's client in a child of its own (the server and the client never share a GIL).
MAILCORE_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
import mailcore
n, port = int(sys.argv[1]), int(sys.argv[2])
body = ("x" * 77 + "\n") * 65
messages = [mailcore.EmailMessage(f"Message {i}", f"{i}\n{body}", "a@x.example",
                                  ["b@y.example"]) for i in range(n)]
conn = mailcore.get_connection("smtp", host="127.0.0.1", port=port, timeout=120)
print("START", time.monotonic(), flush=True)
print("SENT", conn.send_messages(messages), flush=True)
"""


class Side:
    """A server under test, with the app's side (or the null handler) in one child."""

    def __init__(self, row: str, tree: Path, folder: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree))
        script = NULL_SIDE if row == "aiosmtpd-null" else APP_SIDE
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], env=env,
                                     cwd=str(folder.parent), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()
        if words[:1] != ["PORT"]:
            raise RuntimeError(f"{row}: the server did not start")
        self.port = int(words[1])
        self.server_pid = self._server_pid(int(words[2]))

    def _server_pid(self, pid: int) -> int:
        return pid

    def wait(self, count: int, timeout: float = 300) -> tuple[float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"wait {count} {timeout}\n")
        self.proc.stdin.flush()
        words = self.proc.stdout.readline().split()
        return float(words[1]), int(words[2])

    def rss(self) -> tuple[int, int]:
        """(peak, now) resident set of the server process, KiB."""
        out = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.server_pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0])
        return out.get("VmHWM", 0), out.get("VmRSS", 0)

    def cpu(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        try:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def flood(client: str, port: int, n: int, sessions: int) -> tuple[float, int]:
    """Send n messages; return (monotonic time of the first connection, count sent)."""
    if client == "smtp-source":
        start = time.monotonic()
        done = subprocess.run([SMTP_SOURCE, "-l", "5120", "-m", str(n), "-s", str(sessions),
                               "-f", "a@x", "-t", "b@y", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode:
            print(f"  smtp-source: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return start, n if done.returncode == 0 else 0
    proc = subprocess.run([sys.executable, "-c", MAILCORE_CLIENT, str(n), str(port), str(ROOT)],
                          capture_output=True, text=True, timeout=600, check=False)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    if "START" not in lines:
        print(f"  mailcore client: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return time.monotonic(), 0
    return float(lines["START"]), int(lines.get("SENT", "0"))


def eml_count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.eml"))


def one(row: str, tree: Path, client: str, n: int, sessions: int, scratch: Path,
        profile: bool = False) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{row}-", dir=scratch)) / "inbox"
    folder.mkdir()
    side = Side(row, tree, folder)
    spy = None
    try:
        if profile:
            raw = folder.parent / "profile.txt"
            spy = subprocess.Popen([PY_SPY, "record", "--format", "raw", "--rate", "250",
                                    "--nonblocking", "--output", str(raw),
                                    "--pid", str(side.server_pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        cpu = side.cpu()
        start, sent = flood(client, side.port, n, sessions)
        last, heard = side.wait(sent)
        cpu = side.cpu() - cpu
        peak, now = side.rss()
        stored = eml_count(folder) if row != "aiosmtpd-null" else heard
        result = {"row": row, "client": client, "sent": sent, "listed": heard,
                  "stored": stored, "rate": sent / max(last - start, 1e-9) if heard == sent
                  else 0.0, "rss_peak_mb": peak / 1024, "rss_mb": now / 1024,
                  "cpu_ms": 1000 * cpu / max(sent, 1)}
        if spy is not None:
            spy.send_signal(2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
            result["profile"] = summarize(folder.parent / "profile.txt")
        return result
    finally:
        side.stop()
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        shutil.rmtree(folder.parent, ignore_errors=True)


def summarize(raw: Path, top: int = 6) -> str:
    """Self time per function from py-spy's collapsed stacks (idle waits left out)."""
    selfs: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        text = raw.read_text()
    except OSError:
        return "(no profile: is py-spy installed and allowed to attach?)"
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        name = leaf.split(" (")[0]
        where = leaf.split("(")[-1].split(":")[0].rsplit("/", 1)[-1] if "(" in leaf else ""
        label = f"{name} ({where})"
        if name in ("select", "poll", "epoll_wait", "wait", "_wait_for_tstate_lock") or \
                "threading.py" in leaf and name in ("wait", "_wait"):
            continue
        if name == "read" and "watch_stdin" in stack:
            continue
        selfs[label] += int(count)
        total += int(count)
    if not total:
        return "(idle)"
    return ", ".join(f"{label} {100 * c / total:.0f}%" for label, c in selfs.most_common(top))


def export_tree(ref: str, scratch: Path) -> Path:
    tree = scratch / f"tree-{ref}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "mailgui", "mailcore"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="HEAD", help="git ref of the 'before' row")
    parser.add_argument("--rows", default="aiosmtpd-null,before,inbox")
    parser.add_argument("--clients", default="smtp-source,mailcore")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if not Path(SMTP_SOURCE).exists():
        print("smtp-source is missing (apt-get install postfix)", file=sys.stderr)
    rows = args.rows.split(",")
    clients = args.clients.split(",")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="inbox-ingest-") as tmp:
        scratch = Path(tmp)
        trees = {"inbox": ROOT, "aiosmtpd-null": ROOT}
        if "before" in rows:
            trees["before"] = export_tree(args.before, scratch)
        for round_ in range(args.rounds):
            for client in clients:
                for row in rows:
                    r = one(row, trees[row], client, args.messages, args.sessions, scratch)
                    r["round"] = round_
                    results.append(r)
                    print(f"  round {round_} {row:14} {client:11} {r['rate']:8.0f} msg/s "
                          f"sent {r['sent']} listed {r['listed']} stored {r['stored']} "
                          f"rss {r['rss_peak_mb']:.0f} MB cpu {r['cpu_ms']:.2f} ms/msg",
                          file=sys.stderr, flush=True)
        profiles = {}
        if not args.no_profile and Path(PY_SPY).exists():
            for row in rows:
                p = one(row, trees[row], clients[0], args.messages, args.sessions, scratch,
                        profile=True)
                profiles[row] = p.get("profile", "")
    print(f"\nlocal test inbox ingest: {args.messages} x 5 KB, smtp-source -s {args.sessions} "
          f"(a connection per message) and mailcore (one pipelined connection); "
          f"median of {args.rounds}; commit {git_head()}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| row | client | msg/s | sent | listed | stored | server CPU per message "
          "| server peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for client in clients:
        for row in rows:
            mine = [r for r in results if r["row"] == row and r["client"] == client]
            rate = statistics.median(r["rate"] for r in mine)
            last = mine[-1]
            cpu = statistics.median(r["cpu_ms"] for r in mine)
            print(f"| {row} | {client} | {rate:,.0f} | {last['sent']} | {last['listed']} | "
                  f"{last['stored']} | {cpu:.2f} ms | "
                  f"{max(r['rss_peak_mb'] for r in mine):.0f} MB |")
    if profiles:
        print("\nwhere the server's time goes (py-spy, self time, smtp-source flood):")
        for row, text in profiles.items():
            print(f"- {row}: {text}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "profiles": profiles}, indent=2))
    return 0


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
