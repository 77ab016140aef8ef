"""Helpers for the window tests: fill the compose form, send and wait, quit and wait, answer
the password dialog, start a real mailgui process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mailgui.model.paths import AppPaths

__all__ = ["ROOT", "answer_password_dialog", "fill", "mailgui_command", "offscreen_env",
           "preview_text", "quit_window", "send", "wait_preview_text"]

ROOT = Path(__file__).resolve().parents[2]  # the checkout: where ``python -m mailgui`` runs


def fill(gui: Any, *, to: str = "Bob <bob@example.com>", subject: str = "Hello",
         body: str = "Hi Bob", html: str = "") -> None:
    """Type a message into ``gui``'s compose form (To, Subject, text, and HTML if given)."""
    view = gui.window.compose
    view.address_edits["to"].setText(to)
    view.subject.setText(subject)
    view.body.setPlainText(body)
    if html:
        view.html.setPlainText(html)


def send(gui: Any, qtbot: Any, timeout: int = 15000) -> Any:
    """Press Send and return the outcome the window reports."""
    with qtbot.waitSignal(gui.controller.sending.finished, timeout=timeout) as blocker:
        gui.window.act_send.trigger()
    return blocker.args[0]


def preview_text(qtbot: Any, preview: Any, timeout: int = 20000) -> str:
    """The text an HTML preview (``mailgui.views.webpreview.WebPreview``) shows, once it has
    rendered the newest HTML it was given (the browser engine answers asynchronously)."""
    preview.start_engine()  # (a preview on a tab not shown yet starts when it is shown)
    qtbot.waitUntil(lambda: preview.engine_ready or preview.fallback is not None,
                    timeout=timeout)
    qtbot.waitUntil(lambda: not preview.pending, timeout=timeout)
    answers: list[str] = []
    preview.plain_text(answers.append)
    qtbot.waitUntil(lambda: bool(answers), timeout=timeout)
    return answers[0]


def wait_preview_text(qtbot: Any, preview: Any, needle: str, timeout: int = 20000) -> str:
    """Wait until ``preview`` shows ``needle`` (the preview follows the typing on a pause);
    return its text."""
    seen = [""]

    def shows() -> bool:
        seen[0] = preview_text(qtbot, preview, timeout)
        return needle in seen[0]

    qtbot.waitUntil(shows, timeout=timeout)
    return seen[0]


def quit_window(gui: Any, qtbot: Any, timeout: int = 10000) -> None:
    """Close the window as the person does, and wait until the quit's writes (draft,
    settings) are back; the inbox process may still be ending (``gui.finish`` waits)."""
    with qtbot.waitSignal(gui.controller.quit_ready, timeout=timeout):
        gui.window.close()


def answer_password_dialog(monkeypatch: Any, answer: str | None, seen: list) -> None:
    """Answer the password dialog with ``answer`` (None: Cancel), not remembered; the
    profile names it was opened for are appended to ``seen``."""
    def request(parent: Any, name: str, reason: str, answered: Any) -> None:
        seen.append(name)
        answered(None if answer is None else (answer, False))

    monkeypatch.setattr("mailgui.views.profiles.PasswordDialog.request", request)


def mailgui_command(paths: AppPaths, *args: str) -> list[str]:
    """A real mailgui process on ``paths``, without the inbox (run it with ``offscreen_env``)."""
    return [sys.executable, "-m", "mailgui", "--config-dir", str(paths.config_dir),
            "--data-dir", str(paths.data_dir), "--no-inbox", *args]


def offscreen_env(**extra: str) -> dict[str, str]:
    """This environment with Qt offscreen, plus ``extra``."""
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env
