"""Helpers for the window tests: fill the compose form, send and wait, quit and wait."""

from __future__ import annotations

from typing import Any

__all__ = ["fill", "quit_window", "send"]


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


def quit_window(gui: Any, qtbot: Any, timeout: int = 10000) -> None:
    """Close the window as the person does, and wait until the quit's writes (draft,
    settings) are back; the inbox process may still be ending (``gui.finish`` waits)."""
    with qtbot.waitSignal(gui.controller.quit_ready, timeout=timeout):
        gui.window.close()
