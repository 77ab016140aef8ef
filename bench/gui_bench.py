"""Benchmarks of the mailgui window, offscreen (``QT_QPA_PLATFORM=offscreen``): issue 16's
target 1, "one frame at most", plus the cold start and the source preview.

``python bench/gui_bench.py [--quick] [--attachment BIG.bin] [--host H --port P]``
prints ``RESULT {json}`` (the protocol of bench/run.py) as its last line.

Everything runs in fresh processes with a throwaway HOME/XDG folders and the null keyring
backend, so nothing of the user's is read or written.

* **cold start** (a reference; the target is gui_start.py's, under Xvfb): import
  ``mailgui.app``, run ``mailgui.app.main()`` and stop at the first paint of a top-level
  window; "import + construct + first paint" inside the process (median of ``--repeats``).
* **frames** (target 1): once the window has painted, a probe ``QTimer`` (precise, every
  4 ms) ticks on the GUI thread; a case's figure is the longest gap between two ticks
  from its start to its end. The cases, each ``--sends`` times, interleaved by round:

  (a) 100 MB (the ``--attachment``) goes out through SMTP to the sink at
      ``--host``/``--port``, sent the way a user sends it: loaded into the composer and sent
      with the app's own ``SendController.send()``; until the outcome is shown.
  (b) the same message to the app's own local test inbox (the default target: the window
      sends it and its inbox child process receives it), the Inbox pane shown; until the
      message is listed there.
  (c) a burst of ``--burst`` messages of 5 KB from Postfix's ``smtp-source`` (4 sessions) at
      the app's inbox port, the Inbox pane shown; until the pane lists them all (its row
      count grew by the count sent). smtp-source is started before the case, held by a
      shell until the case starts with one write to its pipe: the bench's own fork and exec
      are not the app's frames.

  After each case the window stays idle (nothing happening) for as long as the case took,
  and the longest gap of that span is the case's **idle gap**: the floor the machine gives
  (timer slack, the scheduler of a shared machine), measured in the same run. Target per
  case: the worst gap of the ``--sends`` runs ≤ 16 ms (one 60 Hz frame) and within 4 ms of
  the worst idle gap of the same runs.
* **source preview**: from showing the Source pane for that draft until its text is set.

What it expects from mailgui: ``mailgui.app.main()`` builds a ``MailGui`` (``controller``,
``window``) through ``QApplication`` and calls ``app.exec()`` (the harness substitutes a
subclass to notice the first paint); ``controller.compose.load``, ``controller.target
.select``, ``controller.sending.send()``/``finished``, ``controller.inbox.port``/``view.list``
and ``controller.source.updated``. Anything missing is reported, never raised.
"""

from __future__ import annotations

import time

T_PROCESS = time.monotonic()  # as early as possible: before PySide6 and mailgui

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WATCHDOG_MS = 30_000
PROBE_MS = 4  # the probe timer of issue 16
FRAME_MS = 16.0  # one frame at 60 Hz
OVER_IDLE_MS = 4.0  # how far above the idle gap a case may be
CASE_TIMEOUT_S = 240
SETTLE_S = 30.0  # the longest wait for the app's processes to be quiet before a span
QUIET_CPU_S = 0.02  # quiet: its processes used at most this much CPU in 300 ms


def emit(prefix: str, data: dict) -> None:
    sys.stdout.write(prefix + " " + json.dumps(data) + "\n")
    sys.stdout.flush()


# -- hooking mailgui.app.main() ------------------------------------------------------------


def run_main_with_hook(on_first_paint: Any, argv: list[str]) -> dict:
    """Run ``mailgui.app.main()`` with ``argv``; call ``on_first_paint(app, window, state)``
    once the first top-level window has painted (after the paint, from a 0 ms timer).
    ``state["gui"]`` is the ``mailgui.app.MailGui`` that main() built, if it has that class."""
    from PySide6 import QtWidgets
    from PySide6.QtCore import QEvent, QObject, QTimer

    import mailgui.app as appmod

    state: dict[str, Any] = {"t_imported": time.monotonic()}
    base = getattr(appmod, "QApplication", None) or QtWidgets.QApplication

    class PaintWatcher(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
            if (
                "t_paint_event" not in state
                and event.type() == QEvent.Type.Paint
                and isinstance(obj, QtWidgets.QWidget)
                and obj.isWindow()
            ):
                state["t_paint_event"] = time.monotonic()
                state["window"] = type(obj).__name__
                QTimer.singleShot(0, lambda w=obj: painted(w))
            return False

    def painted(window: Any) -> None:
        state["t_painted"] = time.monotonic()
        app = QtWidgets.QApplication.instance()
        # An application-wide Python event filter sees every event of every object: it would
        # slow what is measured next, and PySide6 crashes wrapping an object still being
        # built for it (Qt WebEngine's request jobs, as a preview starts).
        app.removeEventFilter(app._bench_watcher)
        on_first_paint(app, window, state)

    def watchdog() -> None:
        if "t_painted" not in state:
            state["error"] = f"no window painted within {WATCHDOG_MS / 1000:.0f} s"
            QtWidgets.QApplication.instance().quit()

    class BenchApplication(base):  # type: ignore[misc, valid-type]
        def exec(self, *args: Any) -> int:
            self._bench_watcher = PaintWatcher()
            self.installEventFilter(self._bench_watcher)
            QTimer.singleShot(WATCHDOG_MS, watchdog)
            state["t_exec"] = time.monotonic()
            return super().exec(*args)

        exec_ = exec

    gui_class = getattr(appmod, "MailGui", None)
    if isinstance(gui_class, type):

        class RecordingMailGui(gui_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                state["gui"] = self

        appmod.MailGui = RecordingMailGui
    appmod.QApplication = BenchApplication
    QtWidgets.QApplication = BenchApplication
    old_argv = sys.argv
    sys.argv = ["mailgui", *argv]
    try:
        appmod.main(argv)
    except SystemExit:
        pass
    finally:
        sys.argv = old_argv
        QtWidgets.QApplication = base
        if gui_class is not None:
            appmod.MailGui = gui_class
    return state


def prepare_dirs(root: Path, host: str, port: int) -> tuple[list[str], str]:
    """Config and data folders for ``main()`` (--config-dir/--data-dir) holding one SMTP
    profile for the sink, selected as the target: a returning user, not a first start."""
    from mailgui.model.paths import AppPaths, atomic_write_json
    from mailgui.model.profiles import Profile, ProfileStore

    paths = AppPaths.under(root)
    store = ProfileStore(paths)
    store.upsert(Profile("Benchmark sink", "smtp", id="bench-sink", host=host, port=port,
                         security="none", timeout=120, from_email="Bench <bench@example.com>"))
    # no retention limit on the count: the burst's every message stays listed (Mailpit's
    # default of 500 would drop most of them); the byte limit stays the default
    atomic_write_json(paths.settings_file, {"target": "bench-sink", "inbox_max_messages": 0})
    return ["--config-dir", str(paths.config_dir), "--data-dir", str(paths.data_dir)], "bench-sink"


# -- child: cold start ---------------------------------------------------------------------


def child_cold(args: argparse.Namespace) -> None:
    spawned = args.spawned
    t0 = time.monotonic()
    try:
        import mailgui.app  # noqa: F401 - the import is part of the cold start
    except Exception as exc:  # noqa: BLE001
        emit("CHILD", {"available": False, "reason": f"import mailgui.app failed: {exc!r}"})
        return

    def done(app: Any, window: Any, state: dict) -> None:
        app.quit()

    try:
        # prepared outside the timed span would be better, but it needs mailgui's model,
        # which the import above already loaded: the cost here is a few small JSON files
        t_prep = time.monotonic()
        argv, _ = prepare_dirs(Path(args.workdir), args.host, args.port)
        prep = time.monotonic() - t_prep
        state = run_main_with_hook(done, argv)
    except Exception:  # noqa: BLE001
        emit("CHILD", {"available": True, "error": traceback.format_exc(limit=5)})
        return
    if "t_painted" not in state:
        emit("CHILD", {"available": True, "error": state.get("error", "no paint seen")})
        return
    emit("CHILD", {
        "available": True,
        "in_process_s": state["t_painted"] - t0 - prep,
        "spawn_s": state["t_painted"] - spawned - prep,
        "interpreter_s": T_PROCESS - spawned,
        "import_s": state["t_imported"] - t0,
        "window": state.get("window"),
    })


# -- child: frames and preview -----------------------------------------------------------------


CASES = {
    "a": "a. longest GUI-thread gap while {mb} MB goes out through SMTP",
    "b": "b. longest GUI-thread gap while {mb} MB is sent to and received by the local inbox",
    "c": "c. longest GUI-thread gap while the inbox ingests {n:,} × 5 KB from smtp-source, "
         "the list visible",
}


WITNESS = """
import struct, sys, time
out = open(sys.argv[1], "ab", buffering=0)
while True:
    time.sleep(0.004)
    out.write(struct.pack("d", time.monotonic()))
"""


class Witness:
    """A process of its own that sleeps 4 ms in a loop and writes down when it woke: its
    longest gap over a span is what the machine did to any process then (another's load,
    the hypervisor), beside the GUI thread's."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "witness.bin"
        self.path.write_bytes(b"")
        self.proc = subprocess.Popen([sys.executable, "-c", WITNESS, str(self.path)],
                                     stdin=subprocess.DEVNULL)

    def gap_ms(self, start: float, end: float) -> float | None:
        import struct

        data = self.path.read_bytes()
        ticks = [t for (t,) in struct.iter_unpack("d", data[: len(data) // 8 * 8])
                 if start <= t <= end]
        if not ticks:
            return None
        points = [start, *ticks, end]
        return max(b - a for a, b in zip(points, points[1:])) * 1000

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class StallSampler:
    """``--stalls MS``: where the GUI thread's long stretches went. A profile function on the
    GUI thread (``sys.setprofile``: no other thread, no GIL taken from it) notes every call
    into C (Qt, the stdlib) that lasted ``MS`` ms or more, with its Python caller, and every
    stretch of ``MS`` or more with no Python at all (Qt's own work between two slots: layout,
    painting; or the thread waiting for the GIL), with the last call before it and the first
    after. Off by default: the profile function slows the GUI thread's Python."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self.samples: list[tuple[float, float, str]] = []  # (start, seconds, what)
        self.stack: list[tuple[float, str]] = []
        self.last = (time.monotonic(), "start")
        self.pending: tuple[float, float, str] | None = None  # a stretch, awaiting its end
        sys.setprofile(self.event)

    @staticmethod
    def where(frame: Any) -> str:
        return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"

    def event(self, frame: Any, kind: str, arg: Any) -> None:
        now = time.monotonic()
        then, before = self.last
        if now - then >= self.threshold:
            self.samples.append((then, now - then, f"no Python after {before}, until "
                                 + (getattr(arg, "__qualname__", str(arg))
                                    if kind.startswith("c_") else self.where(frame))))
        if kind == "c_call":
            self.stack.append((now, getattr(arg, "__qualname__", str(arg))))
            what = "call " + self.stack[-1][1]
        elif kind in ("c_return", "c_exception") and self.stack:
            began, name = self.stack.pop()
            if now - began >= self.threshold and name != "exec":
                self.samples.append((began, now - began, f"{name} from {self.where(frame)}"))
            what = "return " + name
        else:
            what = f"{kind} {self.where(frame)}"
        self.last = (time.monotonic(), what)

    def between(self, start: float, end: float) -> list[str]:
        """The longest stretches that began in [start, end], at most 40, in time order."""
        inside = [x for x in self.samples if start <= x[0] <= end]
        longest = sorted(sorted(inside, key=lambda x: -x[1])[:40])
        return [f"{(t - start) * 1000:.1f} ms, {seconds * 1000:.1f} ms: {what}"
                for t, seconds, what in longest]

    def stop(self) -> None:
        sys.setprofile(None)


def thread_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds of each thread of this process (/proc), by (thread id, name); the GUI
    thread is named "GUI"."""
    out: dict[tuple[int, str], float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    main = os.getpid()
    for task in Path(f"/proc/{main}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            tid = int(task.name)
            name = "GUI" if tid == main else stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        out[(tid, name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_used(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]
             ) -> dict[str, float]:
    """CPU seconds by thread name between two ``thread_cpu()`` (a thread born meanwhile counts
    whole; one that ended is not seen)."""
    used: dict[str, float] = {}
    for key, seconds in after.items():
        delta = seconds - before.get(key, 0.0)
        if delta > 0:
            used[key[1]] = used.get(key[1], 0.0) + delta
    return {name: round(seconds, 3) for name, seconds in used.items()}


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sender_pids() -> list[int]:
    try:
        from mailgui.model import send_process
    except ImportError:
        return []
    return [*send_process.idle_pids(), *send_process.busy_pids()]


class Frames:
    """Runs on the GUI thread of the real app once its window has painted: the probe timer,
    then the cases of each round, each followed by an idle span as long as it took, then the
    source preview and a reference send with plain mailcore."""

    def __init__(self, app: Any, args: argparse.Namespace, result: dict, gui: Any) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.app = app
        self.args = args
        self.result = result
        self.gui = gui
        self.controller = gui.controller
        self.window = gui.window
        self.ticks: list[float] = []
        self.sampler: StallSampler | None = None
        self.probe = QTimer()
        self.probe.setTimerType(Qt.TimerType.PreciseTimer)
        self.probe.setInterval(PROBE_MS)
        self.probe.timeout.connect(lambda: self.ticks.append(time.monotonic()))
        self.poll = QTimer()  # watches the end of a case (the list's row count, smtp-source)
        self.poll.setInterval(20)
        self.poll.timeout.connect(self.watch)
        self.steps: list[Any] = []
        self.settled: list[float] = []  # seconds waited for quiet before each span
        self.result["settled"] = self.settled
        self.case: dict[str, Any] | None = None
        self.runs: dict[str, list[dict]] = {k: [] for k in args.cases}
        self.result["runs"] = self.runs
        try:
            self.witness: Witness | None = Witness(Path(args.workdir))
        except OSError:
            self.witness = None

    # -- gaps ----------------------------------------------------------------------------
    def gap_at(self, start: float, end: float) -> tuple[float, float]:
        """The longest gap between probe ticks in [start, end] (ms) and when it began (ms
        after ``start``)."""
        ticks = [t for t in self.ticks if start <= t <= end]
        points = [start, *ticks, end]
        gap, at = max((b - a, a) for a, b in zip(points, points[1:]))
        return gap * 1000, (at - start) * 1000

    # -- the sequence ----------------------------------------------------------------------
    def start(self) -> None:
        from mailgui.model.draft import AttachmentRef, Draft

        args = self.args
        self.draft = Draft(
            from_email="Bench <bench@example.com>", to="rcpt@example.com",
            subject="A large attachment", body="See the attached file.\n",
            attachments=[AttachmentRef(args.attachment)], profile_id="bench-sink",
        )
        self.controller.sending.finished.connect(self.sent)
        self.controller.compose.load(self.draft.copy())
        self.probe.start()
        self.sampler = StallSampler(args.stalls) if args.stalls else None
        for _round in range(args.sends):
            for key in args.cases:
                self.steps.append(lambda k=key: self.run_case(k))
        self.steps.append(self.preview)
        if not args.quick:
            self.steps.append(self.mailcore_reference)
        # give the composer's attachment-info job and the inbox's start time to finish
        self.later(1000, self.next)

    def later(self, ms: int, fn: Any) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(ms, fn)

    def next(self) -> None:
        if not self.steps:
            self.finish()
            return
        self.steps.pop(0)()

    def inbox_pid(self) -> int:
        proc = getattr(self.controller.inbox.server, "_proc", None)
        return getattr(proc, "pid", 0) or 0

    def other_pids(self) -> list[int]:
        """The app's sender and inbox processes (their CPU time says where a case's went)."""
        return [pid for pid in (*sender_pids(), self.inbox_pid()) if pid]

    def listed(self) -> int:
        return self.controller.inbox.view.list.topLevelItemCount()

    def run_case(self, key: str) -> None:
        controller, window = self.controller, self.window
        case: dict[str, Any] = {"key": key, "t0": 0.0, "sent": None, "goal": None}
        self.case = case
        if key in ("b", "c") and not controller.inbox.port:
            self.case_failed(case, "the local test inbox is not running")
            return
        if key == "a":
            controller.target.select("bench-sink")
            window.show_pane(window.transcript)
        else:
            controller.target.select("builtin-inbox")
            window.show_pane(window.inbox)  # the list is visible while it fills
        if key == "c" and not self.spawn_source(case):
            return
        # what the window redraws for the choice of target and pane is not the case's work
        self.later(300, lambda: self.settle(lambda: self.begin(case)))

    def spawn_source(self, case: dict[str, Any]) -> bool:
        """Start smtp-source now, held by a shell until ``begin`` writes a line to it: the
        fork and exec of the bench's own tool (several ms of the GUI thread's process) are
        not charged to the app's case, which starts with one write to a pipe."""
        argv = [self.args.smtp_source, "-s", str(self.args.sessions), "-m",
                str(self.args.burst), "-l", "5120", "-f", "a@example.com", "-t",
                "b@example.com", f"127.0.0.1:{self.controller.inbox.port}"]
        try:
            case["proc"] = subprocess.Popen(
                ["/bin/sh", "-c", 'read go && exec "$@" </dev/null', "sh", *argv],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            self.case_failed(case, f"smtp-source could not start: {exc}")
            return False
        return True

    def begin(self, case: dict[str, Any]) -> None:
        controller, key = self.controller, case["key"]
        if key in ("b", "c"):
            case["goal"] = self.listed() + (1 if key == "b" else self.args.burst)
        case["cpu0"] = thread_cpu()
        case["others0"] = {pid: cpu_of(pid) for pid in self.other_pids()}
        case["t0"] = time.monotonic()
        if key in ("a", "b"):
            if controller.sending.send() is None:
                self.case_failed(case, "controller.sending.send() did not start a send")
                return
        else:
            proc = case["proc"]
            try:
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError as exc:
                self.case_failed(case, f"smtp-source could not start: {exc}")
                return
        self.poll.start()

    def sent(self, outcome: Any) -> None:
        case = self.case
        if case is None or case["key"] not in ("a", "b") or case["sent"] is not None:
            return
        case["sent"] = time.monotonic()
        if not getattr(outcome, "ok", False):
            self.case_failed(case, "the send failed: " + str(getattr(outcome, "sentence", "")))
            return
        self.watch()

    def watch(self) -> None:
        case = self.case
        if case is None:
            return
        now = time.monotonic()
        key = case["key"]
        if now - case["t0"] > CASE_TIMEOUT_S:
            got = self.listed() - (case["goal"] or 0)
            self.case_failed(case, f"not done after {CASE_TIMEOUT_S} s"
                             + (f" ({got:+,} rows short of the goal)" if case["goal"] else ""))
            return
        if key in ("a", "b") and case["sent"] is None:
            return
        if key == "c":
            proc = case["proc"]
            if proc.poll() is None:
                return
            if "source_done" not in case:
                case["source_done"] = now
                if proc.returncode != 0:
                    err = proc.stderr.read().decode(errors="replace").strip()
                    self.case_failed(case, f"smtp-source exited {proc.returncode}: {err}")
                    return
        if case["goal"] is not None and self.listed() < case["goal"]:
            return
        self.case_done(case, now)

    def case_done(self, case: dict, end: float) -> None:
        self.poll.stop()
        self.case = None
        gap, at = self.gap_at(case["t0"], end)
        run = {"gap_ms": gap, "at_ms": at, "seconds": end - case["t0"]}
        run["cpu_s"] = cpu_used(case["cpu0"], thread_cpu())
        for pid in self.other_pids():
            used = cpu_of(pid) - case["others0"].get(pid, 0.0)
            if used > 0:
                name = "inbox process" if pid == self.inbox_pid() else "sender process"
                run["cpu_s"][name] = round(run["cpu_s"].get(name, 0.0) + used, 3)
        if self.witness is not None:
            run["witness_ms"] = self.witness.gap_ms(case["t0"], end)
        if case.get("sent"):
            run["sent_s"] = case["sent"] - case["t0"]
        if case.get("source_done"):
            run["smtp_source_s"] = case["source_done"] - case["t0"]
        if self.sampler is not None:
            run["stalls"] = self.sampler.between(case["t0"], end)
        self.runs[case["key"]].append(run)
        # the idle span: the same window, nothing happening, as long as the case took
        # (after a pause for what the case left behind: the inbox's checks of the burst)
        duration = end - case["t0"]
        self.later(300, lambda: self.settle(lambda: self.idle(run, duration)))

    def settle(self, then: Any, quiet_ms: int = 300, most_s: float = SETTLE_S) -> None:
        """Call ``then`` once the app's processes are quiet (the inbox's work on what the last
        case delivered, a sender still closing): each case and each idle span starts from
        the same calm window, and none inherits another's load. At most ``most_s``."""
        t0 = time.monotonic()

        def used() -> float:
            return sum(cpu_of(pid) for pid in self.other_pids())

        def check(before: float) -> None:
            now = used()
            waited = time.monotonic() - t0
            if now - before <= QUIET_CPU_S or waited > most_s:
                self.settled.append(waited)
                then()
            else:
                self.later(quiet_ms, lambda: check(now))

        start = used()
        self.later(quiet_ms, lambda: check(start))

    def idle(self, run: dict, duration: float) -> None:
        t0 = time.monotonic()

        def done() -> None:
            end = time.monotonic()
            run["idle_ms"] = self.gap_at(t0, end)[0]
            if self.witness is not None:
                run["idle_witness_ms"] = self.witness.gap_ms(t0, end)
            self.later(200, self.next)

        self.later(max(1, round(duration * 1000)), done)

    def case_failed(self, case: dict, why: str) -> None:
        self.poll.stop()
        self.case = None
        proc = case.get("proc")
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.runs[case["key"]].append({"error": why})
        # the rest of the rounds of a failed case would fail alike
        self.steps = [s for s in self.steps if getattr(s, "__defaults__", None) != (case["key"],)]
        self.later(300, self.next)

    # -- the source preview ----------------------------------------------------------------
    def preview(self) -> None:
        controller, window = self.controller, self.window
        self.t_preview = time.monotonic()
        controller.source.updated.connect(self.previewed)
        window.show_pane(window.source)  # the Source pane builds its preview when shown
        if not controller.source.running:
            controller.source.refresh()
        self.later(60_000, lambda: self.previewed(None))

    def previewed(self, pv: Any) -> None:
        if "preview_s" in self.result or "preview_error" in self.result:
            return
        if pv is None:
            self.result["preview_error"] = "no preview within 60 s"
        else:
            t = time.monotonic()
            self.result["preview_s"] = t - self.t_preview
            self.result["preview_gap_ms"] = self.gap_at(self.t_preview, t)[0]
            self.result["preview_chars"] = len(getattr(pv, "text", ""))
            if getattr(pv, "error", ""):
                self.result["preview_error"] = pv.error
                self.result.pop("preview_s")
        self.later(200, self.next)

    # -- reference: plain mailcore on a thread of this process ----------------------------
    def mailcore_reference(self) -> None:
        """The same send with plain mailcore in a QRunnable of this process: what a send on a
        thread of the GUI's process costs its frames (the GIL held while encoding)."""
        from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

        import mailcore

        class Done(QObject):
            finished = Signal(object)

        args = self.args

        class Send(QRunnable):
            def __init__(self) -> None:
                super().__init__()
                self.done = Done()

            def run(self) -> None:
                try:
                    m = mailcore.EmailMessage("A large attachment", "See the attached file.\n",
                                              "bench@example.com", ["rcpt@example.com"])
                    m.attach_file(args.attachment)
                    conn = mailcore.get_connection("smtp", host=args.host, port=args.port,
                                                   timeout=120)
                    self.done.finished.emit(conn.send_messages([m]))
                except Exception as exc:  # noqa: BLE001
                    self.done.finished.emit(exc)

        self.ref_job = Send()
        self.ref_job.setAutoDelete(False)
        self.ref_job.done.finished.connect(self.referenced)
        self.t_ref = time.monotonic()
        QThreadPool.globalInstance().start(self.ref_job)

    def referenced(self, value: Any) -> None:
        t = time.monotonic()
        self.result["mailcore_gap_ms"] = self.gap_at(self.t_ref, t)[0]
        self.result["mailcore_send_s"] = t - self.t_ref
        if not isinstance(value, int):
            self.result["mailcore_error"] = repr(value)
        self.later(200, self.next)

    def finish(self) -> None:
        self.probe.stop()
        if self.sampler is not None:
            self.sampler.stop()
        self.poll.stop()
        if self.witness is not None:
            self.witness.stop()
        try:
            from mailgui.model import send_process

            self.result["sender_starts"] = send_process.stats()
        except ImportError:
            pass
        self.app.quit()


def child_frames(args: argparse.Namespace) -> None:
    result: dict[str, Any] = {"available": True}
    try:
        import mailgui.app  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        emit("CHILD", {"available": False, "reason": f"import mailgui.app failed: {exc!r}"})
        return
    holder: dict[str, Frames] = {}

    def go(app: Any, window: Any, state: dict) -> None:
        gui = state.get("gui")
        if gui is None:
            result["error"] = "mailgui.app.main() built no MailGui"
            app.quit()
            return
        holder["f"] = Frames(app, args, result, gui)
        holder["f"].start()

    if args.sender_thread:
        # the comparison: the heavy deliveries back on the worker thread, as before the
        # sender process
        import dataclasses

        from mailgui.model import sending

        for name, row in list(sending.DELIVERIES.items()):
            if getattr(row, "child", False):
                sending.DELIVERIES[name] = dataclasses.replace(row, child=False)
        result["sender"] = "worker thread (--sender-thread)"
    try:
        argv, _ = prepare_dirs(Path(args.workdir), args.host, args.port)
        state = run_main_with_hook(go, argv)
        if "error" in state:
            result["error"] = state["error"]
    except Exception:  # noqa: BLE001
        result["error"] = traceback.format_exc(limit=6)
    emit("CHILD", result)


# -- parent ------------------------------------------------------------------------------------


def sandbox_env(home: Path) -> dict[str, str]:
    from userdirs import throwaway_user

    env = dict(os.environ)
    env.update(throwaway_user(home))
    env.update({"QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def run_child(argv: list[str], env: dict[str, str], timeout: float) -> dict:
    spawned = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv,
                               "--spawned", repr(spawned)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"available": True, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"available": True, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1][6:])


def ms(value: float) -> str:
    return f"{value:,.1f} ms"


def case_row(key: str, runs: list[dict], title: str) -> tuple[dict, list[str], dict | None]:
    """The RESULT row of one case, its notes and its details entry."""
    title = "1" + title
    target = f"≤ {FRAME_MS:.0f} ms and ≤ idle + {OVER_IDLE_MS:.0f} ms"
    good = [r for r in runs if "error" in r or "idle_ms" in r]
    errors = [r["error"] for r in good if "error" in r]
    done = [r for r in good if "error" not in r]
    if errors or not done:
        why = errors[0] if errors else "not measured"
        return ({"title": title, "cells": {"mailcore": why}, "target": target, "met": None},
                [f"{title}: {why}"], None)
    worst = max(r["gap_ms"] for r in done)
    idle = max(r["idle_ms"] for r in done)
    met = worst <= FRAME_MS and worst <= idle + OVER_IDLE_MS
    row = {"title": f"{title} (worst of {len(done)})",
           "cells": {"mailcore": f"{ms(worst)} (idle {ms(idle)})"},
           "ratio": f"{worst - idle:+.1f} ms over idle",
           "target": target, "met": met}
    def witness(r: dict, key: str) -> str:
        value = r.get(key)
        return f", machine {value:.1f} ms" if value is not None else ""

    def cpu(r: dict) -> str:
        used = sorted(r.get("cpu_s", {}).items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in used[:5])

    each = "; ".join(
        f"{r['gap_ms']:.1f} ms at {r['at_ms'] / 1000:.2f} s of {r['seconds']:.2f} s"
        + (f" (sent after {r['sent_s']:.2f} s)" if "sent_s" in r and key == "b" else "")
        + (f" (smtp-source done after {r['smtp_source_s']:.2f} s)" if "smtp_source_s" in r
           else "")
        + witness(r, "witness_ms")
        + f", idle {r['idle_ms']:.1f} ms" + witness(r, "idle_witness_ms")
        + (f", CPU: {cpu(r)}" if r.get("cpu_s") else "") for r in done)
    notes = [f"1{key}: longest gap {ms(worst)} (worst of {len(done)}), idle gap of the same "
             f"runs {ms(idle)} (each idle span as long as its case, the window shown, nothing "
             f"happening; 'machine': the longest gap of a separate process sleeping 4 ms in "
             f"a loop, over the same span); every run: {each}"]
    for r in done:
        if r.get("stalls"):
            notes.append(f"1{key} stalls (--stalls), run of {r['seconds']:.2f} s: "
                         + "; ".join(r["stalls"]))
    worst_run = max(done, key=lambda r: r["gap_ms"])
    if worst_run.get("cpu_s"):
        row["where"] = [f"CPU time in the worst run ({worst_run['seconds']:.2f} s): "
                        f"{cpu(worst_run)}"]
    gaps = sorted(r["gap_ms"] for r in done)
    detail = {"benchmark": title, "impl": "mailgui", "runs": len(done),
              "best": ms(gaps[0]), "median": ms(statistics.median(gaps))}
    return row, notes, detail


def make_attachment(path: Path, mb: int) -> None:
    """``mb`` MB of random bytes (incompressible, as a photo or an archive is)."""
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))


def parent(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {"available": True, "reason": "", "rows": [], "notes": [],
                           "details": [], "log": [], "reasons": {}}
    home = Path(tempfile.mkdtemp(prefix="mailgui-bench-home-"))
    sink = None
    try:
        env = sandbox_env(home)
        if not args.attachment:
            args.attachment = str(home / "attachment.bin")
            make_attachment(Path(args.attachment), args.mb)
        mb = max(1, round(os.path.getsize(args.attachment) / 1e6))
        if not args.port:
            sys.path.insert(0, str(HERE))
            from sinks import Sink

            sink = (Sink.smtp_sink() or Sink.aiosmtpd()).start()
            args.port = sink.port
            out["notes"].append(f"1a's sink: {sink.name} on 127.0.0.1:{sink.port}")
        colds = []
        for i in range(args.repeats):
            r = run_child(["--child", "cold", "--workdir", str(home / f"cold{i}"), "--host",
                           args.host, "--port", str(args.port)], env, timeout=90)
            if not r.get("available"):
                out["available"] = False
                out["reason"] = "mailgui not available: " + r.get("reason", "")
                return out
            if "error" in r:
                out["reasons"]["cold_start_s"] = "failed: " + r["error"].strip().splitlines()[-1]
                out["notes"].append("cold start: " + r["error"].strip())
                break
            colds.append(r)
        cold_title = "cold start to first painted window, offscreen (median; reference)"
        if colds:
            out["cold_start_s"] = statistics.median(c["in_process_s"] for c in colds)
            spawn = statistics.median(c["spawn_s"] for c in colds)
            out["rows"].append({"title": cold_title,
                                "cells": {"mailcore": f"{out['cold_start_s']:.3f} s"},
                                "target": "", "met": None})
            out["notes"].append(
                f"cold start: import + construct + first paint {out['cold_start_s']:.3f} s "
                f"(median of {len(colds)}: "
                + ", ".join(f"{c['in_process_s']:.3f}" for c in colds)
                + f" s; import alone {statistics.median(c['import_s'] for c in colds):.3f} s); "
                f"from spawning the interpreter {spawn:.3f} s; first painted window: "
                f"{colds[0].get('window')}")
        else:
            out["rows"].append({"title": cold_title, "met": None, "target": "", "cells": {
                "mailcore": out["reasons"].get("cold_start_s", "not measured")}})
        # start, preview and reference, then each run of a case: the case, its idle span and
        # two waits for quiet (a 2,000-message burst at 170/s: 12 + 12 + up to 60 s)
        timeout = 120 + 90 * args.sends * len(args.cases)
        r = run_child(["--child", "frames", "--attachment", args.attachment, "--host",
                       args.host, "--port", str(args.port), "--workdir", str(home / "frames"),
                       "--sends", str(args.sends), "--cases", args.cases, "--burst",
                       str(args.burst), "--sessions", str(args.sessions), "--smtp-source",
                       args.smtp_source] + (["--quick"] if args.quick else [])
                      + (["--sender-thread"] if args.sender_thread else [])
                      + (["--stalls", str(args.stalls)] if args.stalls else []),
                      env, timeout=timeout)
        if not r.get("available"):
            out["available"] = False
            out["reason"] = r.get("reason", "mailgui not available")
            return out
        if "error" in r:
            out["notes"].append("frames: " + r["error"].strip())
        runs = r.get("runs", {})
        for key in args.cases:
            title = CASES[key].format(mb=mb, n=args.burst)
            case_runs = runs.get(key, [])
            if not case_runs and "error" in r:
                case_runs = [{"error": "failed: " + r["error"].strip().splitlines()[-1]}]
            row, notes, detail = case_row(key, case_runs, title)
            out["rows"].append(row)
            out["notes"].extend(notes)
            if detail:
                out["details"].append(detail)
            done = [x for x in case_runs if "idle_ms" in x]
            if done:  # the keys the window section of run.py read before these rows
                legacy = {"a": "stall_ms", "b": "inbox_stall_ms", "c": "burst_stall_ms"}[key]
                out[legacy] = max(x["gap_ms"] for x in done)
                out[legacy.replace("stall", "idle")] = max(x["idle_ms"] for x in done)
        preview_title = "source preview of that message appears"
        if "preview_s" in r:
            out["preview_s"] = r["preview_s"]
            out["rows"].append({"title": preview_title,
                                "cells": {"mailcore": f"{r['preview_s']:.3f} s"},
                                "target": "< 0.5 s", "met": r["preview_s"] < 0.5})
            out["notes"].append(
                f"preview: {r['preview_chars']:,} characters of source delivered in "
                f"{r['preview_s'] * 1000:.0f} ms (longest gap {r.get('preview_gap_ms', 0):.1f} "
                f"ms)")
        else:
            out["rows"].append({"title": preview_title, "target": "< 0.5 s", "met": None,
                                "cells": {"mailcore": r.get("preview_error", "not measured")}})
        if "mailcore_gap_ms" in r:
            out["notes"].append(
                f"reference: the same {mb} MB sent with plain mailcore on a thread of the GUI's "
                f"process (a QRunnable): {r['mailcore_send_s']:.2f} s, longest gap "
                f"{r['mailcore_gap_ms']:.1f} ms"
                + (f" (error {r['mailcore_error']})" if r.get("mailcore_error") else ""))
        starts = r.get("sender_starts") or []
        if starts:
            out["notes"].append(
                "the sender process: started " + ", ".join(
                    f"in {s_['ready_s']:.2f} s" for s_ in starts)
                + " (from Popen until it had imported mailcore and the model; started 1.5 s "
                  "after the window, or by the first Send)")
        if r.get("sender"):
            out["notes"].append("sending on: " + r["sender"])
        if r.get("settled"):
            waits = r["settled"]
            out["notes"].append(
                f"before each case and each idle span the bench waited until the app's sender "
                f"and inbox processes were quiet (≤ {QUIET_CPU_S * 1000:.0f} ms of CPU in "
                f"300 ms, at most {SETTLE_S:.0f} s): {len(waits)} waits, longest "
                f"{max(waits):.1f} s")
        out["notes"].append(
            f"frames: a precise {PROBE_MS} ms QTimer on the GUI thread, offscreen; target: "
            f"≤ {FRAME_MS:.0f} ms (one 60 Hz frame) and ≤ {OVER_IDLE_MS:.0f} ms above the idle "
            f"gap of the same runs; {args.sends} run(s) per case, interleaved by round")
        out["notes"] = [n for n in out["notes"] if n]
        out["log"] = list(out["notes"])
    finally:
        if sink is not None:
            sink.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="mailgui window benchmarks (offscreen)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 cold start, 1 run per case, 10 MB, 200 messages")
    parser.add_argument("--repeats", type=int, default=None, help="cold starts (5)")
    parser.add_argument("--sends", type=int, default=None,
                        help="runs of each case; a case's figure is the worst (3)")
    parser.add_argument("--attachment", default="",
                        help="the big file; made here (--mb MB of random bytes) when not given")
    parser.add_argument("--mb", type=int, default=None, help="size of the made file (100)")
    parser.add_argument("--host", default="127.0.0.1", help="the SMTP sink of case a")
    parser.add_argument("--port", type=int, default=0,
                        help="the sink's port; 0: start smtp-sink (or an aiosmtpd sink) here")
    parser.add_argument("--cases", default="abc", help="which of the cases a, b, c to run")
    parser.add_argument("--burst", type=int, default=None, help="messages of case c (2000)")
    parser.add_argument("--sessions", type=int, default=4, help="smtp-source's sessions (-s)")
    parser.add_argument("--smtp-source", default="/usr/sbin/smtp-source")
    parser.add_argument("--sender-thread", action="store_true",
                        help="for comparison: send on the worker thread, not in the sender "
                             "process")
    parser.add_argument("--stalls", type=float, default=0.0, metavar="MS",
                        help="for finding causes: note the GUI thread's stack in every gap "
                             "longer than MS (the sampler's GIL use disturbs the figures)")
    parser.add_argument("--child", choices=("cold", "frames"))
    parser.add_argument("--spawned", type=float, default=T_PROCESS)
    parser.add_argument("--workdir", default="", help="(child) folder for config and data")
    args = parser.parse_args()
    args.cases = "".join(k for k in "abc" if k in args.cases)
    for name, full, quick in (("repeats", 5, 1), ("sends", 3, 1), ("mb", 100, 10),
                              ("burst", 2000, 200)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.child == "cold":
        child_cold(args)
    elif args.child == "frames":
        child_frames(args)
    else:
        # ended from outside (run.py's timeout or Ctrl+C): unwind, so the throwaway home
        # is removed and subprocess.run ends the child it waits for
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        emit("RESULT", parent(args))


if __name__ == "__main__":
    main()
