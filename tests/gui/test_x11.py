"""The window on a real X server (Xvfb), where Qt's platform key bindings apply: the offscreen
platform has none of them, so what they take from the window's shortcuts shows only here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]

# The app's window, shown and active on the X server: what each script starts with.
PRELUDE = """
import sys, tempfile
from pathlib import Path
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

app = QApplication([])
from mailgui.app import MailGui
from mailgui.model.paths import AppPaths

gui = MailGui(AppPaths.under(Path(tempfile.mkdtemp())), start_inbox=False)
gui.show()
QTest.qWaitForWindowExposed(gui.window)
gui.window.activateWindow()
assert QTest.qWaitForWindowActive(gui.window)
w = gui.window
"""


def run_on_xvfb(tmp_path: Path, body: str, timeout: int = 90) -> list[str]:
    """PRELUDE and ``body`` in a fresh interpreter on a fresh Xvfb (xcb); its RESULT lines."""
    xvfb_run = shutil.which("xvfb-run")
    assert xvfb_run, "xvfb-run is installed by scripts/bootstrap.sh"
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT),
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    proc = subprocess.run([xvfb_run, "-a", "-s", "-screen 0 1280x800x24", sys.executable,
                           str(script)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line.split(" ", 1)[1] for line in proc.stdout.splitlines()
            if line.startswith("RESULT ")]


CTRL_U = """
    for field in ("to", "subject"):
        w.show_pane(w.inbox)
        edit = w.compose.subject if field == "subject" else w.compose.address_edits[field]
        edit.setFocus()
        QTest.keyClicks(edit, "bob@example.com")
        QTest.keyClick(edit, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
        QTest.qWait(50)
        print("RESULT", field, app.platformName(), repr(edit.text()),
              w.side.currentWidget() is w.source, flush=True)
    gui.shutdown()
"""


def test_ctrl_u_shows_the_source_instead_of_emptying_the_field(tmp_path: Path) -> None:
    results = run_on_xvfb(tmp_path, CTRL_U)
    assert results == ["to xcb 'bob@example.com' True", "subject xcb 'bob@example.com' True"]


ENGINE = """
    edit = w.compose.address_edits["to"]
    edit.setFocus()
    QTest.keyClicks(edit, "bob@")
    before = int(w.winId())
    preview = w.inbox.rendered
    preview.start_engine()  # what the inbox's warm-up (or the first message) does
    for _ in range(40):  # the engine's view is made, laid out and shown
        QTest.qWait(50)
    QTest.keyClicks(edit, "example.com")
    QTest.qWait(50)
    print("RESULT", app.platformName(), preview.engine_ready, int(w.winId()) == before,
          repr(edit.text()), edit.hasFocus(), flush=True)
    gui.shutdown()
"""


def test_the_preview_engine_starting_leaves_the_main_window_as_it_is(tmp_path: Path) -> None:
    """The browser engine's view is composited with OpenGL; put into the shown main window, it
    made Qt destroy and make anew the main window's X window (it blinked, keys typed then were
    lost). Born in a native window of its own, only that one is made anew."""
    results = run_on_xvfb(tmp_path, ENGINE, timeout=120)
    assert results == ["xcb True True 'bob@example.com' True"]
