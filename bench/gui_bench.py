"""Benchmarks of the mailgui window, offscreen (``QT_QPA_PLATFORM=offscreen``).

``python bench/gui_bench.py --repeats 5 --attachment BIG.bin --host 127.0.0.1 --port PORT``
prints ``RESULT {json}``. bench/run.py calls it; it can also be run alone.

What it measures (each in a fresh process, with a throwaway HOME/XDG folders and
the null keyring backend, so nothing of the user's is read or written):

* **cold start**: import ``mailgui.app``, run ``mailgui.app.main()`` and stop at
  the first paint of a top-level window. The figure is "import + construct +
  first paint" inside the process (median of ``--repeats``); the time from
  spawning the interpreter is reported beside it.
* **GUI-thread stall**: once the window has painted, a ``QTimer`` ticks every
  10 ms on the GUI thread while ``mailgui.jobs.SendJob`` sends a draft with the
  big attachment to the sink on a ``mailgui.jobs.JobRunner`` pool; the figure is
  the largest gap between two ticks while the job runs.
* **source preview**: the time from starting ``mailgui.jobs.preview_job`` for
  that draft on the pool until its result is delivered to the GUI thread and
  set into a ``QPlainTextEdit``.

What it expects from mailgui (it cannot change mailgui, so it hooks from outside):

* ``mailgui.app.main()`` creates its ``QApplication`` through the name
  ``QApplication`` (imported into ``mailgui.app`` or looked up on
  ``PySide6.QtWidgets``), shows the main window and calls ``app.exec()``. The
  harness substitutes a subclass whose ``exec`` first installs an application
  event filter that notices the first ``QEvent.Paint`` of a top-level widget;
  the harness then quits the event loop itself.
* ``mailgui.jobs``: ``JobRunner``, ``SendJob(draft, profile, password=,
  secrets=, sent_log=)`` with ``signals.finished``, and ``preview_job(generation,
  draft, profile, fold)`` returning ``(generation, Preview)``;
  ``mailgui.model.draft``: ``Draft``, ``AttachmentRef``;
  ``mailgui.model.profiles``: ``Profile``.

Anything missing is reported ("mailgui not available", or the import error),
never raised. If ``mailgui.app`` is missing but the jobs are there, the stall
and preview are measured on a stand-in window and the result says so.
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
HEARTBEAT_MS = 10


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
    atomic_write_json(paths.settings_file, {"target": "bench-sink"})
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


# -- child: stall and preview -----------------------------------------------------------------


class Scenario:
    """Runs on the GUI thread once a window has painted: heartbeat, send, preview.

    With the real app (``gui`` is the ``MailGui`` main() built) the draft is loaded into
    the composer (``controller.compose.load``), sent with ``controller.sending.send()``
    (which starts ``SendJob`` on the app's pool and updates the window as progress
    arrives) and the Source pane is shown (``window.show_pane(window.source)``), timed
    until ``controller.source.updated``. Without it, ``SendJob`` and ``preview_job`` run
    on a ``JobRunner`` of the harness's own next to a stand-in window.
    """

    def __init__(self, app: Any, args: argparse.Namespace, result: dict, gui: Any) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.app = app
        self.args = args
        self.result = result
        self.gui = gui
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.monotonic()))

    def max_gap(self, start: float, end: float) -> float:
        return self.gap_at(start, end)[0]

    def gap_at(self, start: float, end: float) -> tuple[float, float]:
        """The largest gap between heartbeats in [start, end] (ms) and when it began
        (ms after ``start``)."""
        ticks = [t for t in self.ticks if start <= t <= end]
        points = [start, *ticks, end]
        gap, at = max((b - a, a) for a, b in zip(points, points[1:]))
        return gap * 1000, (at - start) * 1000

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        from mailgui.model.draft import AttachmentRef, Draft
        from mailgui.model.profiles import Profile

        args = self.args
        self.draft = Draft(
            from_email="Bench <bench@example.com>", to="rcpt@example.com",
            subject="A large attachment", body="See the attached file.\n",
            attachments=[AttachmentRef(args.attachment)], profile_id="bench-sink",
        )
        self.profile = Profile("Benchmark sink", "smtp", id="bench-sink", host=args.host,
                               port=args.port, security="none", timeout=120,
                               from_email="Bench <bench@example.com>")
        self.stalls: list[tuple[float, float, float]] = []  # (gap ms, at ms, send s)
        self.timer.start()
        self.t_idle = time.monotonic()
        if self.gui is not None:
            self.gui.controller.sending.finished.connect(self.sent)
            self.result["mode"] = "mailgui.app (MailGui controllers)"
            # the draft goes into the composer; give its attachment-info job time to finish
            self.gui.controller.compose.load(self.draft.copy())
            QTimer.singleShot(800, self.send)
        else:
            self.result["mode"] = "mailgui.jobs on a stand-in window"
            QTimer.singleShot(300, self.send)

    def send(self) -> None:
        if not self.stalls:
            self.result["idle_gap_ms"] = self.max_gap(self.t_idle, time.monotonic())
        self.t_send = time.monotonic()
        if self.gui is not None:
            job = self.gui.controller.sending.send()
            if job is None:
                self.fail("controller.sending.send() did not start a job (the draft or the "
                          "profile was refused; see the banner)")
            return
        from mailgui.jobs import JobRunner, SendJob

        self.runner = getattr(self, "runner", None) or JobRunner()
        job = SendJob(self.draft, self.profile, password=None, secrets=None, sent_log=None)
        job.signals.finished.connect(self.sent)
        job.signals.failed.connect(lambda exc: self.fail(f"send job failed: {exc!r}"))
        self.runner.start(job)

    def sent(self, outcome: Any) -> None:
        from PySide6.QtCore import QTimer

        t = time.monotonic()
        gap, at = self.gap_at(self.t_send, t)
        self.stalls.append((gap, at, t - self.t_send))
        ok = bool(getattr(outcome, "ok", False))
        if not ok:
            self.result["send_ok"] = False
            self.result["send_sentence"] = str(getattr(outcome, "sentence", ""))
            self.result.setdefault("reasons", {})["stall_ms"] = (
                "the send failed: " + self.result["send_sentence"])
        elif len(self.stalls) < self.args.sends:
            QTimer.singleShot(300, self.send)
            return
        else:
            self.result["send_ok"] = True
            worst = max(self.stalls)
            self.result["stall_ms"], self.result["stall_at_ms"], _ = worst
            self.result["stalls_ms"] = [g for g, _, _ in self.stalls]
            self.result["send_s"] = statistics.median(s for _, _, s in self.stalls)
            if self.gui is not None:
                QTimer.singleShot(300, self.send_to_inbox)
                return
        QTimer.singleShot(200, self.preview)

    # -- the same message to the built-in local test inbox (the default target) ----------------
    def send_to_inbox(self) -> None:
        """Send the message to the app's own inbox: the window both sends and receives (its
        inbox server is a child process). Timed until the message is listed in the Inbox."""
        from PySide6.QtCore import QTimer

        controller = self.gui.controller
        if not controller.inbox.running:
            self.result.setdefault("reasons", {})["inbox_stall_ms"] = "the inbox is not running"
            QTimer.singleShot(200, self.preview)
            return
        controller.sending.finished.disconnect(self.sent)
        controller.sending.finished.connect(self.inbox_sent)
        controller.inbox.count_changed.connect(self.inbox_listed)
        self.inbox_count = len(controller.inbox.messages)
        controller.target.select("builtin-inbox")
        self.t_inbox = time.monotonic()
        self.t_inbox_sent = 0.0
        if controller.sending.send() is None:
            self.fail("sending to the local test inbox did not start")

    def inbox_sent(self, outcome: Any) -> None:
        self.t_inbox_sent = time.monotonic()
        if not getattr(outcome, "ok", False):
            self.result.setdefault("reasons", {})["inbox_stall_ms"] = (
                "the send failed: " + str(getattr(outcome, "sentence", "")))
            self.inbox_listed(-1)

    def inbox_listed(self, count: int) -> None:
        from PySide6.QtCore import QTimer

        if 0 <= count <= self.inbox_count:
            return
        self.gui.controller.inbox.count_changed.disconnect(self.inbox_listed)
        if count > 0:
            t = time.monotonic()
            gap, at = self.gap_at(self.t_inbox, t)
            self.result["inbox_stall_ms"], self.result["inbox_stall_at_ms"] = gap, at
            self.result["inbox_listed_s"] = t - self.t_inbox
            self.result["inbox_sent_s"] = (self.t_inbox_sent or t) - self.t_inbox
        QTimer.singleShot(200, self.preview)

    def preview(self) -> None:
        self.t_preview = time.monotonic()
        if self.gui is not None:
            controller, window = self.gui.controller, self.gui.window
            controller.source.updated.connect(self.previewed)
            window.show_pane(window.source)  # the Source pane builds its preview when shown
            if not controller.source.running:
                controller.source.refresh()
            return
        from PySide6.QtWidgets import QPlainTextEdit

        from mailgui.jobs import preview_job

        self.pane = QPlainTextEdit()

        def done(value: Any) -> None:
            _generation, pv = value
            self.pane.setPlainText(pv.text)
            self.previewed(pv)

        self.runner.run(preview_job, 1, self.draft, self.profile, True, on_done=done,
                        on_error=lambda exc: self.fail(f"preview job failed: {exc!r}"))

    def previewed(self, pv: Any) -> None:
        if "preview_s" in self.result or "preview_error" in self.result:
            return
        t = time.monotonic()
        self.result["preview_s"] = t - self.t_preview
        self.result["preview_gap_ms"] = self.max_gap(self.t_preview, t)
        self.result["preview_chars"] = len(getattr(pv, "text", ""))
        error = getattr(pv, "error", "")
        if error:
            self.result["preview_error"] = error
            self.result.setdefault("reasons", {})["preview_s"] = "preview error: " + error
            self.result.pop("preview_s")
        self.mailcore_reference()

    def mailcore_reference(self) -> None:
        """The same send with plain mailcore in a QRunnable: how much of the stall is
        mailcore's own (the GIL it holds while encoding) rather than mailgui's."""
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
        self.result["mailcore_stall_ms"] = self.max_gap(self.t_ref, t)
        self.result["mailcore_send_s"] = t - self.t_ref
        if not isinstance(value, int):
            self.result["mailcore_error"] = repr(value)
        self.finish()

    def fail(self, why: str) -> None:
        self.result["error"] = why
        self.finish()

    def finish(self) -> None:
        self.timer.stop()
        self.app.quit()


def child_stall(args: argparse.Namespace) -> None:
    result: dict[str, Any] = {"available": True}
    try:
        import mailgui.jobs  # noqa: F401
        import mailgui.model.draft  # noqa: F401
        import mailgui.model.profiles  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        emit("CHILD", {"available": False, "reason": f"import mailgui.jobs failed: {exc!r}"})
        return
    holder: dict[str, Scenario] = {}

    def go(app: Any, window: Any, state: dict) -> None:
        holder["s"] = Scenario(app, args, result, state.get("gui"))
        holder["s"].start()

    try:
        import mailgui.app  # noqa: F401

        has_app = True
    except Exception as exc:  # noqa: BLE001
        has_app = False
        result["stand_in"] = f"mailgui.app not importable ({exc!r}); a plain QMainWindow stood in"
    try:
        if has_app:
            argv, _ = prepare_dirs(Path(args.workdir), args.host, args.port)
            state = run_main_with_hook(go, argv)
            if "error" in state and "stall_ms" not in result:
                result["error"] = state["error"]
        else:
            from PySide6.QtCore import QTimer
            from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

            app = QApplication.instance() or QApplication(["mailgui-bench"])
            window = QMainWindow()
            window.setCentralWidget(QLabel("stand-in window"))
            window.resize(900, 700)
            window.show()
            QTimer.singleShot(50, lambda: go(app, window, {}))
            QTimer.singleShot(WATCHDOG_MS * 4, app.quit)
            app.exec()
    except Exception:  # noqa: BLE001
        result["error"] = traceback.format_exc(limit=6)
    emit("CHILD", result)


# -- parent ------------------------------------------------------------------------------------


def sandbox_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    (home / "run").mkdir(parents=True, exist_ok=True)
    os.chmod(home / "run", 0o700)
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


def parent(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {"available": True, "log": [], "notes": [], "reasons": {}}
    home = Path(tempfile.mkdtemp(prefix="mailgui-bench-home-"))
    try:
        env = sandbox_env(home)
        colds = []
        for i in range(args.repeats):
            r = run_child(["--child", "cold", "--workdir", str(home / f"cold{i}"), "--host",
                           args.host, "--port", str(args.port)], env, timeout=90)
            if not r.get("available"):
                out["available"] = False
                out["reason"] = "mailgui not available"
                out["reasons"]["cold_start_s"] = "mailgui not available"
                out["notes"].append(r.get("reason", ""))
                break
            if "error" in r:
                out["reasons"]["cold_start_s"] = "failed: " + r["error"].strip().splitlines()[-1]
                out["notes"].append("cold start: " + r["error"].strip())
                break
            colds.append(r)
        if colds:
            out["cold_start_s"] = statistics.median(c["in_process_s"] for c in colds)
            spawn = statistics.median(c["spawn_s"] for c in colds)
            out["cold_start_runs"] = colds
            out["notes"].append(
                f"cold start: import + construct + first paint {out['cold_start_s']:.3f} s "
                f"(median of {len(colds)}; import alone "
                f"{statistics.median(c['import_s'] for c in colds):.3f} s); "
                f"from spawning the interpreter {spawn:.3f} s; first painted window: "
                f"{colds[0].get('window')}")
        if args.attachment:
            r = run_child(["--child", "stall", "--attachment", args.attachment, "--host",
                           args.host, "--port", str(args.port), "--workdir",
                           str(home / "stall"), "--sends", str(args.sends)], env, timeout=300)
            if r.get("available"):
                out["available"] = True
                out.pop("reason", None)
            for key in ("stall_ms", "stall_at_ms", "stalls_ms", "preview_s", "idle_gap_ms",
                        "send_s", "mailcore_stall_ms", "mode",
                        "mailcore_send_s", "preview_chars", "preview_gap_ms",
                        "inbox_stall_ms", "inbox_stall_at_ms", "inbox_listed_s",
                        "inbox_sent_s"):
                if key in r:
                    out[key] = r[key]
            out["reasons"].update(r.get("reasons", {}))
            if r.get("stand_in"):
                out["notes"].append(r["stand_in"])
            if "error" in r:
                out["notes"].append("stall/preview: " + r["error"].strip())
                for key in ("stall_ms", "preview_s"):
                    out["reasons"].setdefault(key, "failed: "
                                              + r["error"].strip().splitlines()[-1])
            if not r.get("available"):
                out["notes"].append(r.get("reason", ""))
            if "stall_ms" in r:
                out["notes"].append(
                    f"sends of the attachment: {len(r.get('stalls_ms', [1]))} "
                    f"({r.get('mode', '?')}), median {r['send_s']:.2f} s each; heartbeat max gap "
                    f"while idle {r.get('idle_gap_ms', 0):.0f} ms, while sending "
                    + ", ".join(f"{g:.0f}" for g in r.get("stalls_ms", [r["stall_ms"]]))
                    + f" ms (the worst began {r.get('stall_at_ms', 0):.0f} ms into its send)")
            if "inbox_stall_ms" in r:
                out["notes"].append(
                    f"the same message to the local test inbox (the app sends and receives it): "
                    f"sent in {r['inbox_sent_s']:.2f} s, listed in the Inbox after "
                    f"{r['inbox_listed_s']:.2f} s; heartbeat max gap {r['inbox_stall_ms']:.0f} ms "
                    f"(began {r.get('inbox_stall_at_ms', 0):.0f} ms in)")
            if "mailcore_stall_ms" in r:
                out["notes"].append(
                    f"reference: the same send with plain mailcore in a QRunnable: "
                    f"{r['mailcore_send_s']:.2f} s, heartbeat max gap "
                    f"{r['mailcore_stall_ms']:.0f} ms"
                    + (f" (error {r['mailcore_error']})" if r.get("mailcore_error") else ""))
            if "preview_s" in r:
                out["notes"].append(
                    f"preview: {r['preview_chars']:,} characters of source delivered in "
                    f"{r['preview_s'] * 1000:.0f} ms (heartbeat max gap "
                    f"{r.get('preview_gap_ms', 0):.0f} ms)")
        out["notes"] = [n for n in out["notes"] if n]
        out["log"] = list(out["notes"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="mailgui window benchmarks (offscreen)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attachment", default="")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--child", choices=("cold", "stall"))
    parser.add_argument("--spawned", type=float, default=T_PROCESS)
    parser.add_argument("--workdir", default="", help="(child) folder for config and data")
    parser.add_argument("--sends", type=int, default=3,
                        help="sends of the attachment; the stall is the worst of them")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.child == "cold":
        child_cold(args)
    elif args.child == "stall":
        child_stall(args)
    else:
        # ended from outside (run.py's timeout or Ctrl+C): unwind, so the throwaway home
        # is removed and subprocess.run ends the child it waits for
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        emit("RESULT", parent(args))


if __name__ == "__main__":
    main()
