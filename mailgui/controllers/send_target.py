"""The "Send via" switch: which profile the next message goes to, the line beside it saying where
that is, and the lock that keeps it while a message is being sent."""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox

from mailgui.model.profiles import Profile, ProfileStore
from mailgui.views.common import BlockSignals, Role


class SendTargetController(QObject):
    target_changed = Signal(object)  # the Profile messages now go to
    locked_changed = Signal(bool)  # True while a message is being sent

    def __init__(self, combo: QComboBox, detail: Callable[[str], None],
                 store: ProfileStore) -> None:
        super().__init__(combo)
        self.combo = combo
        self.detail = detail
        self.store = store
        self.inbox_port = 0
        self.inbox_off = False  # mailgui --no-inbox
        self.locked = False
        combo.currentIndexChanged.connect(self._changed)
        self.fill_combo()

    def fill_combo(self, select_id: str | None = None) -> None:
        """List the profiles: the local inbox, the user's, then the test backends. Keeps the
        current one (or selects ``select_id``) if it is still there, else the first."""
        current = select_id or self.combo.currentData()
        profiles = self.store.all()
        builtin_tail = [p for p in profiles[1:] if p.builtin]
        user = [p for p in profiles if not p.builtin]
        with BlockSignals(self.combo):
            self.combo.clear()
            self._add(profiles[0])
            if user:
                self.combo.insertSeparator(self.combo.count())
                for p in user:
                    self._add(p)
            self.combo.insertSeparator(self.combo.count())
            for p in builtin_tail:
                self._add(p)
            index = self.combo.findData(current) if current else -1
            self.combo.setCurrentIndex(index if index >= 0 else 0)
        self._changed()

    def _add(self, profile: Profile) -> None:
        self.combo.addItem(profile.name, profile.id)
        self.combo.setItemData(self.combo.count() - 1, profile.describe(), Role.TOOLTIP)

    def select(self, profile_id: str) -> bool:
        index = self.combo.findData(profile_id)
        if index < 0:
            return False
        self.combo.setCurrentIndex(index)
        return True

    def lock(self, locked: bool) -> None:
        """While a message is being sent, where it goes can't change ("Send via", and the
        editor's Use button, which listens to ``locked_changed``)."""
        self.locked = locked
        self.combo.setEnabled(not locked)
        self.locked_changed.emit(locked)

    def current(self) -> Profile | None:
        """The profile the next message goes to (the inbox with its live port)."""
        profile = self.store.get(self.combo.currentData() or "")
        if profile is None:
            return None
        if profile.kind == "inbox":
            profile = copy.copy(profile)
            profile.port = self.inbox_port
        return profile

    def current_queue(self) -> Profile | None:
        """The profile the next message goes to if it is a queue (the Queue panel's)."""
        profile = self.current()
        return profile if profile is not None and profile.kind == "queue" else None

    def _changed(self, *_args: object) -> None:
        profile = self.current()
        if profile is None:
            return
        if profile.kind == "inbox":
            text = (f"127.0.0.1:{self.inbox_port}, nothing leaves this computer"
                    if self.inbox_port else
                    "switched off (--no-inbox)" if self.inbox_off else "starting\u2026")
        else:
            text = profile.describe()
        self.detail(text)
        self.target_changed.emit(profile)

    def inbox_started(self, port: int) -> None:
        self.inbox_port = port
        self._changed()
