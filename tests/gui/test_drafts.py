"""The draft is never lost and never replaced silently: File > Open and ``mailgui FILE.eml``
ask or keep the old draft, and a draft (or the settings) that can't be written says so, in the
status bar while writing and in a warning when quitting.

Real parts: real files in tmp_path, real mailgui processes. A write is made to fail the way a
file system makes it fail, whoever runs the tests (root included): a folder stands where the
file must go. Only the question and warning dialogs are answered.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailgui.model.draft import Draft, DraftStore
from mailgui.model.paths import AppPaths
from tests.support.gui import ROOT, fill, mailgui_command, offscreen_env, quit_window


def _eml(tmp_path: Path, subject: str) -> Path:
    path = tmp_path / f"{subject.replace(' ', '-')}.eml"
    path.write_bytes(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: " + subject.encode()
                     + b"\r\n\r\nhi\r\n")
    return path


def _block(path: Path) -> None:
    """Make writing ``path`` fail: a folder (not empty) where the file must go."""
    path.unlink(missing_ok=True)
    (path / "in the way").mkdir(parents=True)


# -- opening an .eml never replaces a draft silently -------------------------------------------


def test_file_open_asks_before_replacing_a_draft(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                tmp_path: Path, monkeypatch) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    fill(gui, subject="My important unsent letter", body="Three hours of writing")
    c.save_draft()
    qtbot.waitUntil(lambda: c.runner.busy == 0)
    answers = [False, True]
    asked: list = []
    monkeypatch.setattr(c, "confirm_replace", lambda name: asked.append(name) or answers.pop(0))
    eml = _eml(tmp_path, "someone else")
    monkeypatch.setattr(c, "ask_open_path", lambda: str(eml))
    gui.window.act_open.trigger()  # File > Open, "No"
    assert asked == ["someone-else.eml"]
    qtbot.waitUntil(lambda: c.runner.busy == 0)
    assert c.compose.draft.subject == "My important unsent letter"
    assert DraftStore(paths).load().body == "Three hours of writing"
    gui.window.act_open.trigger()  # again, "Yes"
    qtbot.waitUntil(lambda: c.compose.draft.subject == "someone else")
    qtbot.waitUntil(lambda: DraftStore(paths).load().subject == "someone else")
    assert len(asked) == 2
    # an empty draft is replaced without a question
    c.compose.load(Draft())
    c.open_eml(str(_eml(tmp_path, "third")))
    qtbot.waitUntil(lambda: c.compose.draft.subject == "third")
    assert len(asked) == 2


def test_opening_an_eml_at_start_keeps_the_recovered_draft(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                          tmp_path: Path, monkeypatch) -> None:
    DraftStore(paths).save(Draft(to="x@example.com", subject="crash-recovered", body="precious"))
    gui = make_gui(start_inbox=False)
    c = gui.controller
    assert c.compose.draft.subject == "crash-recovered"
    monkeypatch.setattr(c, "confirm_replace", lambda name: pytest.fail("asked at start"))
    c.open_eml(str(_eml(tmp_path, "opened")), at_start=True)  # what `mailgui x.eml` does
    qtbot.waitUntil(lambda: c.compose.draft.subject == "opened")
    qtbot.waitUntil(lambda: DraftStore(paths).load().subject == "opened")
    kept = paths.drafts_dir / "kept-draft-1.json"
    recovered = DraftStore.load_file(kept)
    assert (recovered.subject, recovered.body) == ("crash-recovered", "precious")
    assert str(kept) in gui.window.compose.banner.text.text()
    assert str(kept) in gui.window.statusBar().currentMessage()
    # File > Open brings it back (after asking, the current draft is not empty)
    monkeypatch.setattr(c, "confirm_replace", lambda name: True)
    c.open_eml(str(kept))
    qtbot.waitUntil(lambda: c.compose.draft.subject == "crash-recovered")
    assert gui.window.compose.body.toPlainText() == "precious"
    # a second keep never overwrites the first
    assert DraftStore(paths).save_copy(Draft(subject="two")).name == "kept-draft-2.json"


def test_command_line_eml_keeps_the_recovered_draft(paths: AppPaths, tmp_path: Path) -> None:
    DraftStore(paths).save(Draft(to="x@example.com", subject="crash-recovered", body="precious"))
    eml = _eml(tmp_path, "opened")
    done = subprocess.run(mailgui_command(paths, str(eml)), cwd=ROOT, capture_output=True,
                          text=True, env=offscreen_env(MAILGUI_EXIT_WHEN_READY="1"), timeout=120)
    assert done.returncode == 0, done.stderr
    current = DraftStore(paths).load()
    kept = [DraftStore.load_file(p) for p in paths.drafts_dir.glob("kept-draft-*.json")]
    # It quits as soon as the window is up: the .eml may or may not be loaded by then, but
    # the recovered draft is in one of the two places, never lost.
    if current.subject == "opened":
        assert [(k.subject, k.body) for k in kept] == [("crash-recovered", "precious")]
    else:
        assert (current.subject, current.body) == ("crash-recovered", "precious")


# -- a write that fails says so ----------------------------------------------------------------


def test_an_autosave_that_fails_says_so_and_tries_again(make_gui, qtbot,  # noqa: ANN001
                                                        paths: AppPaths) -> None:
    gui = make_gui(start_inbox=False)
    c, status = gui.controller, gui.window.statusBar()
    store = c.draft_store
    _block(store.path)
    fill(gui, subject="Not on disk yet")
    assert c.compose.autosave_now(force=True)  # what the timer does every few seconds
    qtbot.waitUntil(lambda: status.currentMessage().startswith("Could not save the draft: "))
    assert str(store.path) in status.currentMessage()
    assert c.compose.dirty  # so the next autosave tries again
    shutil.rmtree(store.path)  # the obstacle is gone
    c.save_draft()  # Ctrl+S
    qtbot.waitUntil(lambda: status.currentMessage() == f"Draft saved to {store.path}.")
    assert store.load().subject == "Not on disk yet"
    assert not c.compose.dirty


def test_a_draft_or_settings_that_cannot_be_saved_at_quit_are_said(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, monkeypatch) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    fill(gui, subject="Nowhere to go")
    _block(c.draft_store.path)
    _block(paths.settings_file)
    warned: list[str] = []
    monkeypatch.setattr(c, "warn", warned.append)
    quit_window(gui, qtbot)  # the loop still ends: the person has been told
    (text,) = warned
    assert "Could not save the draft: " in text and str(c.draft_store.path) in text
    assert "Could not save the settings: " in text and str(paths.settings_file) in text
    assert gui.finish(15)
