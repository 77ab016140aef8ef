"""mailgui --install-desktop: the menu entry, icon and metainfo of the current user."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mailgui.desktop import install_desktop


def test_install_desktop_writes_a_valid_entry_with_an_absolute_command(tmp_path: Path) -> None:
    data = tmp_path / "share"
    written = install_desktop(data, ["/opt/my apps/mailgui"])
    entry, icon, metainfo = written
    assert entry == data / "applications" / "mailgui.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(entry)
    desktop = parser["Desktop Entry"]
    assert desktop["Exec"] == '"/opt/my apps/mailgui" %f'  # quoted: it holds a space
    assert desktop["Icon"] == "mailgui" and "message/rfc822" in desktop["MimeType"]
    assert icon.read_bytes().startswith(b"<svg") or b"<svg" in icon.read_bytes()[:200]
    assert b"<component" in metainfo.read_bytes()
    validate = shutil.which("desktop-file-validate")
    assert validate, "desktop-file-validate comes with desktop-file-utils (scripts/bootstrap.sh)"
    result = subprocess.run([validate, str(entry)], capture_output=True, text=True)
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout


def test_the_command_line_installs_for_the_current_user(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "share"), HOME=str(tmp_path))
    env.pop("DISPLAY", None)  # needs no display
    proc = subprocess.run([sys.executable, "-m", "mailgui", "--install-desktop"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entry = tmp_path / "share" / "applications" / "mailgui.desktop"
    assert f"wrote {entry}" in proc.stdout
    exec_line = next(line for line in entry.read_text().splitlines()
                     if line.startswith("Exec="))
    program = exec_line.removeprefix("Exec=").split(" ")[0]
    assert Path(program).is_absolute() and Path(program).exists()
