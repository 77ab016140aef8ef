"""How fast does the local test inbox take mail, with the window listing it? Side by side, one run.

    .venv/bin/python bench/inbox_ingest.py [--quick] [--messages 2000] [--rounds 3]
                                           [--before REF] [--no-profile] [--out FILE]

Each run starts the app's side in a child of its own: an offscreen QApplication with the real
Inbox pane (``InboxView`` shown, ``InboxController`` with its ``JobRunner``), which starts the
inbox server process as the app does (``--ack``: the client's "250" comes once the app has
heard of the message). Postfix's ``smtp-source -l 5120 -m N -s S -f a@x -t b@y`` floods it: S
parallel sessions, one message per connection (it reconnects for each), no pipelining, every
message new (its own Message-Id). A run's rate is N over the time from the start of
``smtp-source`` until the window's list shows N rows. Then one more message, with a token no
other holds, is sent and searched for through the pane's search box; a store opened afresh on
the folder (as a restart would) counts what is stored. The row is met only when the window's
count, the stored count and the count sent are equal and the search finds that one message.

Rows, rounds interleaved, best of the rounds (every run in the notes):

* ``inbox`` with 4 sessions (the target) and with 1 session (for reference);
* ``aiosmtpd-null``: aiosmtpd with a handler that stores nothing, no window (what a stock
  Python SMTP loop reaches here);
* ``before`` (only with ``--before REF``): the inbox of git REF, exported to a temp dir.

One more, untimed run per inbox row is recorded by ``py-spy`` attached to the server process
("where the time goes": the SMTP loop, storage, the journal's sync, telling the app, the idle
thread), and ``smtp-source``'s own CPU is measured (it shares the 2 cores).

It prints a table, then as its last line ``RESULT {json}`` (bench/run.py's protocol). A report,
not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMTP_SOURCE = "/usr/sbin/smtp-source"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
TARGET = 1500  # messages per second, 4 sessions (issue 16, target 2)
RSS_TARGET_MB = 64
WARM_UP = 2.0  # seconds between the server's start and the flood

# The app's side: the Inbox pane in an offscreen window. Says "PORT <port> <server pid>", then
# answers "wait N TIMEOUT" (DONE <monotonic time the list reached N rows> <rows>), "search
# TOKEN" (FOUND <count> <subject of the first>) and "cpu" (CPU <seconds used so far>).
APP_SIDE = r"""
import os, sys, threading, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from pathlib import Path
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication
from mailgui.controllers.inbox import InboxController
from mailgui.jobs import JobRunner
from mailgui.model.inbox import InboxStore
from mailgui.views.inbox import InboxView

app = QApplication([])
view = InboxView()
view.resize(1100, 700)
view.show()
runner = JobRunner()
inbox = InboxController(view, runner, InboxStore(Path(sys.argv[1]), 0, 0), port=0)
reached = {}  # rows -> when the list first showed that many
take = inbox._take_arrivals

def counted():
    take()
    reached.setdefault(view.list.topLevelItemCount(), time.monotonic())

inbox._arrival_timer.timeout.disconnect()
inbox._arrival_timer.timeout.connect(counted)

class Lines(QObject):
    line = Signal(str)

lines = Lines()
state = {}

def answer(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

def wait_rows(want, deadline):
    rows = view.list.topLevelItemCount()
    if rows >= want or time.monotonic() > deadline:
        when = min((t for n, t in reached.items() if n >= want), default=time.monotonic())
        answer(f"DONE {when} {rows}")
    else:
        QTimer.singleShot(5, lambda: wait_rows(want, deadline))

def searched(count):
    if state.pop("searching", False):
        first = next(iter(inbox.matches or ()), None)
        message = inbox.message(first)
        answer(f"FOUND {count} {message.subject if message else '-'}")

inbox.searched.connect(searched)

def command(text):
    words = text.split()
    if words[:1] == ["wait"]:
        wait_rows(int(words[1]), time.monotonic() + float(words[2]))
    elif words[:1] == ["search"]:
        state["searching"] = True
        view.search.setText(words[1])
    elif words[:1] == ["cpu"]:
        t = os.times()
        answer(f"CPU {t.user + t.system}")
    elif words[:1] == ["quit"]:
        inbox.stop()
        inbox.finish(10)
        app.quit()

lines.line.connect(command)
inbox.started.connect(lambda port: answer(f"PORT {port} {inbox.server.pid}"))
inbox.failed.connect(lambda text: answer(f"FAILED {text}"))

def read():
    for raw in sys.stdin:
        lines.line.emit(raw.strip())
    lines.line.emit("quit")

threading.Thread(target=read, daemon=True).start()
inbox.start()
app.exec()
"""

# aiosmtpd with a handler that does nothing but say 250 (a stock Python SMTP loop's ceiling).
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
        words = line.decode().split()
        if words[:1] == ["wait"]:
            deadline = time.monotonic() + float(words[2])
            while Handler.count < int(words[1]) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            print("DONE", Handler.last, Handler.count, flush=True)
        elif words[:1] == ["cpu"]:
            t = os.times()
            print("CPU", t.user + t.system, flush=True)
asyncio.run(main())
"""


class Side:
    """A server under test with the app's side (or the null handler) in one child."""

    def __init__(self, row: str, tree: Path, folder: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree), QT_QPA_PLATFORM="offscreen")
        script = NULL_SIDE if row == "aiosmtpd-null" else APP_SIDE
        self.row = row
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], env=env,
                                     cwd=str(folder.parent), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        words = self._ask(None)
        if words[:1] != ["PORT"]:
            self.stop()
            raise RuntimeError(f"{row}: the server did not start: {' '.join(words)}")
        self.port = int(words[1])
        self.server_pid = int(words[2])
        time.sleep(WARM_UP)  # as in the app, started a while before mail comes: imports done

    def _ask(self, line: str | None) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        while True:
            text = self.proc.stdout.readline()
            if not text:
                return []
            words = text.split()
            if words and words[0].isupper():
                return words

    def wait(self, count: int, timeout: float = 300) -> tuple[float, int]:
        words = self._ask(f"wait {count} {timeout}")
        return float(words[1]), int(words[2])

    def search(self, token: str) -> tuple[int, str]:
        words = self._ask(f"search {token}")
        return int(words[1]), " ".join(words[2:])

    def app_cpu(self) -> float:
        return float(self._ask("cpu")[1])

    def rss_peak_mb(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.server_pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def server_cpu(self) -> float:
        try:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def smtp_source(port: int, n: int, sessions: int) -> tuple[float, int, float]:
    """Send n messages; return (monotonic start, count sent, smtp-source's CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run([SMTP_SOURCE, "-l", "5120", "-m", str(n), "-s", str(sessions),
                           "-f", "a@x", "-t", "b@y", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=600, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        print(f"  smtp-source: {done.stderr.strip()[-300:]}", file=sys.stderr)
    return start, n if done.returncode == 0 else 0, cpu


def send_last(port: int, token: str) -> bool:
    body = f"Subject: last {token}\r\nFrom: a@x\r\nTo: b@y\r\n\r\nthe last one: {token}\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        return client.sendmail("a@x", ["b@y"], body.encode()) == {}


def stored_count(tree: Path, folder: Path) -> int:
    """What a store opened afresh on the folder lists (a restart's view), in a child."""
    code = ("import sys; from pathlib import Path; from mailgui.model.inbox import InboxStore;"
            "print(len(InboxStore(Path(sys.argv[1]), 0, 0).list()))")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(tree)), check=False)
    return int(done.stdout.strip() or -1)


def one(row: str, tree: Path, n: int, sessions: int, scratch: Path,
        profile: bool = False) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{row}-", dir=scratch)) / "inbox"
    folder.mkdir()
    side = Side(row, tree, folder)
    spies: dict[str, subprocess.Popen] = {}
    try:
        if profile:
            for name, pid in (("server", side.server_pid), ("app", side.proc.pid)):
                spies[name] = subprocess.Popen(
                    [PY_SPY, "record", "--format", "raw", "--rate", "200", "--nonblocking",
                     "--output", str(folder.parent / f"profile-{name}.txt"), "--pid",
                     str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)  # py-spy attaches
        cpu0, app0 = side.server_cpu(), side.app_cpu()
        start, sent, source_cpu = smtp_source(side.port, n, sessions)
        last, listed = side.wait(sent)
        server_cpu, app_cpu = side.server_cpu() - cpu0, side.app_cpu() - app0
        for spy in spies.values():  # the burst only (not the idle work after it)
            spy.send_signal(2)
        for spy in spies.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        profiles = {name: summarize(folder.parent / f"profile-{name}.txt")
                    for name in spies}
        result = {"row": row, "sessions": sessions, "sent": sent, "listed": listed,
                  "rate": sent / max(last - start, 1e-9) if listed == sent and sent else 0.0,
                  "rss_peak_mb": side.rss_peak_mb(),
                  "server_ms": 1000 * server_cpu / max(sent, 1),
                  "app_ms": 1000 * app_cpu / max(sent, 1),
                  "source_ms": 1000 * source_cpu / max(sent, 1)}
        if row != "aiosmtpd-null":
            token = f"tok{uuid.uuid4().hex[:12]}"
            sent_last = send_last(side.port, token)
            _when, result["listed"] = side.wait(sent + 1)
            result["sent"] = sent + sent_last
            result["found"], subject = side.search(token)
            result["found_right"] = subject == f"last {token}"
        if spies:
            result["profile"] = profiles
    finally:
        side.stop()
        for spy in spies.values():
            if spy.poll() is None:
                spy.kill()
                spy.wait()
    if row != "aiosmtpd-null":
        result["stored"] = stored_count(tree, folder)
    shutil.rmtree(folder.parent, ignore_errors=True)
    return result


# py-spy's leaf frames by file/function: what part of the server's work they are
PARTS = (
    ("the idle thread (files, details, checks after the burst)", ("_Checker", "materialise",
                                                                   "check_stored", "compute_")),
    ("journal sync (fdatasync)", ("_Journal.sync", "sync_journal")),
    ("storage (ids, headers, journal append)", ("inbox.py",)),
    ("telling the app (JSON lines, acks)", ("say_lines", "announce", "_stdin_ready",
                                            "_commands", "json")),
    ("SMTP parsing and replies (_Session)", ("_Session", "smtp_", "_path")),
    ("asyncio and the kernel's sockets", ("selector_events", "base_events", "events.py",
                                          "selectors", "transports")),
)


def summarize(raw: Path, top: int = 5) -> dict:
    """Busy samples of the server's threads from py-spy's collapsed stacks (waits left out),
    by part and by function."""
    parts: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        text = raw.read_text()
    except OSError:
        return {"parts": "(no profile: is py-spy installed and allowed to attach?)", "top": ""}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        name = leaf.split(" (")[0]
        if name.endswith(("select", ".wait", "_wait_for_tstate_lock", "_worker")) or \
                name in ("wait", "select", "poll"):
            continue  # idle: waiting for the network, a condition, or work
        n = int(count)
        total += n
        where = "other"
        for label, keys in PARTS:  # the idle thread by any frame, the rest by the leaf
            if any(k in (stack if label.startswith("the idle") else leaf) for k in keys):
                where = label
                break
        parts[where] += n
        file = leaf.split("(")[-1].split(":")[0].rsplit("/", 1)[-1] if "(" in leaf else ""
        funcs[f"{name} ({file})"] += n
    if not total:
        return {"parts": "(idle)", "top": ""}
    return {"parts": ", ".join(f"{label} {100 * c / total:.0f}%"
                               for label, c in parts.most_common()),
            "top": ", ".join(f"{label} {100 * c / total:.0f}%"
                             for label, c in funcs.most_common(top))}


def export_tree(ref: str, scratch: Path) -> Path:
    tree = scratch / f"tree-{ref}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "mailgui", "mailcore"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def fmt(rate: float) -> str:
    return f"{rate:,.0f} msg/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 500 messages, 1 round, a short profile")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="", help="also measure the inbox of this git ref")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the runs as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = min(args.messages, 500), 1
    log: list[str] = []

    def say(text: str) -> None:
        log.append(text)
        print(text, file=sys.stderr, flush=True)

    if not Path(SMTP_SOURCE).exists():
        print("RESULT " + json.dumps({"available": False, "reason": "smtp-source is missing "
                                      "(apt-get install postfix)", "rows": [], "notes": [],
                                      "details": [], "log": []}))
        return 0
    plan = [("inbox", 4), ("aiosmtpd-null", 4), ("inbox", 1)]
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="inbox-ingest-") as tmp:
        scratch = Path(tmp)
        trees = {"inbox": ROOT, "aiosmtpd-null": ROOT}
        if args.before:
            trees["before"] = export_tree(args.before, scratch)
            plan.insert(1, ("before", 4))
        for round_ in range(args.rounds):
            for row, sessions in plan:
                try:
                    r = one(row, trees[row], args.messages, sessions, scratch)
                except (RuntimeError, OSError, ValueError, IndexError) as exc:
                    say(f"round {round_} {row} -s {sessions}: failed: {exc}")
                    continue
                r["round"] = round_
                results.append(r)
                say(f"round {round_} {row:13} -s {sessions} {r['rate']:7.0f} msg/s  sent "
                    f"{r['sent']} listed {r['listed']} stored {r.get('stored', '-')} found "
                    f"{r.get('found', '-')}  server {r['server_ms']:.2f} ms/msg, app "
                    f"{r['app_ms']:.2f}, smtp-source {r['source_ms']:.2f}; server peak RSS "
                    f"{r['rss_peak_mb']:.0f} MB")
        profiles: dict[str, dict[str, dict]] = {}
        if not args.no_profile and Path(PY_SPY).exists():
            for row, sessions in (("inbox", 4),):
                with contextlib.suppress(RuntimeError, OSError, ValueError, IndexError):
                    p = one(row, trees[row], args.messages, sessions, scratch, profile=True)
                    profiles[f"{row} -s {sessions}"] = p.get("profile", {})
    return report(args, results, profiles, log)


def report(args: argparse.Namespace, results: list[dict], profiles: dict[str, dict],
           log: list[str]) -> int:
    def runs(row: str, sessions: int) -> list[dict]:
        return [r for r in results if r["row"] == row and r["sessions"] == sessions]

    def best(row: str, sessions: int) -> float:
        return max((r["rate"] for r in runs(row, sessions)), default=0.0)

    def all_ok(r: dict) -> bool:
        return (r["sent"] == r["listed"] == r.get("stored", r["sent"])
                and r.get("found", 1) == 1 and r.get("found_right", True))

    n = args.messages
    inbox4, inbox1 = runs("inbox", 4), runs("inbox", 1)
    rate4, rate1, null = best("inbox", 4), best("inbox", 1), best("aiosmtpd-null", 4)
    ok = bool(inbox4 + inbox1) and all(all_ok(r) for r in inbox4 + inbox1)
    peak = max((r["rss_peak_mb"] for r in inbox4 + inbox1), default=0.0)
    where = []
    for name, by_process in profiles.items():
        for process, prof in by_process.items():
            where.append(f"{process} process ({name}), by part: {prof.get('parts', '')}"
                         if process == "server" else
                         f"app process ({name}), hottest: {prof.get('top', '')}")
            if process == "server" and prof.get("top"):
                where.append(f"server's hottest functions: {prof['top']}")
    if inbox4:
        med = {k: statistics.median(r[k] for r in inbox4)
               for k in ("server_ms", "app_ms", "source_ms")}
        where.append(f"CPU per message (median, 4 sessions): server process "
                     f"{med['server_ms']:.2f} ms, app (window) {med['app_ms']:.2f} ms, "
                     f"smtp-source {med['source_ms']:.2f} ms, on 2 cores")
    rows = [
        {"title": f"2. inbox ingest, {n:,} × 5 KB from smtp-source, 4 sessions, listed in "
                  "the window",
         "cells": {"mailcore": fmt(rate4),
                   "aiosmtpd, no storage (same run)": fmt(null),
                   "Mailpit (published)": "200–300 msg/s"},
         "ratio": f"{rate4 / null:.1f}× aiosmtpd doing nothing" if null else "",
         "target": f"≥ {TARGET:,} msg/s", "met": bool(inbox4) and ok and rate4 >= TARGET,
         "where": where},
        {"title": f"2. inbox ingest, {n:,} × 5 KB from smtp-source, 1 session (reference)",
         "cells": {"mailcore": fmt(rate1)}, "ratio": "", "target": "", "met": None,
         "where": []},
        {"title": "2. every message stored, searchable and listed (window count = sent)",
         "cells": {"mailcore": "; ".join(
             f"-s {r['sessions']}: sent {r['sent']:,}, listed {r['listed']:,}, stored "
             f"{r.get('stored', 0):,}, token found in {r.get('found', 0)}"
             for r in (inbox4[-1:] + inbox1[-1:]))},
         "ratio": "", "target": "all equal; the last message's token found once",
         "met": ok, "where": []},
        {"title": "2. inbox server's peak RSS during the runs",
         "cells": {"mailcore": f"{peak:.0f} MB"}, "ratio": "",
         "target": f"≤ {RSS_TARGET_MB} MB (bounded)", "met": bool(inbox4) and
         peak <= RSS_TARGET_MB, "where": []},
    ]
    notes = [f"local test inbox ingest, commit {git_head()}, {time.strftime('%Y-%m-%d %H:%M')}"
             f", {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
             f"best of {args.rounds} interleaved rounds"]
    for row, sessions in (("inbox", 4), ("aiosmtpd-null", 4), ("inbox", 1)):
        mine = runs(row, sessions)
        if mine:
            notes.append(f"{row} -s {sessions}: " + ", ".join(f"{r['rate']:,.0f}" for r in mine)
                         + " msg/s")
    notes.append("Why this shape: creating a file costs ~0.7 ms of CPU on this ext4 (an "
                 "append ~3 us), so a message is acknowledged once its journal record is "
                 "written (group commit: the arrivals of one turn of the loop in one write, "
                 "their 250s after it); the journal is fdatasync'ed in the background within "
                 "0.2 s (one fdatasync per batch before the 250s, the --sync-each mode, was 26% "
                 "of the server's CPU and 1,100 against 1,800 msg/s on 2026-12-02); its .eml "
                 "and .json are written by the idle thread after the burst. The SMTP loop is "
                 "an asyncio Protocol parsing lines from a bytearray, on uvloop when installed; "
                 "the app hears of a batch in one write of JSON lines and lists it once per "
                 "frame.")
    details = []
    for (row, sessions), mine in (((k[0], k[1]), runs(*k)) for k in
                                  (("inbox", 4), ("aiosmtpd-null", 4), ("inbox", 1))):
        if mine:
            rates = [r["rate"] for r in mine]
            details.append({"benchmark": f"inbox ingest -s {sessions}", "impl": row,
                            "runs": len(mine), "best": fmt(max(rates)),
                            "median": fmt(statistics.median(rates))})
    print(f"\nlocal test inbox ingest: {n} x 5 KB from smtp-source; commit {git_head()}")
    print("| row | sessions | best msg/s | runs | server peak RSS |")
    print("|---|---:|---:|---|---:|")
    for row, sessions in (("inbox", 4), ("aiosmtpd-null", 4), ("inbox", 1)):
        mine = runs(row, sessions)
        if mine:
            every = ", ".join(f"{r['rate']:.0f}" for r in mine)
            print(f"| {row} | {sessions} | {best(row, sessions):,.0f} | {every} | "
                  f"{max(r['rss_peak_mb'] for r in mine):.0f} MB |")
    for line in where:
        print(f"- {line}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "profiles": profiles}, indent=2))
    print("RESULT " + json.dumps({"available": bool(results), "reason": "" if results else
                                  "no run completed", "rows": rows, "notes": notes,
                                  "details": details, "log": log}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
