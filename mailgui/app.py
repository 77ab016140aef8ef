"""QApplication, main window assembly, main().  ``python -m mailgui`` / ``mailgui``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from mailgui.model.paths import AppPaths

__all__ = ["MailGui", "display_problem", "lock_data_dir", "main"]

LOCK_FILE = "mailgui.lock"


class MailGui:
    """The whole app for one window: view + controllers. Paths are injectable (tests).

    ``staged`` (``main`` uses it): only what the first frame shows is built here; call
    ``complete()`` once it is on the screen for the rest (``MainController.start``)."""

    def __init__(self, paths: AppPaths | None = None, *, secrets: object = None,
                 start_inbox: bool = True, inbox_port: int | None = None,
                 staged: bool = False) -> None:
        from mailgui.controllers.main import MainController
        from mailgui.views.main_window import MainWindow

        self.paths = paths or AppPaths.default()
        self.window = MainWindow()
        self._checks: Any = None
        self.controller = MainController(self.window, self.paths, secrets=secrets,
                                         start_inbox=start_inbox, inbox_port=inbox_port,
                                         staged=staged)
        if self.controller.started:
            self.complete()

    def complete(self) -> None:
        """Build what a staged start left for after the first frame; idempotent (asking
        for ``checks`` or one of the controller's parts before does it too)."""
        self.controller.start()
        if self._checks is None:
            from mailgui.controllers.checks import ComposerChecks

            # the composer's Check (Ctrl+K); one spamd for the app, the inbox's
            self._checks = ComposerChecks(self.window, self.controller,
                                          self.controller.inbox.checks.spam)

    @property
    def checks(self) -> Any:
        """The composer's checks (``mailgui.controllers.checks.ComposerChecks``)."""
        self.complete()
        return self._checks

    def show(self) -> None:
        self.window.show()
        self.controller.focus_first_field()

    def shutdown(self) -> None:
        """Start quitting; returns at once (see ``MainController.shutdown``)."""
        self.controller.shutdown()

    def finish(self, timeout: float = 15.0) -> bool:
        """Wait for what quitting left running behind (``MainController.finish``)."""
        return self.controller.finish(timeout)


def after_first_frame(window: Any, fn: Any, fallback_ms: int = 1000) -> None:
    """Call ``fn`` once, as soon as ``window``'s first frame has gone to the screen (right
    after its first paint, from the event loop), or after ``fallback_ms`` if it never paints
    (a window shown minimized)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    state = {"done": False}

    def run() -> None:
        if not state["done"]:
            state["done"] = True
            window.removeEventFilter(watcher)
            fn()

    class FirstFrame(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Paint and not state["done"]:
                # the backing store is flushed once this paint and its children's are done
                QTimer.singleShot(0, run)
            return False

    watcher = FirstFrame(window)
    window.installEventFilter(watcher)
    QTimer.singleShot(fallback_ms, run)


def _x11_problem(display: str) -> str | None:
    import ctypes

    try:
        lib = ctypes.CDLL("libxcb.so.1")  # its soname: no ldconfig run to find it
    except OSError:
        import ctypes.util

        name = ctypes.util.find_library("xcb")
        if not name:
            return None
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return None
    try:
        lib.xcb_connect.restype = ctypes.c_void_p
        lib.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
        lib.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        lib.xcb_disconnect.argtypes = [ctypes.c_void_p]
        conn = lib.xcb_connect(display.encode(), None)
        error = lib.xcb_connection_has_error(conn)
        lib.xcb_disconnect(conn)
    except (OSError, AttributeError):
        return None
    if error:
        return (f"mailgui can't open the X display {display!r}: no X server answers there, or "
                "you are not allowed to use it. Check DISPLAY (and xauth when using ssh -X).")
    return None


def display_problem(environ: dict[str, str] | None = None) -> str | None:
    """A sentence saying why no window can be shown, or None if a display looks usable."""
    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs...: Qt's own business
    if not sys.platform.startswith("linux"):
        return None
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    if wayland and not platform.startswith("xcb"):
        runtime = env.get("XDG_RUNTIME_DIR", "")
        socket_path = Path(wayland) if wayland.startswith("/") else Path(runtime) / wayland
        if socket_path.exists():
            return None
        if not display:
            return f"mailgui can't find the Wayland display {wayland!r} ({socket_path})."
    if not display:
        return ("mailgui needs a graphical display, but neither DISPLAY nor WAYLAND_DISPLAY is "
                "set. Start it from a desktop session (or ssh -X), or set "
                "QT_QPA_PLATFORM=offscreen to run it without a screen.")
    return _x11_problem(display)


def lock_data_dir(data_dir: Path) -> tuple[object | None, str | None]:
    """Make this process the only mailgui using ``data_dir`` (its drafts would be
    overwritten by another's autosave). Returns (lock, None) — keep the lock alive while the
    app runs — or (None, sentence) when another running mailgui holds it. A lock left by a
    mailgui that died (its process is gone) is taken over. (None, None) if no lock file can
    be written there at all (then nothing can be saved there either)."""
    from PySide6.QtCore import QLockFile

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None, None
    lock = QLockFile(str(data_dir / LOCK_FILE))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however old it is
    if lock.tryLock(0):
        return lock, None
    if lock.error() != QLockFile.LockError.LockFailedError:
        return None, None  # read-only folder and the like
    pid, host = 0, ""
    try:
        pid, host, _app = lock.getLockInfo()
    except (TypeError, ValueError):
        pass
    import socket

    where = f" on {host}" if host and host != socket.gethostname() else ""
    holder = f" (pid {pid}{where})" if pid else ""
    return None, (f"mailgui is already running with this data folder{holder}: {data_dir}. "
                  "Close it, or start with --data-dir OTHER to use another folder.")


def _announce_when_ready(gui: MailGui, *, inbox: bool) -> None:
    """Say on stderr when the window is up and where the local inbox listens (useful on a
    machine without a screen, and to scripts). MAILGUI_EXIT_WHEN_READY=1 then quits, cleanly:
    packaging tests use it to check that an installed mailgui really starts."""
    from PySide6.QtCore import QTimer

    state = {"painted": False, "inbox": None if inbox else "off", "done": False}

    def maybe() -> None:
        if state["done"] or not state["painted"] or state["inbox"] is None:
            return
        state["done"] = True
        print(f"mailgui: ready; local test inbox {state['inbox']}", file=sys.stderr, flush=True)
        if os.environ.get("MAILGUI_EXIT_WHEN_READY") == "1":
            QTimer.singleShot(0, gui.window.close)

    def painted() -> None:
        state["painted"] = True
        maybe()

    def inbox_started(port: int) -> None:
        state["inbox"] = f"on 127.0.0.1:{port}"
        maybe()

    def inbox_failed(error: str) -> None:
        state["inbox"] = f"could not start ({error})"
        maybe()

    gui.controller.inbox.started.connect(inbox_started)
    gui.controller.inbox.failed.connect(inbox_failed)
    if gui.controller.inbox.running:
        inbox_started(gui.controller.inbox.port)
    QTimer.singleShot(0, painted)  # runs once the event loop has shown the window


START_PROBE_ENV = "MAILGUI_START_PROBE"


def _probe_emit(fd: int, line: str) -> None:
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    except OSError:
        pass


def _start_probe(gui: MailGui, fd_text: str) -> None:
    """``MAILGUI_START_PROBE=FD`` (bench/gui_start.py only): write to file descriptor FD
    ``paint T`` once the main window's first frame has gone to the display, and
    ``to T TEXT`` (TEXT as JSON) each time the To field changes; T is ``time.monotonic()``,
    the clock the bench reads too. Unset, nothing of this runs."""
    import json
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer

    try:
        fd = int(fd_text)
    except ValueError:
        return

    class FirstPaint(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Paint:
                gui.window.removeEventFilter(self)
                # the frame is flushed to the display once this paint (the window's first)
                # and its children's are done: the 0 ms timer runs right after that
                QTimer.singleShot(0, lambda: _probe_emit(fd, f"paint {time.monotonic():.6f}"))
            return False

    gui._start_probe = FirstPaint(gui.window)  # type: ignore[attr-defined]
    gui.window.installEventFilter(gui._start_probe)  # type: ignore[attr-defined]
    to = gui.window.compose.address_edits["to"]
    to.textChanged.connect(
        lambda text: _probe_emit(fd, f"to {time.monotonic():.6f} {json.dumps(text)}"))


def _inbox_port(text: str) -> int:
    # imported only when the flag is given: mailcore.cli costs 30 ms of start-up
    from mailcore.cli import port_number

    return port_number(text, allow_zero=True)


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (it imports mailcore)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from mailgui import __version__

        sys.stdout.write(f"mailgui {__version__}\n")
        parser.exit()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mailgui", description="A desktop email composer for developers and testers.")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show program's version number and exit")
    parser.add_argument("--config-dir", type=Path, help="where profiles and settings live")
    parser.add_argument("--data-dir", type=Path,
                        help="where drafts, the Sent log and the local inbox live")
    parser.add_argument("--no-inbox", action="store_true",
                        help="do not start the local test inbox")
    parser.add_argument("--inbox-port", type=_inbox_port, metavar="PORT",
                        help="the local test inbox's SMTP port (default 1025, as Mailpit; a "
                        "free port when it is taken; 0 for any free port)")
    parser.add_argument("--install-desktop", action="store_true",
                        help="add mailgui to your desktop menu (~/.local/share) and exit")
    parser.add_argument("--check-preview", action="store_true",
                        help="render a test message with the browser-engine preview, say "
                        "whether it works, and exit (1 when the simple preview stands in)")
    parser.add_argument("eml", nargs="?", type=Path, help="an .eml file to open as a draft")
    return parser.parse_args(argv)


def run_inbox_server(argv: list[str]) -> int:
    """``mailgui --run-inbox-server DIR [--host H] [--port P] [--ack]``: the local test inbox's
    server process instead of a window. It exists for the frozen app, whose ``sys.executable``
    is mailgui itself; from Python it is ``python -m mailgui.model.inbox_server --dir DIR``."""
    from mailgui.model.inbox import RUN_SERVER_OPTION
    from mailgui.model.inbox_server import main as serve

    if not argv or argv[0].startswith("-"):
        print(f"mailgui: {RUN_SERVER_OPTION} needs the inbox folder", file=sys.stderr)
        return 2
    return serve(["--dir", *argv])


def check_preview(app: Any) -> int:
    """``mailgui --check-preview``: render a small message with the browser-engine preview and
    say whether it works (0), or why the simple preview would stand in (1)."""
    from PySide6.QtCore import QTimer

    from mailgui.views.compose import HtmlPreview
    from mailgui.views.webpreview import WebPreview

    preview = WebPreview(fallback=HtmlPreview)
    preview.resize(400, 300)
    result = {"code": 1}

    def report(text: str) -> None:
        from PySide6.QtWebEngineCore import qWebEngineChromiumVersion

        ok = "preview check" in text
        print(f"mailgui: preview: browser engine, Chromium {qWebEngineChromiumVersion()}, "
              + ("renders" if ok else f"rendered {text!r}"), flush=True)
        result["code"] = 0 if ok else 1
        app.quit()

    def rendered(_ok: bool) -> None:
        preview.plain_text(report)

    def failed(reason: str) -> None:
        print(f"mailgui: preview: the browser engine could not start ({reason}); the simple "
              "preview stands in", flush=True)
        app.quit()

    def timeout() -> None:
        print("mailgui: preview: no render within 30 s", flush=True)
        app.quit()

    preview.rendered.connect(rendered)
    preview.engine_failed.connect(failed)
    preview.show_html("<p>mailgui preview check</p>", [])
    preview.start_engine()
    QTimer.singleShot(30_000, timeout)
    app.exec()
    return result["code"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0].startswith("--run-"):
        from mailgui.model.inbox import RUN_SERVER_OPTION

        if argv[0] == RUN_SERVER_OPTION:  # hidden: the inbox server process (no Qt at all)
            return run_inbox_server(argv[1:])
        from mailgui.model.send_process import RUN_SENDER_OPTION

        if argv[0] == RUN_SENDER_OPTION:  # hidden: the sender process of a frozen app
            from mailgui.model.send_process import serve

            return serve()
    args = parse_args(argv)
    if args.install_desktop:
        from mailgui.desktop import install_desktop

        try:
            written = install_desktop()
        except OSError as exc:
            print(f"mailgui: could not install the desktop entry: {exc}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path}")
        return 0
    try:
        import PySide6  # noqa: F401 - only to say plainly what is missing
    except ImportError:
        print("mailgui: the window needs PySide6, which is not installed: "
              "pip install 'mailcore[gui]'", file=sys.stderr)
        return 2
    problem = display_problem()
    if problem:
        print(f"mailgui: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mailgui.views.common import icon

    # Worker threads (sending, reading files, building previews) must hand the GIL back to
    # the GUI thread quickly, or every keystroke waits for them: Python's default is to ask a
    # running thread to let go only every 5 ms, and a busy worker then gets the GIL back
    # first again and again. One millisecond keeps the window responsive during a big send.
    sys.setswitchinterval(0.001)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("mailgui")
    app.setDesktopFileName("mailgui")
    app.setWindowIcon(icon("mailgui"))
    if args.check_preview:
        return check_preview(app)
    defaults = AppPaths.default()
    paths = AppPaths(args.config_dir or defaults.config_dir, args.data_dir or defaults.data_dir)
    # Two windows on one data folder would overwrite each other's draft: one at a time.
    lock, refusal = lock_data_dir(paths.data_dir)
    if refusal:
        print(f"mailgui: {refusal}", file=sys.stderr, flush=True)
        if app.platformName() not in ("offscreen", "minimal"):
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.warning(None, "mailgui", refusal)
        return 2
    # What the first frame shows is built now; the rest (the controllers behind it, the
    # worker pool, the keyring probe, the local inbox's process, mailcore) right after it.
    gui = MailGui(paths, start_inbox=not args.no_inbox, inbox_port=args.inbox_port,
                  staged=True)
    gui.show()

    def complete() -> None:
        from mailgui import __version__

        gui.complete()
        app.setApplicationVersion(__version__)
        _announce_when_ready(gui, inbox=not args.no_inbox)
        if args.eml:
            # at start: a draft brought back from the last session is kept, not replaced
            gui.controller.open_eml(str(args.eml), at_start=True)

    def import_then_complete() -> None:
        # the imports run on a thread while this one paints and takes keystrokes (it gets
        # the GIL back within the 1 ms switch interval); the controllers are built here after
        from mailgui.controllers.main import import_later_modules

        thread = import_later_modules()
        poll = QTimer(gui.window)
        poll.setInterval(5)

        def check() -> None:
            if not thread.is_alive():
                poll.stop()
                complete()

        poll.timeout.connect(check)
        poll.start()

    after_first_frame(gui.window, import_then_complete)
    probe = os.environ.get(START_PROBE_ENV)
    if probe:  # (after: the filter installed last sees the first paint first)
        _start_probe(gui, probe)
    # Ctrl+C and SIGTERM close the window cleanly (the draft is saved); a timer lets the
    # Python interpreter run its signal handlers while Qt's loop runs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: gui.window.force_close())
    tick = QTimer()
    tick.start(250)
    tick.timeout.connect(lambda: None)
    # Closing the window starts the quit without waiting (the draft and settings are written
    # on a worker); the loop ends once those writes are back, so a failure is still said.
    app.setQuitOnLastWindowClosed(False)
    gui.controller.quit_ready.connect(app.quit)
    app.aboutToQuit.connect(gui.shutdown)
    try:
        return app.exec()
    finally:
        gui.shutdown()  # idempotent
        # the window is gone: the writes, the workers and the inbox process end behind it,
        # and the draft is on disk before the lock is released
        gui.finish()
        if lock is not None:
            lock.unlock()
