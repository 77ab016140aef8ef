"""Cold start of the mailgui window under X, measured as a user meets it (issue 16, target 5).

For each round and each kind of user (a first-time user without any config; a returning user
with one SMTP profile selected, as ``gui_bench.py``'s ``prepare_dirs`` makes it), this script

* starts a fresh ``Xvfb`` on its own display (``:41`` + n, ``-nolisten tcp``, black root),
* spawns ``python -m mailgui`` as a user would: a throwaway ``HOME`` and XDG folders, the
  null keyring backend (nothing of the machine's keyring is touched), ``DISPLAY`` and
  ``QT_QPA_PLATFORM=xcb``, and takes the time just before the spawn as zero;
* **first paint**, seen from outside: an X client of its own (Xlib through ctypes) listens on
  the root window for the main window's ``MapNotify`` (no polling of the window list), then
  reads the window's pixels (``XGetImage`` of its top 80 rows every 2 ms) until they are
  no longer blank: the frame with the menu bar and toolbar drawn is on the screen. The app's
  own record of the moment its first frame was flushed (below) is printed beside it;
* **usable**: as soon as that frame is seen, ``xdotool type`` types an address; the time is
  when the To field's text equals what was typed. The keys go where X sends them: the window
  must have given the To field the focus itself (as it does at start), nothing is clicked.
  The field's text is read from inside the app through a bench-only hook:
  ``MAILGUI_START_PROBE=FD`` makes ``mailgui.app`` write ``paint T`` after its first frame
  and ``to T TEXT`` on each change of To to that file descriptor (T is ``time.monotonic()``,
  the same clock as here). Unset, the app does not even look for it beyond one
  ``os.environ.get``. Reading the field back from outside (the clipboard, the accessibility
  bus) would need keystrokes or a bus of its own and add latency of its own, so the hook
  tells exactly when Qt applied the last keystroke.

Then, untimed: one run under ``python -X importtime`` (the imports with the most cumulative
time) and one under ``cProfile`` from interpreter start to the first paint (the functions
with the most cumulative time, and modules by own time), for "where the time goes".

``--quick``: 2 rounds. Prints the RESULT line of bench/README.md last.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from userdirs import throwaway_user  # noqa: E402

PAINT_TARGET = 0.5
USABLE_TARGET = 0.8
TYPED = "ann@example.org"
FIRST_DISPLAY = 41
WAIT_S = 20.0  # for a window, a frame, the typed text
SCREEN = (1280, 800)
STRIP_ROWS = 80  # rows of the window read to see whether it is drawn (menu bar, toolbar)
SCRIPT_PROBE = "MAILGUI_START_PROBE"


# -- a tiny X client (Xlib through ctypes) -----------------------------------------------------

class XMapEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("event", ctypes.c_ulong), ("window", ctypes.c_ulong),
                ("override_redirect", ctypes.c_int)]


class XEvent(ctypes.Union):
    _fields_ = [("type", ctypes.c_int), ("xmap", XMapEvent), ("pad", ctypes.c_long * 24)]


class XImage(ctypes.Structure):
    pass


DESTROY = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(XImage))
XImage._fields_ = [  # noqa: SLF001 - ctypes' way of a self-referring struct
    ("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
    ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
    ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int),
    ("bitmap_pad", ctypes.c_int), ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
    ("bits_per_pixel", ctypes.c_int), ("red_mask", ctypes.c_ulong),
    ("green_mask", ctypes.c_ulong), ("blue_mask", ctypes.c_ulong),
    ("obdata", ctypes.c_void_p), ("create_image", ctypes.c_void_p),
    ("destroy_image", DESTROY)]


class XWindowAttributes(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("border_width", ctypes.c_int),
                ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
                ("root", ctypes.c_ulong), ("class_", ctypes.c_int),
                ("bit_gravity", ctypes.c_int), ("win_gravity", ctypes.c_int),
                ("backing_store", ctypes.c_int), ("backing_planes", ctypes.c_ulong),
                ("backing_pixel", ctypes.c_ulong), ("save_under", ctypes.c_int),
                ("colormap", ctypes.c_ulong), ("map_installed", ctypes.c_int),
                ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
                ("your_event_mask", ctypes.c_long), ("do_not_propagate_mask", ctypes.c_long),
                ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p)]


MAP_NOTIFY = 19
SUBSTRUCTURE_NOTIFY_MASK = 1 << 19
Z_PIXMAP = 2
ALL_PLANES = ctypes.c_ulong(-1).value


class XWatcher:
    """Connected to one display: sees top-level windows being mapped, reads their pixels."""

    def __init__(self, display: str) -> None:
        name = ctypes.util.find_library("X11")
        if not name:
            raise RuntimeError("libX11 is not installed")
        x = ctypes.CDLL(name)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XSelectInput.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_long]
        x.XPending.argtypes = [ctypes.c_void_p]
        x.XNextEvent.argtypes = [ctypes.c_void_p, ctypes.POINTER(XEvent)]
        x.XFlush.argtypes = [ctypes.c_void_p]
        x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x.XConnectionNumber.argtypes = [ctypes.c_void_p]
        x.XGetImage.restype = ctypes.POINTER(XImage)
        x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                                ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
        x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong,
                                           ctypes.POINTER(XWindowAttributes)]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        # a window that goes away while we read it is an X error: ignore, do not exit
        self._handler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(
            lambda _d, _e: 0)
        x.XSetErrorHandler(self._handler)
        self.x = x
        self.dpy = x.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open display {display}")
        self.root = x.XDefaultRootWindow(self.dpy)
        x.XSelectInput(self.dpy, self.root, SUBSTRUCTURE_NOTIFY_MASK)
        x.XSync(self.dpy, 0)
        self.fd = x.XConnectionNumber(self.dpy)

    def mapped_windows(self) -> list[int]:
        """Top-level windows mapped since the last call (not override-redirect: no menus)."""
        found = []
        event = XEvent()
        while self.x.XPending(self.dpy):
            self.x.XNextEvent(self.dpy, ctypes.byref(event))
            if event.type == MAP_NOTIFY and not event.xmap.override_redirect:
                found.append(event.xmap.window)
        return found

    def size(self, window: int) -> tuple[int, int]:
        attrs = XWindowAttributes()
        if not self.x.XGetWindowAttributes(self.dpy, window, ctypes.byref(attrs)):
            return 0, 0
        return attrs.width, attrs.height

    def drawn(self, window: int, width: int, rows: int = STRIP_ROWS) -> bool | None:
        """Whether the top ``rows`` of ``window`` show a drawn frame: mostly not black (the
        root is black, an unpainted window shows it or one fill colour) and text/icons in
        it (a dozen colours at least). None if the window cannot be read."""
        image = self.x.XGetImage(self.dpy, window, 0, 0, width, rows, ALL_PLANES, Z_PIXMAP)
        if not image:
            return None
        try:
            img = image.contents
            if img.bits_per_pixel != 32:
                return None
            raw = ctypes.string_at(img.data, img.bytes_per_line * img.height)
        finally:
            image.contents.destroy_image(image)
        pixels = memoryview(raw).cast("I")
        sample = pixels[::7]
        lit = sum(1 for p in sample if p & 0xFFFFFF)
        return lit > 0.6 * len(sample) and len(set(sample)) >= 12

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)


# -- one start -------------------------------------------------------------------------------

def start_xvfb(number: int) -> tuple[subprocess.Popen, str]:
    """A fresh Xvfb on ``:number``, or on the next free one of a few further up (another
    program may hold it); (its process, its display)."""
    problem = RuntimeError(f"no Xvfb started on :{number}")
    for candidate in (number, number + 20, number + 40):
        try:
            return _start_xvfb(candidate)
        except RuntimeError as exc:
            problem = exc
    raise problem


def _start_xvfb(number: int) -> tuple[subprocess.Popen, str]:
    read, write = os.pipe()
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments
        ["Xvfb", f":{number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten",
         "tcp", "-br", "-displayfd", str(write)],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    deadline = time.monotonic() + 10
    got = b""
    while time.monotonic() < deadline and not got.endswith(b"\n"):
        ready, _w, _x = select.select([read], [], [], 0.2)
        if ready:
            chunk = os.read(read, 64)
            if not chunk:
                break
            got += chunk
        if proc.poll() is not None:
            break
    os.close(read)
    if not got.strip():
        stop(proc)
        raise RuntimeError(f"Xvfb :{number} did not start (display taken?)")
    return proc, f":{got.decode().strip()}"


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


PYCACHE: Path | None = None  # set by main(): the byte code of mailgui and mailcore


def user_env(home: Path, display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAILCORE_", "MAILGUI_", "QT_", "WAYLAND"))
           and k != "PYTHONDONTWRITEBYTECODE"}
    if PYCACHE is not None:
        # an installed mailgui has its byte code (pip compiles it); a checkout run with
        # PYTHONDONTWRITEBYTECODE would compile every module from source at each start
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(throwaway_user(home))
    env.update({"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"})
    return env


def make_home(root: Path, returning: bool) -> Path:
    """A user's HOME; a returning user's has one SMTP profile, selected (as gui_bench.py's
    prepare_dirs), in the config folder mailgui finds through XDG_CONFIG_HOME."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=root))
    if returning:
        from mailgui.model.paths import AppPaths, atomic_write_json
        from mailgui.model.profiles import Profile, ProfileStore

        paths = AppPaths(home / ".config" / "mailgui", home / ".local" / "share" / "mailgui")
        ProfileStore(paths).upsert(Profile(
            "Benchmark sink", "smtp", id="bench-sink", host="127.0.0.1", port=2525,
            security="none", timeout=120, from_email="Bench <bench@example.com>"))
        atomic_write_json(paths.settings_file, {"target": "bench-sink"})
    return home


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system, all threads) process ``pid`` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(number: int, returning: bool, root: Path, shot: Path | None = None,
              watch: float = 0.0) -> dict:
    """Start mailgui once on a fresh display; the times are seconds from just before spawn.
    ``watch``: keep watching the display that long after the spawn (for a window re-made)."""
    xvfb, display = start_xvfb(number)
    result: dict[str, Any] = {"user": "returning" if returning else "first-time"}
    app = None
    watcher = None
    read_fd = write_fd = -1
    try:
        home = make_home(root, returning)
        env = user_env(home, display)
        watcher = XWatcher(display)
        read_fd, write_fd = os.pipe()
        env[SCRIPT_PROBE] = str(write_fd)
        t0 = time.monotonic()
        app = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "mailgui"], env=env, cwd=str(home), pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(write_fd)
        write_fd = -1
        lines = b""
        window = 0
        width = 0
        typed_at = None
        deadline = t0 + WAIT_S
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([read_fd, watcher.fd], [], [], 0.002)
            now = time.monotonic()
            if read_fd in ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                lines += chunk
                while b"\n" in lines:
                    line, lines = lines.split(b"\n", 1)
                    kind, _, rest = line.decode().partition(" ")
                    if kind == "paint" and "inside_paint" not in result:
                        result["inside_paint"] = float(rest) - t0
                        result["cpu_at_paint"] = cpu_seconds(app.pid)
                    elif kind == "to":
                        stamp, _, text = rest.partition(" ")
                        result["to_text"] = json.loads(text)
                        if json.loads(text) == TYPED and "usable" not in result:
                            result["usable"] = float(stamp) - t0
            for win in watcher.mapped_windows():
                w, h = watcher.size(win)
                if not window and w >= 600 and h >= 300:
                    window, width = win, w
                    result["mapped"] = now - t0
                elif window and win != window and w >= 600 and h >= 300:
                    # the main window's X window destroyed and made anew (Qt does that when
                    # a widget needing OpenGL, such as the browser engine's view, joins a
                    # window already shown): keys typed meanwhile are lost, the window blinks
                    result.setdefault("recreated", []).append(now - t0)
            if window and "paint" not in result:
                drawn = watcher.drawn(window, width)
                if drawn:
                    result["paint"] = time.monotonic() - t0
                    # the user sees the window and types at once: the keys go to the
                    # window with the keyboard focus, as X gives it (nothing is clicked)
                    typed_at = time.monotonic()
                    subprocess.Popen(  # noqa: S603
                        ["xdotool", "type", "--delay", "1", TYPED], env={**os.environ,
                                                                         "DISPLAY": display},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if "usable" in result and "inside_paint" in result and now - t0 >= watch:
                break
            if app.poll() is not None:
                result["error"] = f"mailgui exited ({app.returncode}): " + (
                    app.stderr.read().decode(errors="replace").strip()[-300:])
                break
        if typed_at is not None:
            result["typed_at"] = typed_at - t0
        seen = result.get("to_text")
        for key, what in (("paint", "no drawn window seen"), ("usable", "the typed text "
                          "never appeared in To (was it focused?"
                          + (f" it holds {seen!r})" if seen is not None else ")"))):
            if key not in result and "error" not in result:
                result["error"] = f"{what} within {WAIT_S:.0f} s"
        if shot is not None and "paint" in result:
            subprocess.run(["import", "-display", display, "-window", "root", str(shot)],  # noqa: S603,S607
                           check=False, capture_output=True, timeout=30)
    finally:
        if app is not None:
            app.send_signal(signal.SIGTERM)  # the window closes cleanly, as on logout
            stop(app, grace=20)
            with contextlib.suppress(ValueError, OSError):
                app.stderr.close()
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        if watcher is not None:
            watcher.close()
        stop(xvfb)
    return result


# -- where the time goes -------------------------------------------------------------------

def importtime_summary(env: dict[str, str], home: Path, top: int = 8) -> list[str]:
    """The imports done before the first frame (mailgui's main() run until it has painted),
    by cumulative time."""
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.run([sys.executable, "-X", "importtime",  # noqa: S603
                               "-c", FIRST_FRAME_CHILD],
                              env={**env, SCRIPT_PROBE: str(write_fd)}, pass_fds=(write_fd,),
                              cwd=str(home), capture_output=True, text=True, timeout=120)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    if not rows:
        return ["importtime: no output"]
    total = sum(c for c, depth, _n in rows if depth == 0)
    # the biggest subtrees at the first two levels, each named once
    picked = sorted((r for r in rows if r[1] <= 1), reverse=True)[:top]
    return [f"imports before the first frame {total / 1e6:.3f} s (python -X importtime, "
            "cumulative, the biggest): "
            + ", ".join(f"{name} {cum / 1e3:.0f} ms" for cum, _d, name in picked)]


# The child for "where the time goes": mailgui's main() from interpreter start to its first
# frame and no further (the bench's own imports stay out of it: it is a -c script), under
# cProfile when given a file to write the stats to. The controllers built after the first
# frame are not built (their imports would blur the picture of what comes before it).
FIRST_FRAME_CHILD = r"""
import sys
out = sys.argv[1] if len(sys.argv) > 1 else ""
import cProfile
prof = cProfile.Profile()
if out:
    prof.enable()
import mailgui.app as appmod
real_emit = appmod._probe_emit
def emit(fd, line):
    if line.startswith("paint "):
        if out:
            prof.disable()
            prof.dump_stats(out)
        real_emit(fd, line)
        sys.stderr.flush()
        import os
        os._exit(0)  # no quitting: that would build (and import) the rest first
    real_emit(fd, line)
appmod._probe_emit = emit
appmod.after_first_frame = lambda window, fn, fallback_ms=0: None
appmod.main([])
"""


def profile_summary(env: dict[str, str], home: Path, top: int = 8) -> list[str]:
    import pstats

    stats_file = home / "start.prof"
    read_fd, write_fd = os.pipe()
    try:
        subprocess.run([sys.executable, "-c", FIRST_FRAME_CHILD, str(stats_file)],  # noqa: S603
                       env={**env, SCRIPT_PROBE: str(write_fd)},
                       pass_fds=(write_fd,), cwd=str(home), capture_output=True, timeout=120)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    if not stats_file.exists():
        return ["cProfile: no profile written"]
    stats = pstats.Stats(str(stats_file))
    entries = stats.stats  # type: ignore[attr-defined]
    total = max((ct for (_cc, _nc, _tt, ct, _callers) in entries.values()), default=0.0)
    by_module: dict[str, float] = {}
    for (filename, _line, _func), (_cc, _nc, tt, _ct, _callers) in entries.items():
        by_module[short_module(filename)] = by_module.get(short_module(filename), 0.0) + tt
    own = sorted(by_module.items(), key=lambda kv: -kv[1])[:top]
    ours = sorted(((ct, key) for key, (_cc, _nc, _tt, ct, _c) in entries.items()
                   if "mailgui" in key[0] and key[2] not in ("<module>",)),
                  reverse=True)[:top]
    return [
        f"cProfile of main() to the first frame ({total:.3f} s under the profiler), own time "
        "by module: " + ", ".join(f"{m} {t / total:.0%}" for m, t in own if total),
        "mailgui functions by cumulative time: " + ", ".join(
            f"{short_module(k[0])}.{k[2]} {ct * 1e3:.0f} ms" for ct, k in ours),
    ]


def short_module(filename: str) -> str:
    if filename == "~":
        return "built-ins (Qt, C)"
    path = Path(filename)
    parts = path.with_suffix("").parts
    for anchor in ("mailgui", "mailcore", "PySide6", "shiboken6"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return ".".join(parts[i:])
    if "site-packages" in parts:
        i = parts.index("site-packages")
        return parts[i + 1] if i + 1 < len(parts) else path.stem
    return path.stem


# -- the run ---------------------------------------------------------------------------------

def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-profile", action="store_true", help="skip importtime/cProfile")
    parser.add_argument("--watch", type=float, default=None,
                        help="seconds after the spawn to keep watching whether the main "
                        "window is re-made (default 3; 0 with --quick)")
    parser.add_argument("--shots", type=Path, help="save a screenshot of each first round here")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    if args.watch is None:
        args.watch = 0.0 if args.quick else 3.0
    out: dict[str, Any] = {"available": True, "reason": "", "rows": [], "notes": [],
                           "details": [], "log": []}
    missing = [tool for tool in ("Xvfb", "xdotool") if not shutil.which(tool)]
    if missing or not ctypes.util.find_library("X11"):
        out.update(available=False, reason="not installed: " + ", ".join(
            missing or ["libX11"]) + " (apt-get install xvfb xdotool)")
        print("RESULT " + json.dumps(out))
        return
    global PYCACHE  # noqa: PLW0603 - one setting for the whole run
    root = Path(tempfile.mkdtemp(prefix="mailgui-start-"))
    PYCACHE = root / "pycache"
    runs: dict[str, list[dict]] = {"first-time": [], "returning": []}
    try:
        # untimed: writes the byte code (as installing does) and warms the page cache
        try:
            warm = one_start(FIRST_DISPLAY, False, root)
        except RuntimeError as exc:
            warm = {"error": str(exc)}
        if "error" in warm:
            out["log"].append(f"warm-up start: {warm['error']}")
        for i in range(rounds):
            for returning in (False, True):  # interleaved: drift hits both alike
                shot = None
                if args.shots is not None and i == 0:
                    args.shots.mkdir(parents=True, exist_ok=True)
                    shot = args.shots / f"start-{'returning' if returning else 'first'}.png"
                try:
                    r = one_start(FIRST_DISPLAY + i, returning, root, shot, args.watch)
                except RuntimeError as exc:
                    r = {"user": "returning" if returning else "first-time", "error": str(exc)}
                runs[r["user"]].append(r)
                line = (f"round {i + 1} {r['user']}: window mapped {fmt(r.get('mapped'))}, "
                        f"drawn {fmt(r.get('paint'))} (app's own record "
                        f"{fmt(r.get('inside_paint'))}), To takes typing "
                        f"{fmt(r.get('usable'))}" + (f" — {r['error']}" if "error" in r else ""))
                out["log"].append(line)
                print(line, file=sys.stderr, flush=True)
        where: list[str] = []
        if not args.no_profile:
            home = make_home(root, returning=False)
            try:
                xvfb, display = start_xvfb(FIRST_DISPLAY)
            except RuntimeError as exc:
                where.append(f"no profile: {exc}")
            else:
                try:
                    env = user_env(home, display)
                    where += importtime_summary(env, home)
                    where += profile_summary(env, make_home(root, returning=False))
                except (OSError, subprocess.SubprocessError) as exc:
                    where.append(f"no profile: {exc}")
                finally:
                    stop(xvfb)
        for user, label in (("first-time", "first-time user (no config)"),
                            ("returning", "returning user (one SMTP profile)")):
            good = [r for r in runs[user] if "error" not in r]
            errors = [r["error"] for r in runs[user] if "error" in r]
            for key, what, target in (("paint", "first paint", PAINT_TARGET),
                                      ("usable", "usable (typing in To works)", USABLE_TARGET)):
                values = [r[key] for r in good if key in r]
                title = f"5. cold start under Xvfb, {label}: {what}"
                if not values:
                    out["rows"].append({"title": title, "cells": {
                        "mailcore": "not measured: " + (errors[0] if errors else "?")},
                        "target": f"≤ {target} s", "met": None, "where": where})
                    continue
                med, worst = statistics.median(values), max(values)
                out["rows"].append({
                    "title": title,
                    "cells": {"mailgui": f"{med:.3f} s median, {worst:.3f} s worst"},
                    "target": f"≤ {target} s", "met": worst <= target and not errors,
                    "where": where})
                out["details"].append({
                    "benchmark": f"cold start {user}: {what}", "impl": "mailgui",
                    "runs": len(values), "best": f"{min(values):.3f} s",
                    "median": f"{med:.3f} s", "all": ", ".join(f"{v:.3f}" for v in values)})
            cpu = [r["cpu_at_paint"] for r in good if r.get("cpu_at_paint") is not None]
            inside = [r["inside_paint"] for r in good if "inside_paint" in r]
            typing = [r["usable"] - r["typed_at"] for r in good if "typed_at" in r]
            if inside:
                out["notes"].append(
                    f"{user}: the app's own record of its first flushed frame, median "
                    f"{statistics.median(inside):.3f} s; from the first keystroke sent to the "
                    f"whole address in To, median {statistics.median(typing):.3f} s "
                    f"({len(TYPED)} keys, xdotool --delay 1); CPU time the process had used "
                    f"by its first frame, median {statistics.median(cpu):.2f} s (all threads; "
                    "wall time beyond it is mostly waiting for a core on a busy machine)"
                    if cpu else "")
            out["notes"].extend(f"{user}: {e}" for e in errors)
            remade = [r["recreated"][0] for r in good if r.get("recreated")]
            if good and args.watch and not remade:
                out["notes"].append(
                    f"{user}: the main window's X window stayed the same in all {len(good)} "
                    f"starts (watched for {args.watch:g} s; the browser engine's view is born "
                    "in a native window of its own, which alone is made anew)")
            if remade:
                out["notes"].append(
                    f"{user}: the main window's X window was destroyed and made anew in "
                    f"{len(remade)} of {len(good)} starts, at {statistics.median(remade):.2f} s "
                    f"(median; watched for {args.watch:g} s): Qt does that when the browser "
                    "engine's view (OpenGL) is first created in a window already shown; keys "
                    "typed at that moment are lost and the window blinks")
        out["notes"].append(
            f"{rounds} rounds after one untimed warm-up start (it writes the byte code, as "
            "installing does, and fills the page cache), first-time and returning user "
            "interleaved, each on a fresh Xvfb (no window manager) with a fresh HOME; times "
            "from just before spawning "
            "`python -m mailgui`; first paint is seen from outside (MapNotify, then the "
            "window's pixels), usable is the To field's text equal to what xdotool typed "
            f"(the app's MAILGUI_START_PROBE hook). Load average at the end: "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine: noisy).")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("RESULT " + json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
