"""Queued sending (issue 17): N messages of 5 KB through 1, 2 and 4 Celery worker processes
(W ``mailcore worker --pool solo``, or one ``mailcore worker -c W`` with a prefork pool) to
Postfix's ``smtp-sink``, against mailcore's direct ``send_messages`` to the same sink in the
same run, and the producer's enqueue rate (the queued backend's ``send_messages``, messages
built before the clock as for the direct row, each one serialised by the producer). A report,
not a test; its last line is ``RESULT {json}`` for bench/run.py.

    .venv/bin/python bench/queue_bench.py            # 100,000 messages, 2 rounds (~5 min)
    .venv/bin/python bench/queue_bench.py --quick    # 5,000 messages, 1 round, no profiles

Redis is a private ``redis-server`` (no persistence) started here, reached over TCP on
127.0.0.1 (``--redis socket``: through its Unix socket, ``redis+socket://``, as with Redis on
the workers' machine; no faster here on 2026-12-02, within the noise); the sink is
``/usr/sbin/smtp-sink`` (PIPELINING offered). Each worker count gets a queue of its own,
filled before its workers start; their rate is counted from the first message sent to the
last (the workers' start-up is left out and shown apart). Rounds are interleaved (direct,
1, 2, 4 workers, then again); the best of each is shown, every run in the details. Then,
unless ``--no-profile``, one more enqueue under cProfile and one more 1-worker drain under
py-spy say where the producer's and a worker's time goes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import json
import os
import pstats
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

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
PRODUCER_TARGET = 10_000


class Redis:
    """A private redis-server on 127.0.0.1 and on a Unix socket in ``folder``; ``url`` is
    the one the run uses (``--redis``: TCP by default, as for workers on other machines)."""

    def __init__(self, folder: Path, transport: str = "tcp") -> None:
        self.port = free_port()
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.transport = transport
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.transport == "socket":
            return f"redis+socket://{self.socket}"
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> Redis:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        conf = self.folder / "redis.conf"
        conf.write_text(f"bind {HOST}\nport {self.port}\ndir {self.folder}\nsave \"\"\n"
                        f"unixsocket {self.socket}\nunixsocketperm 700\n"
                        "appendonly no\nlogfile redis.log\n")
        self.proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        import redis

        from mailcore.queue import redis_py_url

        client = redis.Redis.from_url(redis_py_url(self.url))
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


CPU: dict[str, list[float]] = collections.defaultdict(list)  # CPU µs per message, by what


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct(mailcore, sink: Sink, n: int) -> float:
    msgs = messages(mailcore, n, "direct")
    backend = mailcore.get_connection("smtp", host=HOST, port=sink.port)
    started = time.perf_counter()
    cpu = time.process_time()
    sent = backend.send_messages(msgs)
    elapsed = time.perf_counter() - started
    CPU["direct send_messages (serialising too)"].append(
        (time.process_time() - cpu) / n * 1e6)
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
          logs: Path, layout: str, profile: Path | None = None,
          redis_pid: int | None = None) -> tuple[float, float]:
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
    spy = None
    if profile is not None:
        spy = subprocess.Popen([PY_SPY, "record", "--format", "raw", "--rate", "200",
                                "--nonblocking", "--output", str(profile),
                                "--pid", str(procs[0].pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = last = None
    first_count = 0
    pids = [proc.pid for proc in procs]
    if layout == "prefork":  # the pool's processes too
        time.sleep(0.5)
        for proc in procs:
            with contextlib.suppress(OSError):
                pids += [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                         .read_text().split()]
    try:
        while True:
            st = queue.status(config)
            now = time.perf_counter()
            if first is None and st.sent:
                first, first_count = now, st.sent
                cpu_first = sum(cpu_seconds(pid) for pid in pids)
                redis_first = cpu_seconds(redis_pid) if redis_pid else 0.0
            if st.sent >= n:
                last = now
                done = max(1, n - first_count)
                CPU[f"{processes} {layout} worker process(es), all of them"].append(
                    (sum(cpu_seconds(pid) for pid in pids) - cpu_first) / done * 1e6)
                if redis_pid:
                    CPU["redis-server, for the queue"].append(
                        (cpu_seconds(redis_pid) - redis_first) / done * 1e6)
                break
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"a worker exited; see {log.name}")
            time.sleep(0.02)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
            if spy.poll() is None:
                spy.kill()
                spy.wait()
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


def flush(redis_url: str) -> None:
    """What a finished row left in Redis (sent records, counts): gone before the next."""
    import redis

    from mailcore.queue import redis_py_url

    redis.Redis.from_url(redis_py_url(redis_url)).flushdb()


def spy_summary(raw: Path, top: int = 7) -> str:
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
        leaf = stack.split(";")[-1]
        name = leaf.split(" (")[0]
        where = leaf.split("(")[-1].split(":")[0].rsplit("/", 1)[-1] if "(" in leaf else ""
        if name in ("select", "poll", "epoll_wait", "wait", "_wait_for_tstate_lock",
                    "sleep") or ("threading.py" in leaf and name in ("wait", "_wait")):
            continue
        selfs[f"{name} ({where})"] += int(count)
        total += int(count)
    if not total:
        return "(idle)"
    return ", ".join(f"{label} {100 * c / total:.0f}%" for label, c in selfs.most_common(top))


def by_module(stats: pstats.Stats, top: int = 6) -> tuple[str, str]:
    """(self time per module, the hottest functions) of a cProfile run."""
    modules: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0.0
    for (path, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages" in path:
            module = path.split("site-packages/")[1].split("/")[0]
        elif path.startswith(str(ROOT)):
            module = Path(path).relative_to(ROOT).as_posix()
        elif path == "~":
            module = "builtins"
        else:
            module = "stdlib " + Path(path).name
        modules[module] += tottime
        functions[f"{name} ({Path(path).name})" if path != "~" else name] += tottime
        total += tottime
    total = total or 1.0
    mods = ", ".join(f"{m} {100 * t / total:.0f}%" for m, t in modules.most_common(top))
    funcs = ", ".join(f"{f} {100 * t / total:.0f}%" for f, t in functions.most_common(top))
    return mods, funcs


def rate(value: float) -> str:
    return f"{value:,.0f} msg/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=None, help="default 100,000")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--layout", default="solo",
                        help="solo: W workers of one process each (--pool solo); prefork: one "
                             "worker with a pool of W processes; or both, 'solo,prefork'")
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (--quick: 1)")
    parser.add_argument("--quick", action="store_true", help="5,000 messages, one round")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--redis", choices=("tcp", "socket"), default="tcp",
                        help="how the producer and the workers reach Redis: TCP on 127.0.0.1 "
                             "(the default, as for workers on other machines) or its Unix "
                             "socket (redis+socket://, Redis on the workers' machine)")
    args = parser.parse_args(argv)
    n = args.messages or (5000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 2)
    profile = not (args.no_profile or args.quick)
    counts = [int(w) for w in args.workers.split(",")]
    layouts = args.layout.split(",")
    log: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        log.append(line)

    import mailcore
    from mailcore.conf import settings

    sink = Sink.smtp_sink()
    if sink is None:
        emit({"available": False, "reason": "smtp-sink (Postfix) is not installed",
              "rows": [], "notes": [], "details": [], "log": []})
        return 0
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        emit({"available": False, "reason": "redis-server is not installed", "rows": [],
              "notes": [], "details": [], "log": []})
        return 0
    try:
        import celery  # noqa: F401
    except ImportError:
        emit({"available": False, "reason": "Celery is not installed (the queue extra)",
              "rows": [], "notes": [], "details": [], "log": []})
        return 0
    directs: list[float] = []
    enqueues: list[float] = []
    delivered: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    startups: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    where_producer = where_worker = ""
    with tempfile.TemporaryDirectory() as tmp, sink, \
            Redis(Path(tmp), args.redis) as redis_server:
        settings.configure(EMAIL_QUEUE_BROKER_URL=redis_server.url)
        where = ("its Unix socket (redis+socket://, as for Redis on the workers' machine)"
                 if args.redis == "socket" else f"{HOST} over TCP")
        say(f"{n:,} messages of {len(MASS_BODY):,} bytes of text; {os.cpu_count()} CPUs; "
            f"sink: smtp-sink (PIPELINING: {sink.pipelining}); Redis on {where}; "
            f"{rounds} round(s)")
        for round_ in range(rounds):
            directs.append(direct(mailcore, sink, n))
            say(f"round {round_ + 1}: direct send_messages (one pipelined connection): "
                f"{directs[-1]:,.0f} msg/s")
            for layout in layouts:
                for processes in counts:
                    name = f"bench{round_}{processes}{layout}"
                    enqueues.append(enqueue(mailcore, n, name))
                    got, startup = drain(redis_server.url, sink, n, name, processes,
                                         Path(tmp), layout, redis_pid=redis_server.proc.pid)
                    flush(redis_server.url)
                    delivered[(layout, processes)].append(got)
                    startups[(layout, processes)].append(startup)
                    say(f"round {round_ + 1}: {layout}, {processes} process(es): enqueue "
                        f"{enqueues[-1]:,.0f} msg/s, delivery {got:,.0f} msg/s "
                        f"({got / directs[-1]:.2f}x this round's direct), workers' start "
                        f"{startup:.1f}s")
        if profile:
            m = min(n, 20_000)
            backend = mailcore.get_connection("mailcore.backends.celery.EmailBackend",
                                              queue="profile")
            msgs = messages(mailcore, m, "profile")
            profiler = cProfile.Profile()
            profiler.enable()
            for start in range(0, m, 10_000):
                backend.send_messages(msgs[start:start + 10_000])
            profiler.disable()
            mods, funcs = by_module(pstats.Stats(profiler))
            where_producer = f"producer (cProfile, {m:,} enqueued): {mods}; hottest: {funcs}"
            say(where_producer)
            raw = Path(tmp) / "worker.txt"
            drain(redis_server.url, sink, m, "profile", 1, Path(tmp), "solo", profile=raw)
            where_worker = f"one solo worker (py-spy, self time): {spy_summary(raw)}"
            say(where_worker)
    best_direct = max(directs)
    rows = []
    for layout in layouts:
        for processes in counts:
            best = max(delivered[(layout, processes)])
            what = (f"{processes} worker process{'es' if processes > 1 else ''}"
                    + (" (one prefork worker)" if layout == "prefork" else ""))
            row = {"title": f"queue: {n:,} × 5 KB to smtp-sink through {what}",
                   "cells": {"mailcore queue": rate(best),
                             "mailcore direct send_messages": rate(best_direct)},
                   "ratio": f"{best / best_direct:.2f}x direct",
                   "target": "", "met": None, "where": []}
            if processes == max(counts) and layout == layouts[0]:
                row["target"] = f"≥ direct ({rate(best_direct)})"
                row["met"] = best >= best_direct
                if where_worker:
                    row["where"] = [where_worker]
            rows.append(row)
    best_enqueue = max(enqueues)
    rows.append({"title": f"queue: the producer enqueues {n:,} × 5 KB (each serialised, "
                          "100 to a task)",
                 "cells": {"mailcore queue": rate(best_enqueue)}, "ratio": "",
                 "target": f"≥ {PRODUCER_TARGET:,} msg/s",
                 "met": best_enqueue >= PRODUCER_TARGET,
                 "where": [where_producer] if where_producer else []})
    notes = [
        f"{n:,} messages per row, {rounds} interleaved round(s); best shown. Direct: "
        + ", ".join(rate(d) for d in directs) + "; enqueue: "
        + ", ".join(rate(e) for e in enqueues) + ".",
        "Delivery is counted from the first message sent to the last; the workers' start "
        "(not counted) took " + ", ".join(
            f"{p} {'solo' if lay == 'solo' else 'prefork'}: "
            + "/".join(f"{s:.1f}s" for s in startups[(lay, p)]) for lay in layouts
            for p in counts) + ".",
        "The machine has 2 cores, shared by the workers, Redis, smtp-sink and this script "
        "(and whatever else runs): figures swing from run to run, compare within a round.",
        "CPU time per message (best of the runs; steadier than the rates on a busy machine): "
        + "; ".join(f"{what} {min(values):.0f} µs" for what, values in CPU.items()) + ".",
    ]
    details = [{"benchmark": "direct send_messages", "impl": "mailcore", "runs": len(directs),
                "best": rate(max(directs)), "median": rate(sorted(directs)[len(directs) // 2])},
               {"benchmark": "producer enqueue", "impl": "mailcore queue",
                "runs": len(enqueues), "best": rate(max(enqueues)),
                "median": rate(sorted(enqueues)[len(enqueues) // 2])}]
    for (layout, processes), values in delivered.items():
        details.append({"benchmark": f"delivery, {processes} {layout} process(es)",
                        "impl": "mailcore queue", "runs": len(values),
                        "best": rate(max(values)),
                        "median": rate(sorted(values)[len(values) // 2])})
    print()
    print("| row | mailcore queue | direct | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['title']} | {row['cells']['mailcore queue']} | "
              f"{row['cells'].get('mailcore direct send_messages', '')} | {row['ratio']} | "
              f"{row['target']} | {row['met']} |")
    emit({"available": True, "reason": "", "rows": rows, "notes": notes, "details": details,
          "log": log})
    return 0


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    sys.exit(main())
