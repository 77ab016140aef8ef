"""Does checking received mail slow the local test inbox down? Side by side, in one run.

    .venv/bin/python bench/inbox_checks.py [--messages 400] [--rounds 3] [--out FILE]

Starts the inbox server process (``mailgui.model.inbox_server``) with and without its checker
thread, rounds interleaved, and sends the same burst of newsletter-like messages (text, 20 KB of
styled HTML, an image link) over one SMTP connection with mailcore. It reports, per mode:

* ingest: messages per second from the first MAIL to the last message stored (what a program
  under test sees);
* checked: seconds after the burst until every message has its ``.checks.json``;
* the cost of each local check on one such message, in the same run.

A report, not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import mailcore  # noqa: E402
from mailcore.checks import MessageView, run_check  # noqa: E402

STYLE = """<style>
  body { margin: 0; font-family: Helvetica, Arial, sans-serif; }
  .card { display: flex; border-radius: 8px; box-shadow: 0 1px 3px #ccc; }
  @media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } }
  @media (max-width: 600px) { .card { display: block; } }
</style>"""


def newsletter(i: int) -> mailcore.EmailMultiAlternatives:
    rows = "\n".join(
        f'<tr><td class="card" style="padding: 12px; color: #333">Item {n} of issue {i}: '
        f'<a href="https://shop.example.com/item/{n}?utm_source=news">see it</a></td></tr>'
        for n in range(120)
    )
    html = (
        f"<!DOCTYPE html><html><head>{STYLE}</head><body>"
        f'<img src="https://cdn.example.com/logo.png" width="200">'
        f"<table>{rows}</table></body></html>"
    )
    text = "\n".join(f"Item {n} of issue {i}: https://shop.example.com/item/{n}"
                     for n in range(120))
    msg = mailcore.EmailMultiAlternatives(
        f"Issue {i}", text, "News <news@example.com>", ["reader@example.org"],
        headers={"Message-ID": mailcore.make_msgid(domain="example.com")},
    )
    msg.attach_alternative(html, "text/html")
    return msg


class Server:
    def __init__(self, folder: Path, checks: bool) -> None:
        argv = [sys.executable, "-m", "mailgui.model.inbox_server", "--dir", str(folder),
                "--max-messages", "0", "--max-bytes", "0"]
        if not checks:
            argv.append("--no-checks")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.stored = 0
        self.checked = 0
        self.last_stored = 0.0
        self.last_checked = 0.0
        self.port = 0
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                now = time.perf_counter()
                if line.startswith("READY "):
                    self.port = int(line.split()[1])
                    ready.set()
                elif line.startswith("{"):
                    self.stored += 1
                    self.last_stored = now
                elif line.startswith("CHECKED "):
                    self.checked += 1
                    self.last_checked = now

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            raise RuntimeError("the inbox server did not start")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def one_round(messages: list, checks: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="inbox-bench-") as tmp:
        server = Server(Path(tmp), checks)
        try:
            conn = mailcore.get_connection("smtp", host="127.0.0.1", port=server.port,
                                           timeout=60)
            start = time.perf_counter()
            sent = conn.send_messages(messages)
            deadline = time.monotonic() + 60
            while server.stored < sent and time.monotonic() < deadline:
                time.sleep(0.005)
            ingest = sent / (server.last_stored - start)
            checked_after = float("nan")
            if checks:
                deadline = time.monotonic() + 600
                while server.checked < sent and time.monotonic() < deadline:
                    time.sleep(0.02)
                checked_after = server.last_checked - server.last_stored
            return {"ingest": ingest, "checked_after": checked_after, "sent": sent}
        finally:
            server.stop()


def check_costs(rounds: int = 30) -> dict[str, float]:
    raw = MessageView.of(newsletter(0)).raw
    out: dict[str, float] = {}
    for name in ("clients", "lint", "dkim"):
        times = []
        for _ in range(rounds):
            view = MessageView(raw)
            t = time.perf_counter()
            run_check(name, view)
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times) * 1000
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        view = MessageView(raw)
        for name in ("clients", "lint", "dkim"):
            run_check(name, view)
        times.append(time.perf_counter() - t)
    out["all three, parse included"] = statistics.median(times) * 1000
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    messages = [newsletter(i) for i in range(args.messages)]
    size = len(MessageView.of(messages[0]).raw)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for r in range(args.rounds):
        for checks in ((False, True) if r % 2 == 0 else (True, False)):
            results[checks].append(one_round(messages, checks))
            print(f"round {r + 1} checks={'on' if checks else 'off'}: "
                  f"{results[checks][-1]['ingest']:.0f} msg/s", file=sys.stderr)
    costs = check_costs()
    off = statistics.median(x["ingest"] for x in results[False])
    on = statistics.median(x["ingest"] for x in results[True])
    after = statistics.median(x["checked_after"] for x in results[True])
    lines = [
        f"# Inbox ingest with and without the checks ({args.messages} messages of "
        f"{size / 1000:.0f} KB, {args.rounds} interleaved rounds, medians)",
        "",
        "| inbox | ingest | every message checked |",
        "|---|---|---|",
        f"| checks off (`--no-checks`) | {off:,.0f} msg/s | |",
        f"| checks on | {on:,.0f} msg/s ({on / off:.0%} of off) | {after:.1f} s after the "
        "last message was stored |",
        "",
        "| one local check of one such message | median |",
        "|---|---|",
        *[f"| {name} | {ms:.1f} ms |" for name, ms in costs.items()],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
