"""Queued sending (issue 17): N messages of 5 KB through 1, 2 and 4 Celery worker processes
(one ``mailcore worker -c W`` with a prefork pool, and W ``mailcore worker --pool solo``) to
Postfix's ``smtp-sink``, against mailcore's direct
``send_messages`` to the same sink in the same run, and the producer's enqueue rate (the
queued backend's ``send_messages``). A report, not a test.

    .venv/bin/python bench/queue_bench.py                  # 100,000 messages
    .venv/bin/python bench/queue_bench.py --messages 5000  # a quick run

Redis is a private ``redis-server`` on 127.0.0.1 (no persistence) started here; the sink is
``/usr/sbin/smtp-sink`` (PIPELINING offered). Each worker count gets a queue of its own,
filled before its worker starts; its rate is counted from the first message sent to the last
(the worker's start-up is left out and shown apart).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.sinks import HOST, Sink, free_port  # noqa: E402
from bench.workloads import FROM, MASS_BODY  # noqa: E402


class Redis:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> Redis:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        conf = self.folder / "redis.conf"
        conf.write_text(f"bind {HOST}\nport {self.port}\ndir {self.folder}\nsave \"\"\n"
                        "appendonly no\nlogfile redis.log\n")
        self.proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        import redis

        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def messages(mailcore, n: int, tag: str) -> list:
    return [mailcore.EmailMessage(f"{tag} {i}", MASS_BODY, FROM, [f"user{i}@example.com"])
            for i in range(n)]


def direct(mailcore, sink: Sink, n: int) -> float:
    msgs = messages(mailcore, n, "direct")
    backend = mailcore.get_connection("smtp", host=HOST, port=sink.port)
    started = time.perf_counter()
    sent = backend.send_messages(msgs)
    elapsed = time.perf_counter() - started
    assert sent == n, sent
    return n / elapsed


def enqueue(mailcore, n: int, queue_name: str, chunk: int = 10000) -> float:
    backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend", queue=queue_name)
    msgs = messages(mailcore, n, queue_name)
    started = time.perf_counter()
    for start in range(0, n, chunk):
        assert backend.send_messages(msgs[start:start + chunk]) == len(msgs[start:start + chunk])
    return n / (time.perf_counter() - started)


def drain(redis_url: str, sink: Sink, n: int, queue_name: str, processes: int,
          logs: Path, layout: str) -> tuple[float, float]:
    """(messages/s from the first sent to the last, seconds until the first was sent)."""
    from mailcore import queue

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCORE_")}
    env.update({"MAILCORE_EMAIL_QUEUE_BROKER_URL": redis_url,
                "MAILCORE_EMAIL_QUEUE_NAME": queue_name,
                "MAILCORE_EMAIL_HOST": HOST, "MAILCORE_EMAIL_PORT": str(sink.port),
                "PYTHONPATH": str(ROOT)})
    config = queue.QueueConfig.from_settings(name=queue_name)
    log = open(logs / f"{queue_name}-{layout}.log", "wb")  # noqa: SIM115
    started = time.perf_counter()
    if layout == "prefork":  # one worker, a pool of W processes
        commands = [["-c", str(processes), "-n", f"{queue_name}@%h"]]
    else:  # W workers, each one process (--pool solo)
        commands = [["--pool", "solo", "-n", f"{queue_name}-{i}@%h"] for i in range(processes)]
    procs = [subprocess.Popen([sys.executable, "-m", "mailcore", "worker", *command], env=env,
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True) for command in commands]
    first = last = None
    try:
        while True:
            st = queue.status(config)
            now = time.perf_counter()
            if first is None and st.sent:
                first, first_count = now, st.sent
            if st.sent >= n:
                last = now
                break
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"a worker exited; see {log.name}")
            time.sleep(0.02)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    return (n - first_count) / max(1e-9, last - first), first - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--layout", default="prefork,solo",
                        help="prefork: one worker with a pool of W processes; solo: W workers "
                             "of one process each (--pool solo); both by default")
    args = parser.parse_args(argv)
    n = args.messages

    import mailcore
    from mailcore.conf import settings

    sink = Sink.smtp_sink()
    if sink is None:
        print("smtp-sink (Postfix) is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, sink, Redis(Path(tmp)) as redis_server:
        settings.configure(EMAIL_QUEUE_BROKER_URL=redis_server.url)
        print(f"{n:,} messages of {len(MASS_BODY):,} bytes of text; {os.cpu_count()} CPUs; "
              f"sink: smtp-sink (PIPELINING: {sink.pipelining}); Redis on {HOST}")
        rate_direct = direct(mailcore, sink, n)
        print(f"direct send_messages (one pipelined connection): {rate_direct:,.0f} msg/s")
        rows = []
        for layout in args.layout.split(","):
            for processes in (int(w) for w in args.workers.split(",")):
                name = f"bench{processes}{layout}"
                rate_enqueue = enqueue(mailcore, n, name)
                rate, startup = drain(redis_server.url, sink, n, name, processes, Path(tmp),
                                      layout)
                rows.append((layout, processes, rate_enqueue, rate))
                print(f"{layout}, {processes} process(es): enqueue {rate_enqueue:,.0f} msg/s, "
                      f"delivery {rate:,.0f} msg/s ({rate / rate_direct:.2f}x direct), "
                      f"worker start {startup:.1f}s", flush=True)
        print()
        print("| workers | processes | producer enqueue msg/s | delivered msg/s | vs direct |")
        print("|---|---|---|---|---|")
        for layout, processes, rate_enqueue, rate in rows:
            what = "one, prefork pool" if layout == "prefork" else f"{processes}, --pool solo"
            print(f"| {what} | {processes} | {rate_enqueue:,.0f} | {rate:,.0f} | "
                  f"{rate / rate_direct:.2f}x |")
        print(f"| direct send_messages | 1 | | {rate_direct:,.0f} | 1.00x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
