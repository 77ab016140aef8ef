"""The installable artefacts: wheel and sdist, a clean install, the PyInstaller bundle.

These build real artefacts and start the real programs (offscreen), so they take
a minute or two; they run in CI like every other test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Building and installing take minutes, not the suite's default 120 s.
pytestmark = pytest.mark.timeout(1200)


def pip_env() -> dict[str, str]:
    """Share the pip cache that scripts/bootstrap.sh filled, so a clean venv
    installs from it instead of downloading Qt again."""
    env = dict(os.environ)
    cache = os.environ.get("MAILCORE_PIP_CACHE")
    if cache:
        env["PIP_CACHE_DIR"] = cache
    return env


def check_preview(command: list[str], env: dict[str, str]) -> None:
    """The installed mailgui's HTML previews render with the browser engine (Qt WebEngine
    ships in the install, with what it needs to start)."""
    env = {**env, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([*command, "--check-preview"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "preview: browser engine, Chromium" in proc.stdout and "renders" in proc.stdout


def start_gui(command: list[str], env: dict[str, str], tmp: Path) -> str:
    """Start mailgui offscreen with throwaway folders; return what it printed
    once it said it was ready (then stop it)."""
    args = [*command, "--config-dir", str(tmp / "config"), "--data-dir", str(tmp / "data")]
    env = {**env, "QT_QPA_PLATFORM": "offscreen", "MAILGUI_EXIT_WHEN_READY": "1"}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "mailgui: ready" in output, output
    # the local test inbox is a child process of its own: it must start from the install too
    assert "local test inbox on 127.0.0.1:" in output, output
    assert "Traceback" not in output, output
    return output


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["bash", str(ROOT / "packaging" / "build_dist.sh"), str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    return out


def test_explicit_package_list_is_complete():
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["mailcore*", "mailgui*"]))
    assert found <= listed, f"add to pyproject.toml: {sorted(found - listed)}"


def test_wheel_and_sdist_contents(dist):
    (wheel,) = dist.glob("mailcore-*.whl")
    (sdist,) = dist.glob("mailcore-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "mailcore/__init__.py", "mailcore/backends/smtp.py", "mailgui/app.py",
        "mailgui/resources/mailgui.desktop", "mailgui/resources/icons/mailgui.svg",
        "mailgui/resources/io.github.mailcore.mailgui.metainfo.xml",
    ):
        assert needed in names, needed
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    ).decode()
    assert "mailcore = mailcore.cli:main" in entry_points
    assert "mailgui = mailgui.app:main" in entry_points
    assert "mailcore.profiles" in entry_points
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("resources/icons/mailgui.svg") for m in members)
    assert any(m.endswith("README.md") for m in members)


def _tracked_copy(dest: Path) -> Path:
    """The tracked files of this checkout, as a source archive would hold them: no .git."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes((ROOT / name).read_bytes())
            (dest / name).chmod((ROOT / name).stat().st_mode)
    return dest


def test_a_source_tree_without_git_builds_the_same_wheel(dist, tmp_path):
    tree = _tracked_copy(tmp_path / "tree")
    (tree / "mailgui" / "stray_notes.txt").write_text("not in the manifest")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(tree / "packaging" / "build_dist.sh"), str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**pip_env(), "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    (ours,) = dist.glob("mailcore-*.whl")
    (theirs,) = out.glob("mailcore-*.whl")
    assert sorted(zipfile.ZipFile(theirs).namelist()) == sorted(zipfile.ZipFile(ours).namelist())
    assert out.joinpath(next(dist.glob("mailcore-*.tar.gz")).name).is_file()


def test_a_broken_git_checkout_stops_the_build_with_git_s_words(tmp_path):
    tree = _tracked_copy(tmp_path / "tree")
    (tree / ".git").write_text("gitdir: /nonexistent/worktree\n")  # a moved worktree
    proc = subprocess.run(["bash", str(tree / "packaging" / "build_dist.sh"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**pip_env(), "PYTHON": sys.executable})
    assert proc.returncode != 0
    assert "git ls-files failed" in proc.stderr and "not a git repository" in proc.stderr
    assert not list(tmp_path.glob("mailcore-*.whl"))


def test_wheel_installs_into_a_clean_venv(dist, tmp_path):
    (wheel,) = dist.glob("mailcore-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"{wheel}[gui]"], check=True, env=pip_env(), timeout=900,
                   capture_output=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    dump = subprocess.run(
        [str(venv / "bin" / "mailcore"), "--to", "someone@example.com", "--subject", "hi",
         "--body", "hello", "--dump"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert "Subject: hi" in dump.stdout and "To: someone@example.com" in dump.stdout
    start_gui([str(venv / "bin" / "mailgui")], env, tmp_path)
    check_preview([str(venv / "bin" / "mailgui")], env)


def test_pyinstaller_bundle_runs_without_python_packages(tmp_path):
    out = tmp_path / "bundle"
    subprocess.run(["bash", str(ROOT / "packaging" / "build_bundle.sh"), str(out)],
                   check=True, capture_output=True, text=True, timeout=900, env=pip_env())
    bundle = out / "mailgui"
    assert (bundle / "mailgui.desktop").is_file()
    # No Python, no site-packages, no venv on the PATH: only the bundle.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
    cli = subprocess.run(
        [str(bundle / "mailcore"), "--to", "a@example.com", "--subject", "bundled",
         "--body", "x", "--backend", "console"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert "Subject: bundled" in cli.stdout
    start_gui([str(bundle / "mailgui")], env, tmp_path)
    check_preview([str(bundle / "mailgui")], env)
    assert (bundle / "licenses" / "mailcore" / "LICENSE").is_file()
    assert (bundle / "licenses" / "PySide6_Essentials" / "LGPL-3").is_file()
    assert (bundle / "licenses" / "PySide6_Addons" / "LGPL-3").is_file()  # Qt WebEngine
    # install.sh: the bundle in ~/.local/opt, the commands in ~/.local/bin, the menu entry
    home = tmp_path / "home"
    install = subprocess.run(["bash", str(bundle / "install.sh")], env=env, capture_output=True,
                             text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    linked = home / ".local" / "bin" / "mailcore"
    again = subprocess.run([str(linked), "--to", "a@example.com", "--body", "x", "--dump"],
                           env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "To: a@example.com" in again.stdout
    entry = (home / ".local" / "share" / "applications" / "mailgui.desktop").read_text()
    assert f"Exec={home / '.local' / 'opt' / 'mailgui' / 'mailgui'} %f" in entry
    assert (home / ".local" / "share" / "icons" / "hicolor" / "scalable" / "apps"
            / "mailgui.svg").is_file()
    # installing again replaces the bundle (no nested copy)
    assert subprocess.run(["bash", str(bundle / "install.sh")], env=env, capture_output=True,
                          timeout=300).returncode == 0
    assert not (home / ".local" / "opt" / "mailgui" / "mailgui" / "mailgui").exists()
