"""Passwords from the GUI: the keyring check at start (on the worker pool) and the password
prompt, opened without a nested event loop. What to use and what was refused is decided by the
model's ``PasswordBroker`` (``self.broker``), which the send and editor controllers share."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from mailgui.jobs import JobRunner
from mailgui.model.passwords import PasswordBroker
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringStatus
from mailgui.views.profiles import PasswordAnswer, PasswordDialog


class PasswordsController(QObject):
    keyring_checked = Signal(object)  # KeyringStatus, once the check at start is done

    def __init__(self, broker: PasswordBroker, runner: JobRunner, parent_widget: QWidget) -> None:
        super().__init__(parent_widget)
        self.broker = broker
        self.runner = runner
        self.parent_widget = parent_widget
        self.prompt: PasswordDialog | None = None  # the open prompt, if one is

    def probe_keyring(self) -> None:
        """Ask the keyring (on the worker: it may block on D-Bus) whether it can be used."""
        self.runner.run(self.broker.secrets.status, on_done=self._probed,
                        on_error=lambda exc: self._probed(KeyringStatus(
                            False, "none", f"the keyring could not be checked: {exc}")))

    def _probed(self, status: KeyringStatus) -> None:
        self.broker.keyring_known(status)
        self.keyring_checked.emit(status)  # (the editor stores the passwords typed meanwhile)

    def ask(self, profile: Profile, reason: str, answered: Callable[[str | None], None], *,
            parent: QWidget | None = None) -> None:
        """Ask the person for the password of ``profile`` and return at once; ``answered`` gets
        it (None if they cancel) when they answer, or before this returns if a test answers
        the prompt at once. Remembered for the session if they tick the box. The prompt is
        modal to ``parent`` (the main window if None)."""
        done = False

        def got(answer: PasswordAnswer | None) -> None:
            nonlocal done
            done = True
            self.prompt = None
            answered(self.broker.answered(profile, answer))

        reason = self.broker.prompt_reason(profile, reason)
        dialog = PasswordDialog.request(parent or self.parent_widget, profile.name, reason, got)
        if not done:
            self.prompt = dialog
