"""Profile saves run on the worker's file lane: the window never waits for them, a save that
fails is shown (the banner, the status bar, the editor's line) rather than a traceback, and
the edits stay in the editor, in the list and in "Send via" until a save works."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from mailgui.model.paths import AppPaths
from mailgui.model.profiles import ProfileStore


def test_a_failed_profile_save_is_shown_and_keeps_the_edits(make_gui, qtbot,  # noqa: ANN001
                                                            paths: AppPaths) -> None:
    gui = make_gui(start_inbox=False)
    c, w = gui.controller, gui.window
    defaults: list[str] = []
    c.runner.error.connect(defaults.append)  # the save's own error path says it, not this
    d = c.profiles.open_dialog()
    qtbot.mouseClick(d.new, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(paths.profiles_file.is_file, timeout=10000)
    # a folder where the file goes: it can't be replaced (permissions would not stop root)
    paths.profiles_file.unlink()
    paths.profiles_file.mkdir()
    d.name.setText("Staging")
    d.host.setText("smtp.staging.example")
    qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "could not be saved" in d.test_result.text(), timeout=10000)
    said = d.test_result.text()
    assert said.startswith(f"The profiles could not be saved to {paths.profiles_file} (")
    assert said.endswith("Your changes are kept until mailgui quits: press Save to try again.")
    assert w.banner.isVisible() and w.banner.kind == "error" and w.banner.text.text() == said
    assert w.statusBar().currentMessage() == said
    assert defaults == []
    # nothing is lost: the form, the list and "Send via" show the edits
    assert (d.name.text(), d.host.text()) == ("Staging", "smtp.staging.example")
    assert [p.name for p in c.profile_store.user_profiles()] == ["Staging"]
    assert d.list.item(d.list.currentRow()).text().startswith("Staging\n")
    assert w.target.findText("Staging") >= 0
    # once the file can be written, Save writes them
    paths.profiles_file.rmdir()
    qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(paths.profiles_file.is_file, timeout=10000)
    saved = json.loads(paths.profiles_file.read_text())["profiles"]
    assert [(p["name"], p["host"]) for p in saved] == [("Staging", "smtp.staging.example")]
    qtbot.waitUntil(
        lambda: w.statusBar().currentMessage() == "Saved the profile \u201cStaging\u201d.")
    assert [p.host for p in ProfileStore(paths).user_profiles()] == ["smtp.staging.example"]


def test_deleting_a_profile_is_written_too(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                          monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    for name in ("Keep", "Drop"):
        qtbot.mouseClick(d.new, Qt.MouseButton.LeftButton)
        d.name.setText(name)
        d.host.setText(f"{name.lower()}.example.com")
        qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    monkeypatch.setattr(p, "confirm_delete", lambda profile: profile.name == "Drop")
    qtbot.mouseClick(d.delete, Qt.MouseButton.LeftButton)
    assert [x.name for x in gui.controller.profile_store.user_profiles()] == ["Keep"]
    qtbot.waitUntil(lambda: [x.name for x in ProfileStore(paths).user_profiles()] == ["Keep"],
                    timeout=10000)
