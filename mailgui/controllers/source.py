"""The MIME source pane: a debounced preview job on every change, copy, save as .eml."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from mailgui.controllers import folders
from mailgui.jobs import JobRunner, preview_job
from mailgui.model.draft import Draft
from mailgui.model.errors import describe_error
from mailgui.model.profiles import Profile
from mailgui.model.source import Preview, serialized_draft, write_source
from mailgui.views.common import BlockSignals, human_size
from mailgui.views.panes import SourceView

DEBOUNCE_MS = 350
COPY_LIMIT = 16 * 1024 * 1024
SHOW_ALL_LIMIT = 8 * 1024 * 1024


def full_source(draft: Draft, profile: Profile | None) -> bytes:
    """The whole message, for the clipboard (refuses very big messages)."""
    data = serialized_draft(draft, profile)
    if data.size > COPY_LIMIT:
        raise ValueError(f"The message is {human_size(data.size)}: too big for the clipboard. "
                         "Save it as an .eml file instead.")
    return data.getvalue()


class SourceController(QObject):
    updated = Signal(object)  # the Preview shown
    status = Signal(str)

    def __init__(self, view: SourceView, runner: JobRunner, draft: Callable[[], Draft],
                 profile: Callable[[], Profile | None], visible: Callable[[], bool]) -> None:
        super().__init__(view)
        self.view = view
        self.runner = runner
        self.draft = draft
        self.profile = profile
        self.visible = visible
        self.generation = 0
        self.shown_generation = 0
        self.running = False
        self.stale = True
        self.last: Preview | None = None
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.refresh)
        view.show_all.toggled.connect(lambda _on: self.refresh())
        view.copy.clicked.connect(self.copy)
        view.save.clicked.connect(self.save_as)

    def draft_changed(self) -> None:
        self.stale = True
        if self.visible():
            self.timer.start()

    def pane_shown(self) -> None:
        if self.stale:
            self.refresh()

    def refresh_now(self) -> None:
        """Preview the draft now (not after the debounce) if the pane is shown: a send has
        just dated the message, and this shows the bytes that go out."""
        self.stale = True
        if self.visible():
            self.refresh()

    def refresh(self) -> None:
        """Start a preview job for the current draft (results of older jobs are dropped)."""
        self.timer.stop()
        if self.running:
            # one job at a time; the newest state is previewed when this one ends
            self.timer.start()
            return
        self.generation += 1
        self.stale = False
        self.running = True
        fold = not self.view.show_all.isChecked()
        if not fold and self.last is not None and self.last.size > SHOW_ALL_LIMIT:
            fold = True
            text = (f"The message is {human_size(self.last.size)}: too big to show in full. "
                    "Long parts stay folded; use Save as .eml to see it all.")
            self.status.emit(text)
            show_all = self.view.show_all
            with BlockSignals(show_all):  # the box says what the pane shows
                show_all.setChecked(False)
            show_all.setToolTip(text)
        self.view.status.setText("Updating\u2026" if self.last else "Building the source\u2026")
        self.runner.run(preview_job, self.generation, self.draft().copy(), self.profile(), fold,
                        on_done=self._done)

    def _done(self, result: tuple[int, Preview]) -> None:
        self.running = False
        generation, result_preview = result
        if generation < self.shown_generation:
            return
        self.shown_generation = generation
        v = self.view
        if result_preview.error:
            v.error.setText(f"Can't build the message yet: {result_preview.error}")
            v.error.show()
            # Copy and Save build the message anew: nothing to give while it can't be built
            v.copy.setEnabled(False)
            v.save.setEnabled(False)
            v.status.setText("The source below is from before the last change."
                             if v.text.toPlainText() else "")
            return
        v.error.hide()
        v.copy.setEnabled(True)
        v.save.setEnabled(True)
        bar = v.text.verticalScrollBar()
        position = bar.value()
        v.text.setPlainText(result_preview.text)
        bar.setValue(min(position, bar.maximum()))
        folded = ""
        if result_preview.folded_parts:
            n = result_preview.folded_parts
            folded = f" \u00b7 {n} long part{'s' if n != 1 else ''} folded"
        v.status.setText(
            f"{human_size(result_preview.size)} ({result_preview.size:,} bytes){folded} "
            f"\u00b7 updated {time.strftime('%H:%M:%S')}. This is exactly what Send sends "
            "(it sets the Date to the time of sending)."
        )
        self.last = result_preview
        self.updated.emit(result_preview)

    # -- copy / save ----------------------------------------------------------------------
    def copy(self) -> None:
        self.runner.run(full_source, self.draft().copy(), self.profile(),
                        on_done=self._copied, on_error=self._failed)

    def _copied(self, data: bytes) -> None:
        QGuiApplication.clipboard().setText(data.decode("utf-8", "replace"))
        self.status.emit(f"Copied the source ({human_size(len(data))}) to the clipboard.")

    def ask_save_path(self) -> str:
        subject = self.draft().subject.strip() or "message"
        safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in subject)[:60]
        path, _filter = QFileDialog.getSaveFileName(
            self.view, "Save message as .eml", folders.start_at(f"{safe}.eml"),
            "Email messages (*.eml)"
        )
        folders.remember(path)
        return path

    def save_as(self) -> None:
        path = self.ask_save_path()
        if not path:
            return
        target = Path(path)
        if target.suffix.lower() != ".eml":
            target = target.with_suffix(target.suffix + ".eml") if target.suffix else (
                target.with_suffix(".eml"))
        draft = self.draft().copy()
        # a saved draft keeps its Bcc (opened again, the field is back); sent bytes never do
        note = " It keeps the Bcc header, which the sent message never carries." if (
            draft.bcc.strip()) else ""
        self.runner.run(write_source, draft, self.profile(), target,
                        on_done=lambda size: self.status.emit(
                            f"Saved {target.name} ({human_size(size)}).{note}"),
                        on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.status.emit(describe_error(exc, self.profile()).sentence)
