"""Run every benchmark side by side with Django, smtplib and smtp-source and
write the table (bench/results/latest.md) and the chart (latest.png).

Usage: ``python bench/run.py [--quick] [--only compose,mass,large,gui,start,inbox,queue]``
(``bash bench/run.sh`` installs what is needed first). See bench/README.md.

Every measurement runs in a fresh worker process (bench/worker.py); sinks and
temporary files are removed on exit, also after Ctrl+C or an error. This is a
report, never an assertion: the exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import report
import workloads
from report import Row, best, fmt_mb, fmt_rate, fmt_ratio, fmt_seconds, median
from sinks import HOST, Sink, find_tool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
MIB = 1024  # ru_maxrss is in KiB


@dataclass(frozen=True)
class Config:
    name: str
    compose_n: dict[str, int]
    compose_runs: int  # timed runs inside one worker process
    compose_rounds: int  # worker processes per implementation, interleaved
    compose_budget: float  # seconds per composition case, after the first round
    mass_n: int
    mass_rounds: int
    mass_budget: float
    large_mb: int
    large_runs: int
    gb: bool
    gui_repeats: int
    gui_sends: int


FULL = Config(
    name="full",
    compose_n={"small": 5000, "rich": 500, "intl": 2000},
    compose_runs=2,
    compose_rounds=3,
    compose_budget=20.0,
    mass_n=10_000,
    mass_rounds=3,
    mass_budget=150.0,
    large_mb=100,
    large_runs=3,
    gb=True,
    gui_repeats=5,
    gui_sends=3,
)
QUICK = Config(
    name="quick",
    compose_n={"small": 500, "rich": 50, "intl": 200},
    compose_runs=1,
    compose_rounds=1,
    compose_budget=0.0,
    mass_n=500,
    mass_rounds=1,
    mass_budget=0.0,
    large_mb=10,
    large_runs=1,
    gb=False,
    gui_repeats=1,
    gui_sends=1,
)


# The targets (issue 16): speed-ups over Django measured in the same run.
COMPOSE_TARGET = 3.0
MASS_TARGET = 10.0
SOURCE_RUNS = 3  # smtp-source runs back to back per round (its rate swings with latency)
LARGE_TARGET = 15.0


def profiles(res: dict[str, dict | None], names: dict[str, str]
             ) -> dict[str, tuple[list[str], list[str]]]:
    """The profile summaries of the results named (key -> the name shown)."""
    out = {}
    for key, shown in names.items():
        r = res.get(key)
        if r and r.get("profile"):
            modules, hottest = r["profile"]
            out[shown] = (modules, hottest)
    return out


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def worker_env() -> dict[str, str]:
    """The environment without settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MAILCORE_") and k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_group(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` with the child in a process group of its own; if the run is
    cut short (timeout, Ctrl+C, SIGTERM) that whole group (the child and anything it
    started) is ended, by its id: SIGTERM first so it can clean up, then SIGKILL."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def make_random_file(path: Path, size: int) -> None:
    block = 8 << 20
    with path.open("wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n
        # on disk before anything is timed: no writeback of it competes with the runs
        f.flush()
        os.fsync(f.fileno())


def per_round(mailcore: dict | None, django: dict | None, runs: int) -> list[float]:
    """Speed-ups round by round: each round's best Django time ÷ the same round's best
    mailcore time (the two ran next to each other, so they share the machine's mood)."""
    if not mailcore or not django:
        return []
    a, b = mailcore["times"], django["times"]
    rounds = min(len(a), len(b)) // runs
    return [min(b[i * runs:(i + 1) * runs]) / min(a[i * runs:(i + 1) * runs])
            for i in range(rounds)]


def spread(ratios: list[float]) -> str:
    return ", ".join(f"{r:.2f}×" for r in ratios)


class Bench:
    def __init__(self, cfg: Config, scratch: Path) -> None:
        self.cfg = cfg
        self.scratch = scratch
        self.rows: list[Row] = []
        self.details: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.sinks: dict[str, list[str]] = {}
        self.smtp_sink_ok = find_tool("smtp-sink") is not None
        self.smtp_source = find_tool("smtp-source")
        self.gui: dict[str, Any] = {}
        self._source_profile: dict[str, str] = {}

    # -- running things ----------------------------------------------------------------------
    def worker(self, label: str, spec: dict[str, Any], timeout: float = 600) -> dict | None:
        spec = {"scratch": str(self.scratch), **spec}
        t0 = time.perf_counter()
        try:
            proc = run_group([PY, str(HERE / "worker.py"), json.dumps(spec)], timeout,
                             cwd=ROOT, env=worker_env())
        except subprocess.TimeoutExpired:
            self.errors.append(f"{label}: timed out after {timeout:.0f} s")
            log(f"  {label}: TIMEOUT")
            return None
        result = None
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
        if proc.returncode != 0 or result is None:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            self.errors.append(f"{label}: worker failed ({err})")
            log(f"  {label}: FAILED\n{proc.stderr[-3000:]}")
            return None
        result["wall"] = time.perf_counter() - t0
        return result

    def record(self, benchmark: str, impl: str, result: dict | None, unit: str) -> None:
        if result is None or "times" not in result:
            return
        times = result["times"]
        n = result.get("n", 1)
        entry = {"benchmark": benchmark, "impl": impl, "runs": len(times), "n": n,
                 "best_s": best(times), "median_s": median(times), "times_s": times}
        if unit == "msg/s":
            entry["best"] = fmt_rate(n / best(times))
            entry["median"] = fmt_rate(n / median(times))
        else:
            entry["best"] = fmt_seconds(best(times))
            entry["median"] = fmt_seconds(median(times))
        if "rss_growth_kb" in result:
            entry["peak_growth"] = fmt_mb(result["rss_growth_kb"])
        self.details.append(entry)
        log(f"  {benchmark} [{impl}]: best {entry['best']}, median {entry['median']}"
            f" ({len(times)} runs)" + (f", peak growth {entry['peak_growth']}"
                                       if "peak_growth" in entry else ""))

    def interleaved(self, jobs: list[tuple[str, str, Any]], rounds: int,
                    budget: float) -> dict[str, dict | None]:
        """Run each job (a fresh worker process) once per round, alternating
        between implementations (A B C A B C ...) so that a slow phase of a noisy
        machine hits them all alike. Times of all rounds are merged; rounds stop
        once ``budget`` seconds were spent (after the first round)."""
        merged: dict[str, dict | None] = {key: None for key, _, _ in jobs}
        failed: set[str] = set()
        t0 = time.perf_counter()
        for _ in range(max(1, rounds)):
            for key, _label, fn in jobs:
                if key in failed:
                    continue
                r = fn()
                if r is None:
                    failed.add(key)
                    merged[key] = None
                    continue
                if merged[key] is None:
                    merged[key] = r
                else:
                    merged[key]["times"].extend(r["times"])
                    for extra in ("sink_cpu", "client_cpu"):
                        merged[key].setdefault(extra, []).extend(r.get(extra, []))
            if time.perf_counter() - t0 >= budget:
                break
        return merged

    # -- 1. composition ----------------------------------------------------------------------
    def compose(self) -> None:
        cfg = self.cfg
        log("== 1. composition")
        labels = {"mailcore": "mailcore console backend → discarding stream",
                  "mailcore-message": "mailcore message().as_bytes()",
                  "django": "Django console backend → discarding stream"}
        section = "1. Composition (build + serialise through a backend to a stream that discards)"
        for letter, case in zip("abc", ("small", "rich", "intl")):
            n = cfg.compose_n[case]
            common = {"kind": "compose", "case": case, "n": n, "runs": cfg.compose_runs,
                      "budget": 1e9}
            title = f"1{letter}. compose {workloads.COMPOSE_TITLES[case]}"
            jobs = []
            for key, impl, method in (("mailcore", "mailcore", "backend"),
                                      ("mailcore-message", "mailcore", "message"),
                                      ("django", "django", "backend")):
                spec = {**common, "impl": impl, "method": method}
                label = f"{title} [{key}]"
                jobs.append((key, label, self._profiled_once(label, spec)))
            res = self.interleaved(jobs, cfg.compose_rounds, cfg.compose_budget)
            rates = {}
            for key, r in res.items():
                self.record(title, labels[key], r, "msg/s")
                rates[key] = n / best(r["times"]) if r else None
            mc, mcm, dj = rates["mailcore"], rates["mailcore-message"], rates["django"]
            rounds = per_round(res["mailcore"], res["django"], cfg.compose_runs)
            if len(rounds) > 1:
                self.notes.append(f"{title}: mailcore/Django round by round: {spread(rounds)}")
            ratio = mc / dj if mc and dj else None
            size = res["mailcore"]["size"] if res["mailcore"] else None
            self.rows.append(Row(
                title=title + (f" ({size / 1024:,.1f} KB)" if size and size > 2048 else ""),
                section=section,
                cells={"mailcore": fmt_rate(mc), "django": fmt_rate(dj)},
                ratio=fmt_ratio(ratio, "faster"), target=f"≥ {COMPOSE_TARGET:g}×",
                met=None if ratio is None else ratio >= COMPOSE_TARGET, speedup=ratio,
                speedup_target=COMPOSE_TARGET,
                profile=profiles(res, {"mailcore": "mailcore", "django": "Django"}),
            ))
            ratio_m = mcm / dj if mcm and dj else None
            self.rows.append(Row(
                title="    mailcore `message().as_bytes()` (reference)", section=section,
                cells={"mailcore": fmt_rate(mcm), "django": fmt_rate(dj)},
                ratio=fmt_ratio(ratio_m, "faster"),
            ))

    # -- 2. mass sending ---------------------------------------------------------------------
    def mass(self) -> None:
        cfg = self.cfg
        log("== 2. mass sending")
        factories = []
        if self.smtp_sink_ok:
            factories.append((Sink.smtp_sink, cfg.mass_rounds))
        else:
            self.notes.append("Postfix's smtp-sink is not installed: its rows were not run.")
        # aiosmtpd is the bottleneck there (one Python process), so fewer rounds.
        factories.append((Sink.aiosmtpd, max(1, cfg.mass_rounds - 1)))
        n = cfg.mass_n
        section = f"2. Mass sending: {n:,} messages of ~5 KB over one connection"
        for factory, rounds in factories:
            sink = factory()
            if sink is None:
                continue
            with sink:
                self.sinks[sink.name] = sink.advertised
                log(f"-- {sink.name} on {HOST}:{sink.port} (PIPELINING offered: "
                    f"{sink.pipelining})")
                common = {"kind": "mass", "n": n, "runs": 1, "budget": 0,
                          "host": HOST, "port": sink.port}
                what = {"mass": "send_mass_mail()", "send_messages":
                        "connection.send_messages(list)"}
                jobs = []
                for mode in ("mass", "send_messages"):
                    for impl in ("mailcore", "django"):
                        label = f"{what[mode]} → {sink.name} [{impl}]"
                        spec = {**common, "impl": impl, "mode": mode}
                        jobs.append((f"{mode}:{impl}", label, self._profiled_once(label, spec)))
                label = f"smtplib.SMTP.sendmail(prebuilt bytes) → {sink.name}"
                spec = {**common, "kind": "smtplib"}
                jobs.append(("smtplib", label, self._profiled_once(label, spec)))
                if sink.name == "smtp-sink":  # what the sink allows a client doing no work
                    label = f"floor: prebuilt conversation on a plain socket → {sink.name}"
                    spec = {**common, "kind": "floor_mass"}
                    jobs.append(("floor", label,
                                 lambda label=label, spec=spec: self.worker(label, spec, 120)))
                if self.smtp_source:
                    label = f"smtp-source -d -s 1 → {sink.name}"
                    jobs.append(("smtp-source", label,
                                 lambda label=label, sink=sink:
                                 self.smtp_source_run(label, sink)))
                # how busy the sink process was during each run (its CPU time / wall time)
                jobs = [(key, label, self._sink_busy(sink, fn)) for key, label, fn in jobs]
                res = self.interleaved(jobs, rounds, cfg.mass_budget)
                rates: dict[str, float | None] = {}
                busy: dict[str, float] = {}
                for key, label, _fn in jobs:
                    impl = key.split(":")[-1]
                    self.record(label.rsplit(" [", 1)[0], impl, res[key], "msg/s")
                    rates[key] = n / best(res[key]["times"]) if res[key] else None
                    if res[key] and res[key].get("sink_cpu"):
                        busy[key] = max(res[key]["sink_cpu"])
                        self.details[-1]["sink_busy"] = f"{busy[key]:.0%}"
                self._smtp_source_notes(sink, res)
                self._floor_note(sink, res, rates)
                pipelined = bool(res["mass:mailcore"] and
                                 res["mass:mailcore"].get("pipelining_used"))
                source = rates.get("smtp-source")
                sink_bound = busy.get("mass:mailcore", 0) >= 0.75
                names = {"mass:mailcore": "send_mass_mail mailcore",
                         "mass:django": "send_mass_mail Django",
                         "send_messages:mailcore": "send_messages mailcore",
                         "send_messages:django": "send_messages Django"}
                self.notes.append(
                    f"{sink.name}: the sink process was busy "
                    + ", ".join(f"{v:.0%} ({names.get(k, k)})" for k, v in busy.items())
                    + " of the time (its CPU seconds ÷ the timed seconds, highest of the runs)"
                    + (f". With mailcore it is {busy['mass:mailcore']:.0%} busy: the sink, not "
                       f"the client, sets the pace there, so the mailcore/Django ratio on "
                       f"{sink.name} understates the client's speed-up" if sink_bound else ""))
                for letter, mode in zip("ab", ("mass", "send_messages")):
                    mc, dj = rates[f"{mode}:mailcore"], rates[f"{mode}:django"]
                    rounds_ = per_round(res[f"{mode}:mailcore"], res[f"{mode}:django"], 1)
                    if len(rounds_) > 1:
                        self.notes.append(f"{what[mode]} → {sink.name}: mailcore/Django round "
                                          f"by round: {spread(rounds_)}")
                    ratio = mc / dj if mc and dj else None
                    cells = {"mailcore": fmt_rate(mc), "django": fmt_rate(dj)}
                    if mode == "mass":
                        cells["smtplib"] = fmt_rate(rates["smtplib"])
                        cells["smtp-source"] = (fmt_rate(source) if self.smtp_source
                                                else "not installed")
                    pipe = " (pipelined)" if pipelined else ""
                    bound = " (sink-bound)" if sink_bound else ""  # see the note
                    target = f"≥ {MASS_TARGET:g}× and ≥ smtp-source"
                    met = None if ratio is None else ratio >= MASS_TARGET and (
                        source is None or (mc is not None and mc >= source))
                    chart_target: float | None = MASS_TARGET
                    if (sink_bound or sink.name == "aiosmtpd") and source and mc:
                        # The sink is the limit: what counts is driving it at least as
                        # fast as Postfix's own C client does (no ratio target on the chart).
                        target, met = "sink-bound: ≥ smtp-source", mc >= source
                        chart_target = None
                    self.rows.append(Row(
                        title=f"2{letter}. `{what[mode]}` → {sink.name}{pipe}{bound}",
                        section=section, cells=cells, ratio=fmt_ratio(ratio, "faster"),
                        target=target, met=met,
                        speedup=ratio, speedup_target=chart_target,
                        profile=profiles(res, {f"{mode}:mailcore": "mailcore",
                                               f"{mode}:django": "Django",
                                               **({"smtplib": "smtplib"} if mode == "mass"
                                                  else {})}),
                        profile_note=(self._source_profile.get(sink.name, "")
                                      if mode == "mass" else ""),
                    ))

    def _floor_note(self, sink: Sink, res: dict[str, dict | None],
                    rates: dict[str, float | None]) -> None:
        """How near the floor mailcore is: a Python client that does nothing but write the
        prebuilt conversation (one write and one read per message) against this sink."""
        floor = rates.get("floor")
        if not floor:
            return
        runs = [self.cfg.mass_n / t for t in (res["floor"] or {}).get("times", [])]
        django = max((rates.get(k) or 0) for k in ("mass:django", "send_messages:django"))
        ten = f"; 10× Django's best here is {fmt_rate(10 * django)}" if django else ""
        parts = [f"{name} {rates[key] / floor:.0%} of it" for key, name in
                 (("mass:mailcore", "send_mass_mail"), ("send_messages:mailcore",
                                                         "send_messages")) if rates.get(key)]
        self.notes.append(
            f"{sink.name} floor: the same conversation with every byte made beforehand, on a "
            f"plain socket (bench/worker.py floor_mass), reached {fmt_rate(floor)} (runs: "
            + ", ".join(fmt_rate(x) for x in runs) + f"){ten}; mailcore's "
            + ", ".join(parts) + " (the floor is what the sink and the machine allowed a "
            "Python client doing no work, in the same rounds: a measurement, not a target)")

    @staticmethod
    def _sink_busy(sink: Sink, fn: Any) -> Any:
        """Wrap a job: add ``sink_cpu``, the sink's CPU seconds per second of the run."""

        def run() -> dict | None:
            before = sink.cpu_seconds()
            r = fn()
            after = sink.cpu_seconds()
            if r is not None and before is not None and after is not None:
                # nearly all the sink's work happens in the timed part (the warm-up is
                # 20 messages), so CPU seconds ÷ timed seconds is how busy it was
                r["sink_cpu"] = [(after - before) / max(sum(r["times"]), 1e-9)]
            return r

        return run

    def smtp_source_run(self, label: str, sink: Sink) -> dict | None:
        """Postfix's smtp-source, ``SOURCE_RUNS`` times back to back (each run is short):
        -d keeps one connection for all messages, -s 1 one session; it does not pipeline
        (four round trips per message); -l is the body size. Wall time of each process, and
        its CPU time (user + system) ÷ wall time. Why several runs: bench/README.md."""
        n = self.cfg.mass_n
        argv = [self.smtp_source, "-d", "-s", "1", "-m", str(n), "-l", "5120",
                "-f", workloads.FROM, "-t", workloads.TO, f"{HOST}:{sink.port}"]
        times, busy = [], []
        for _ in range(SOURCE_RUNS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            try:
                proc = run_group(argv, 300)
            except subprocess.TimeoutExpired:
                self.errors.append(f"{label}: smtp-source timed out")
                return None
            elapsed = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                self.errors.append(f"{label}: smtp-source failed: {proc.stderr.strip()}")
                return None
            times.append(elapsed)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            busy.append(used / elapsed)
        return {"times": times, "n": n, "client_cpu": busy}

    def _smtp_source_notes(self, sink: Sink, res: dict[str, dict | None]) -> None:
        """smtp-source's runs one by one, and how busy it was."""
        r = res.get("smtp-source")
        if not r:
            return
        n = self.cfg.mass_n
        rates = [n / t for t in r["times"]]
        busy = max(r.get("client_cpu", [0]))
        self.notes.append(
            f"smtp-source → {sink.name}: {len(rates)} runs (best in the table): "
            + ", ".join(fmt_rate(x) for x in rates)
            + f"; max/min {max(rates) / min(rates):.2f}. It used the CPU {busy:.0%} of its "
            "wall time at most: it waits for the reply to each of its four commands per "
            "message (it does not pipeline), so its rate is the two processes' round-trip "
            "latency, which the shared machine's scheduler sets (see bench/README.md)")
        self._source_profile[sink.name] = (
            f"smtp-source (C, not profiled): on the CPU {busy:.0%} of its wall time, the "
            "rest waiting for replies (four round trips per message)")

    def _profiled_once(self, label: str, spec: dict[str, Any]) -> Any:
        """A job whose first run also profiles (one more, untimed run under cProfile)."""
        done = [False]

        def run() -> dict | None:
            first = not done[0]
            done[0] = True
            return self.worker(label, {**spec, "profile": first})

        return run

    # -- 3. large attachments ----------------------------------------------------------------
    def large(self, path: Path, sink: Sink) -> None:
        cfg = self.cfg
        size_label = f"{cfg.large_mb} MB"
        log(f"== 3. large attachment ({size_label})")
        section = f"3. One {size_label} attachment (`attach_file`)"
        self._large_one(path, sink, section, size_label, with_django=True,
                        runs=cfg.large_runs, verify="email")
        if cfg.gb:
            gb_path = self.scratch / "attachment-1gb.bin"
            log("-- making a 1 GB file")
            try:
                make_random_file(gb_path, 1 << 30)
                self._large_one(gb_path, sink, "3. One 1 GB attachment (mailcore only)", "1 GB",
                                with_django=False, runs=1, verify="streaming")
            finally:
                gb_path.unlink(missing_ok=True)

    def _large_one(self, path: Path, sink: Sink, section: str, size_label: str,
                   with_django: bool, runs: int, verify: str) -> None:
        for target in ("smtp", "file"):
            where = f"SMTP → {sink.name}" if target == "smtp" else "file backend"
            title = f"{size_label} attachment → {where}"
            res: dict[str, dict | None] = {}
            for impl in ("mailcore", "django") if with_django else ("mailcore",):
                outdir = self.scratch / f"out-{impl}-{target}-{path.stem}"
                spec = {"kind": "large", "impl": impl, "target": target, "path": str(path),
                        "host": HOST, "port": sink.port, "outdir": str(outdir),
                        "runs": runs if impl == "mailcore" else 1, "budget": 20.0,
                        "profile": True}
                try:
                    r = self.worker(f"{title} [{impl}]", spec, timeout=900)
                    self.record(title, impl, r, "s")
                    res[impl] = r
                    if r and target == "file":
                        r["verified"] = self._verify(r, path, verify, f"{title} [{impl}]")
                finally:
                    shutil.rmtree(outdir, ignore_errors=True)
            if target == "smtp" and with_django and sink.name == "smtp-sink":
                self._large_floor(path, sink, title)
            mc, dj = res.get("mailcore"), res.get("django")
            mc_t = best(mc["times"]) if mc else None
            dj_t = best(dj["times"]) if dj else None
            speed = dj_t / mc_t if mc_t and dj_t else None
            not_run = "not run (would need ~9 GB)"
            self.rows.append(Row(
                title=f"{title}: time", section=section,
                cells={"mailcore": fmt_seconds(mc_t),
                       "django": fmt_seconds(dj_t) if with_django else not_run},
                ratio=fmt_ratio(speed, "faster"),
                target=f"≥ {LARGE_TARGET:g}× faster" if with_django else "",
                met=None if speed is None else speed >= LARGE_TARGET, speedup=speed,
                speedup_target=LARGE_TARGET if with_django else None,
                profile=profiles(res, {"mailcore": "mailcore", "django": "Django"}),
            ))
            mc_m = mc["rss_growth_kb"] if mc else None
            dj_m = dj["rss_growth_kb"] if dj else None
            self.rows.append(Row(
                title=f"{title}: peak memory growth", section=section,
                cells={"mailcore": fmt_mb(mc_m),
                       "django": fmt_mb(dj_m) if with_django else "not run"},
                ratio=f"{mc_m / dj_m:.1%} of Django's" if mc_m is not None and dj_m else "",
                target="< 64 MiB", met=None if mc_m is None else mc_m < 64 * MIB,
            ))
            if target == "file":
                cells = {}
                for impl, r in (("mailcore", mc), ("django", dj)):
                    if r is not None:
                        cells[impl] = r.get("verified", "")
                if not with_django:
                    cells["django"] = "not run"
                self.rows.append(Row(
                    title=f"{title}: decoded attachment = source (sha256)", section=section,
                    cells=cells, target="verified",
                    met=None if mc is None else mc.get("verified") == "verified",
                ))

    def _large_floor(self, path: Path, sink: Sink, title: str) -> None:
        """The very bytes mailcore sends, prebuilt, written by plain sendall: what the sink
        takes in at best, and the sink's own CPU time for it (notes)."""
        label = f"floor: {title} (prebuilt bytes by sendall)"
        spec = {"kind": "floor_large", "path": str(path), "runs": self.cfg.large_runs,
                "budget": 30.0, "host": HOST, "port": sink.port}
        before = sink.cpu_seconds()
        r = self.worker(label, spec, timeout=120)
        after = sink.cpu_seconds()
        if not r or not r.get("times"):
            return
        self.record(label, "plain socket", r, "s")
        sink_cpu = ((after - before) / len(r["times"]) if before is not None
                    and after is not None else None)
        floor = best(r["times"])
        cpu = f"; the sink itself used {sink_cpu:.2f} s of CPU to take it in" if sink_cpu else ""
        self.notes.append(
            f"{title}: floor {fmt_seconds(floor)} (the same bytes made beforehand and written "
            f"by plain sendall in 1 MiB pieces, best of {len(r['times'])}){cpu}. A "
            f"{LARGE_TARGET:g}× speed-up needs Django's time ÷ {LARGE_TARGET:g} to be above this "
            "floor")

    def _verify(self, result: dict, source: Path, method: str, label: str) -> str:
        outputs = result.get("output") or []
        if len(outputs) != 1:
            return f"{len(outputs)} output files"
        v = self.worker(f"verify {label}", {"kind": "verify", "source": str(source),
                                            "output": outputs[0], "method": method},
                        timeout=900)
        if v is None:
            return "not verified (error)"
        log(f"  verify {label}: {'ok' if v['ok'] else 'MISMATCH'} "
            f"({v['method']}, {v['seconds']:.1f} s)")
        self.details.append({"benchmark": f"verify {label}", "impl": v["method"],
                             "result": "verified" if v["ok"] else "MISMATCH",
                             "sha256": v["sha256"], "decoded_sha256": v["decoded_sha256"]})
        return "verified" if v["ok"] else "**MISMATCH**"

    # -- 4. the window -----------------------------------------------------------------------
    def window(self, path: Path, sink: Sink) -> None:
        log("== 4. the window (mailgui)")
        section = "4. The window (mailgui, offscreen)"
        env = worker_env()
        env["QT_QPA_PLATFORM"] = "offscreen"
        argv = [PY, str(HERE / "gui_bench.py"), "--repeats", str(self.cfg.gui_repeats),
                "--sends", str(self.cfg.gui_sends),
                "--attachment", str(path), "--host", HOST, "--port", str(sink.port)]
        if self.cfg.name == "quick":
            argv.append("--quick")  # a 200-message burst, one run of each case
        try:
            proc = run_group(argv, 450 if self.cfg.name == "quick" else 1100, cwd=ROOT, env=env)
            data = parse_result(proc, "gui_bench.py")
        except subprocess.TimeoutExpired:
            data = {"available": False, "reason": "gui_bench.py timed out"}
        self.gui = data
        if "rows" in data or not data.get("available", True):
            self.take_external(section, data)
            return
        for line in data.get("log", []):
            log("  " + line)
        metrics = [
            ("cold_start_s", "cold start to first painted window (median)", "< 1 s", 1.0, "s"),
            ("stall_ms", f"GUI-thread stall while {self.cfg.large_mb} MB is sent (worst)",
             "< 50 ms", 50.0, "ms"),
            ("inbox_stall_ms", "GUI-thread stall while it is sent to and received by the local "
             "test inbox", "< 50 ms", 50.0, "ms"),
            ("preview_s", "source preview of that message appears", "< 0.5 s", 0.5, "s"),
        ]
        for key, title, target, limit, unit in metrics:
            value = data.get(key)
            if value is None:
                why = data.get("reasons", {}).get(key) or data.get("reason") or "not measured"
                cell = "mailgui not available" if not data.get("available") else why
                self.rows.append(Row(title=title, section=section, cells={"mailcore": cell},
                                     target=target))
                continue
            text = fmt_seconds(value) if unit == "s" else f"{value:,.0f} ms"
            self.rows.append(Row(title=title, section=section, cells={"mailcore": text},
                                 target=target, met=value < limit))
        for note in data.get("notes", []):
            self.notes.append(f"Window: {note}")

    # -- 5.–7. sections measured by their own scripts ------------------------------------------
    def external(self, name: str) -> None:
        """Run one of EXTERNALS and take its rows (the RESULT protocol of bench/README.md)."""
        section, script, full_args, quick_args, timeout, offscreen = EXTERNALS[name]
        log(f"== {section}")
        env = worker_env()
        if offscreen:
            env["QT_QPA_PLATFORM"] = "offscreen"
        args = quick_args if self.cfg.name == "quick" else full_args
        argv = [PY, str(HERE / script), *args]
        try:
            proc = run_group(argv, timeout, cwd=ROOT, env=env)
            data = parse_result(proc, script)
        except subprocess.TimeoutExpired:
            data = {"available": False, "reason": f"{script} took longer than {timeout:.0f} s"}
        self.take_external(section, data)

    def take_external(self, section: str, data: dict[str, Any]) -> None:
        for line in data.get("log", []):
            log("  " + line)
        if not data.get("available", True):
            self.rows.append(Row(title="not measured", section=section, external=True,
                                 cells={"mailcore": data.get("reason") or "not available"}))
            return
        for r in data.get("rows", []):
            self.rows.append(Row(
                title=r.get("title", "?"), section=section, external=True,
                cells={k: str(v) for k, v in (r.get("cells") or {}).items()},
                ratio=r.get("ratio", ""), target=r.get("target", ""), met=r.get("met"),
                profile_note="; ".join(r.get("where") or [])))
        short = section.split(" (")[0]
        self.notes.extend(f"{short}: {n}" for n in data.get("notes", []))
        self.details.extend(d for d in data.get("details", []) if "benchmark" in d)


def parse_result(proc: subprocess.CompletedProcess, script: str) -> dict[str, Any]:
    """The last ``RESULT {json}`` line a bench script printed, or why there is none."""
    out = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if out:
        try:
            return json.loads(out[-1][7:])
        except ValueError as exc:
            return {"available": False, "reason": f"{script} printed a bad RESULT: {exc}"}
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"available": False, "reason": f"{script} failed (exit {proc.returncode}): {last}"}


# name -> (section title, script, full-run arguments, --quick arguments, timeout s, offscreen)
EXTERNALS: dict[str, tuple[str, str, list[str], list[str], float, bool]] = {
    "start": ("5. Cold start under Xvfb (mailgui, from process start)", "gui_start.py",
              [], ["--quick"], 600, False),
    "inbox": ("6. The local test inbox (mailgui)", "inbox_ingest.py",
              [], ["--quick"], 600, True),
    "queue": ("7. Queued sending (Celery workers, Redis)", "queue_bench.py",
              [], ["--quick"], 1200, False),
}
SECTIONS = ("compose", "mass", "large", "gui", *EXTERNALS)


# -- output -----------------------------------------------------------------------------------


def header_lines(cfg: Config, started: dt.datetime, elapsed: float,
                 steal: float | None = None, source_at_start: str | None = None) -> list[str]:
    versions = report.package_versions()
    command = "bash bench/run.sh" + (" --quick" if cfg.name == "quick" else "")
    lines = [
        f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %z').strip()} "
        f"(run took {elapsed:,.0f} s, `{command}`)",
        f"- system: `{report.uname()}`, CPU: {report.cpu_model()} × {os.cpu_count()}",
        f"- Python {sys.version.split()[0]} ({sys.executable})",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- measured source: {report.source_state(ROOT)}",
    ]
    if source_at_start and source_at_start != report.source_state(ROOT):
        lines.append(f"- **the source changed during the run**; at the start it was: "
                     f"{source_at_start}")
    if steal is not None:
        lines.append(f"- CPU time stolen by the hypervisor during the run: {steal:.1%} "
                     "(on a shared machine compare ratios within one run, not figures "
                     "across runs)")
    return lines


def write_outputs(bench: Bench, cfg: Config, started: dt.datetime, header: list[str],
                  out_dir: Path, stem: str) -> tuple[Path, Path | None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = report.markdown_table(bench.rows)
    external = report.external_table(bench.rows)
    lines = [f"# mailcore benchmarks ({cfg.name} run)", "", *header, "", table, "",
             *([external, ""] if external else []),
             "How to read it: throughput is the best of the runs (medians below); "
             "*mailcore/Django* is the speed-up (Django's time ÷ mailcore's) for throughput and "
             "time rows and mailcore's share of Django's figure for memory rows. "
             "Peak memory growth is `ru_maxrss` after the work minus `ru_maxrss` after imports "
             "and a warm-up, in a fresh process per measurement. *met?* compares with the "
             "project's performance targets (the target column); nothing here is asserted. "
             "See bench/README.md.", ""]
    where = report.profile_lines(bench.rows)
    if where:
        lines += ["## Where the time goes", "",
                  "For each row, one more run of the same work in the same worker, untimed, "
                  "under cProfile: the modules (or C functions) with the most time of their "
                  "own and their share of it, then the hottest functions. cProfile slows "
                  "Python code more than C code, so shares lean towards Python.", "", *where,
                  ""]
    if bench.notes or bench.errors:
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in bench.notes]
        lines += [f"- error: {e}" for e in bench.errors]
        lines.append("")
    if bench.sinks:
        lines += ["## What the sinks advertise (EHLO)", ""]
        for name, ehlo in bench.sinks.items():
            lines.append(f"- {name}: `" + " | ".join(ehlo) + "`")
        lines.append("")
    lines += ["## Every measurement", "",
              "| benchmark | implementation | runs | best | median | peak growth | sink busy |",
              "|---|---|---|---|---|---|---|"]
    for d in bench.details:
        if "result" in d:
            lines.append(f"| {d['benchmark']} | {d['impl']} | — | {d['result']} | — | — | — |")
            continue
        lines.append(f"| {d['benchmark']} | {d['impl']} | {d['runs']} | {d['best']} | "
                     f"{d['median']} | {d.get('peak_growth', '')} | {d.get('sink_busy', '')} |")
    lines.append("")
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines), encoding="utf-8")

    raw_dir = HERE / "results" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw = {"config": asdict(cfg), "started": started.isoformat(), "header": header,
           "rows": [asdict(r) for r in bench.rows], "details": bench.details,
           "notes": bench.notes, "errors": bench.errors, "sinks": bench.sinks, "gui": bench.gui}
    raw_path = raw_dir / f"{stem}.json"
    raw_path.write_text(json.dumps(raw, indent=1), encoding="utf-8")

    png = out_dir / f"{stem}.png"
    env = worker_env()
    env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        proc = run_group([PY, str(HERE / "chart.py"), str(raw_path), str(png)], 120, env=env)
        if proc.returncode != 0:
            log(f"chart failed: {proc.stderr.strip()[-2000:]}")
            return md, None
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"chart failed: {exc}")
        return md, None
    return md, png


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _guarded(bench: Bench, name: str, fn: Any) -> None:
    """A section that breaks is reported in the table's notes; the rest still runs."""
    try:
        fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        bench.errors.append(f"section {name} failed: {exc!r}")
        log(traceback.format_exc())


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--no-gb", action="store_true",
                        help="leave out the 1 GB attachment of the full run")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the .md and .png (default bench/results, "
                             "bench/results/raw for --quick)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.no_gb:
        cfg = dataclasses.replace(cfg, gb=False)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    out_dir = args.out or (HERE / "results" / ("raw" if args.quick else ""))
    stem = "quick" if args.quick else "latest"

    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    cpu0 = report.cpu_times()
    source0 = report.source_state(ROOT)
    scratch = Path(tempfile.mkdtemp(prefix="mailcore-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, scratch, True)
            bench = Bench(cfg, scratch)
            if "compose" in only:
                _guarded(bench, "compose", bench.compose)
            if "mass" in only:
                _guarded(bench, "mass", bench.mass)
            if only & {"large", "gui"}:
                path = scratch / "attachment.bin"
                log(f"-- making a {cfg.large_mb} MB file")
                make_random_file(path, cfg.large_mb << 20)
                sink = Sink.smtp_sink() if bench.smtp_sink_ok else Sink.aiosmtpd()
                stack.enter_context(sink)
                bench.sinks.setdefault(sink.name, sink.advertised)
                if "large" in only:
                    _guarded(bench, "large", lambda: bench.large(path, sink))
                if "gui" in only:
                    _guarded(bench, "gui", lambda: bench.window(path, sink))
            for name in EXTERNALS:
                if name in only:
                    _guarded(bench, name, lambda name=name: bench.external(name))
            elapsed = time.perf_counter() - t0
            header = header_lines(cfg, started, elapsed, report.steal_share(cpu0), source0)
            md, png = write_outputs(bench, cfg, started, header, out_dir, stem)
    except KeyboardInterrupt:
        log("interrupted: sinks stopped and temporary files removed")
        return 130
    except SystemExit as exc:
        log("stopped by a signal: sinks stopped and temporary files removed")
        return int(exc.code or 1)
    print(f"# mailcore benchmarks ({cfg.name} run)\n")
    print("\n".join(header) + "\n")
    print(report.markdown_table(bench.rows))
    external = report.external_table(bench.rows)
    if external:
        print("\n" + external)
    for note in bench.notes:
        print(f"note: {note}")
    for err in bench.errors:
        print(f"error: {err}")
    print(f"\nwrote {_shown(md)}" + (f" and {_shown(png)}" if png else "")
          + f" in {elapsed:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
