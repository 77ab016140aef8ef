"""The compose form <-> the Draft: field edits, address checks, headers, attachments, HTML
preview with blocked remote images, autosave.

Nothing here waits on the GUI thread: the HTML's remote URLs are found on the worker pool (the
preview renders when they come back, a newer text dropping an older scan), attachments are
looked at there, and the draft is written on the runner's file lane with an error path."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QImage
from PySide6.QtWidgets import QFileDialog, QLabel, QTableWidgetItem, QTreeWidgetItem

from mailgui.controllers import folders
from mailgui.jobs import (
    AttachmentInfo,
    JobRunner,
    Task,
    attachment_info,
    failure_sentence,
    fetch_images,
)
from mailgui.model.addresses import check_addresses, smtputf8_warning
from mailgui.model.draft import (
    LINE_BREAKS,
    AttachmentRef,
    Draft,
    DraftStore,
    clean_one_line,
    new_date,
    unsendable_at,
    unsendable_problem,
)
from mailgui.model.message import ONE_SENDER, check_header, default_from, line_end_change
from mailgui.model.profiles import Profile
from mailgui.model.remote import remote_urls
from mailgui.views import style
from mailgui.views.common import BlockSignals, human_size
from mailgui.views.compose import ADDRESS_FIELDS, ComposeView, OneLineEdit, show_problem

AUTOSAVE_MS = 3000
# The HTML preview is rendered on the GUI thread (a widget): re-rendering a big HTML text at
# every pause in typing would freeze the window for as long each time. The pause before a
# render grows with the last render's time, and past LIVE_PREVIEW_MS the preview waits to be
# asked (Refresh preview).
PREVIEW_DELAY_MS = 250
# Address lists longer than this are checked when typing pauses (CHECK_DELAY_MS), not at
# every key: 1,000 addresses take about 0.2 s to check.
LONG_LIST_CHARS = 2000
CHECK_DELAY_MS = 300
LIVE_PREVIEW_MS = 120


def fix_text(text: str) -> str:
    """What the link under a field holding unsendable characters offers to do to them."""
    bad = [text[i] for i in unsendable_at(text)]
    if all(ch in LINE_BREAKS for ch in bad):
        return "Replace it with a space" if len(bad) == 1 else "Replace them with spaces"
    if not any(ch in LINE_BREAKS for ch in bad):
        return "Remove it" if len(bad) == 1 else "Remove them"
    return "Remove them (line breaks become spaces)"


def _line_end_changes(paths: list[str], given: dict[str, str]) -> dict[str, int]:
    """Worker side: the bytes each text attachment gains on the wire (CRLF line ends); a
    file that can't be read is left to ``attachment_info`` to say so."""
    out = {}
    for path in paths:
        try:
            out[path] = line_end_change(path, given.get(path, ""))
        except OSError:
            out[path] = 0
    return out


def line_end_sentence(gained: int) -> str:
    """Why a text attachment arrives larger than the file."""
    return (f"Mail carries text with CRLF line ends: {gained:,} line end"
            f"{'s' if gained != 1 else ''} of this file (LF only) become CRLF, so it arrives "
            f"{human_size(gained)} larger, with Windows line ends. To send its bytes unchanged, "
            "attach it as application/octet-stream.")


class ComposeController(QObject):
    changed = Signal()  # the draft's content changed
    status = Signal(str)  # a status-bar message

    def __init__(self, view: ComposeView, runner: JobRunner, store: DraftStore,
                 profile: Callable[[], Profile | None]) -> None:
        super().__init__(view)
        self.view = view
        self.runner = runner
        self.store = store
        self.profile = profile
        self.draft = Draft()
        self.info: dict[str, AttachmentInfo] = {}
        self.line_ends: dict[str, int] = {}  # path -> bytes its line ends gain on the wire
        self._loading = False
        self._generation = 0
        self._saved_fingerprint = ""
        self.autosave = QTimer(self)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(self.autosave_now)
        self.autosave.start()
        self.html_timer = QTimer(self)
        self.html_timer.setSingleShot(True)
        self.html_timer.setInterval(PREVIEW_DELAY_MS)
        self.html_timer.timeout.connect(self._render_html)
        self.preview_ms = 0.0  # how long the last HTML preview took to render
        self.preview_live = True
        self.html_generation = 0  # the HTML scan whose result is awaited (older ones: dropped)
        self.shown_generation = 0  # the one the preview shows
        self._pending_checks: set[str] = set()
        self.check_timer = QTimer(self)
        self.check_timer.setSingleShot(True)
        self.check_timer.setInterval(CHECK_DELAY_MS)
        self.check_timer.timeout.connect(self._check_pending)

        v = view
        for key, _label in ADDRESS_FIELDS:
            v.address_edits[key].textChanged.connect(
                lambda text, k=key: self._address_edited(k, text)
            )
            v.address_errors[key].linkActivated.connect(
                lambda _link, k=key: self._clean_edit(v.address_edits[k]))
        v.subject.textChanged.connect(self._subject_edited)
        v.subject_error.linkActivated.connect(lambda _link: self._clean_edit(v.subject))
        v.header_problem.linkActivated.connect(lambda _link: self.clean_headers())
        v.body.textChanged.connect(lambda: self._set("body", v.body.toPlainText()))
        v.html.textChanged.connect(self._html_edited)
        v.headers.itemChanged.connect(self._headers_edited)
        v.add_header.clicked.connect(self.add_header_row)
        v.remove_header.clicked.connect(self.remove_header_rows)
        v.headers_delete.triggered.connect(self.remove_header_rows)
        v.attachments_delete.triggered.connect(self.remove_selected_attachments)
        v.add_attachment.clicked.connect(self.choose_attachments)
        v.remove_attachment.clicked.connect(self.remove_selected_attachments)
        v.files_dropped.connect(self.add_attachments)
        v.html_preview.blocked_changed.connect(self._blocked_changed)
        v.load_remote.clicked.connect(self.load_remote_images)
        v.refresh_preview.clicked.connect(self._render_html)
        self._refresh_attachments()

    # -- loading a draft into the form -------------------------------------------------------
    def load(self, draft: Draft, *, saved: bool = True, keep_shown: bool = False) -> None:
        """Show ``draft``. ``keep_shown``: a field that already shows its text is left as it
        is, with its cursor and undo history (at a staged start the first frame showed the
        draft's fields, and what was typed since is in the draft)."""
        self._loading = True
        try:
            self.draft = draft
            self._profile_domain(self.profile())
            v = self.view
            for key, _label in ADDRESS_FIELDS:
                if not keep_shown or v.address_edits[key].text() != getattr(draft, key):
                    v.address_edits[key].setText(getattr(draft, key))
            if not keep_shown or v.subject.text() != draft.subject:
                v.subject.setText(draft.subject)
            if not keep_shown or v.body.toPlainText() != draft.body:
                v.body.setPlainText(draft.body)
            if not keep_shown or v.html.toPlainText() != draft.html:
                v.html.setPlainText(draft.html)
            v.tabs.setCurrentWidget(v.text_page)  # a message opens on its text, never on HTML
            with BlockSignals(v.headers):
                v.headers.setRowCount(0)
                for name, value in draft.headers:
                    self._append_header_row(name, value)
        finally:
            self._loading = False
        for key, _label in ADDRESS_FIELDS:
            self._check_field(key)
        self._check_subject()
        self._check_headers()
        self._render_html()
        self.info = {}
        self.line_ends = {}
        self._refresh_attachments()
        self.refresh_attachment_info()
        self._saved_fingerprint = draft.fingerprint() if saved else ""
        self.changed.emit()

    def profile_changed(self, profile: Profile | None) -> None:
        sender = default_from(profile)
        if sender and profile is not None and profile.from_email:
            hint = f"{sender}  (the profile's default From)"
        elif sender:
            hint = f"{sender}  (used when this is empty)"
        else:
            hint = "Your address: required, the profile has no default From"
        self.view.from_edit.setPlaceholderText(hint)
        self._profile_domain(profile)
        if profile is not None and self.draft.profile_id != profile.id:
            self.draft.profile_id = profile.id
            self._changed()
        self._check_field("from_email")

    def _profile_domain(self, profile: Profile | None) -> None:
        """The draft's Message-ID takes the profile's domain while From is empty (its default
        From, else its DKIM domain), before the preview shows the ID."""
        if profile is not None:
            domain = default_from(profile) or getattr(profile, "dkim_domain", "") or ""
            self.draft.use_profile_domain(domain)  # a no-op when it has it

    # -- edits ------------------------------------------------------------------------------
    def _changed(self) -> None:
        if not self._loading:
            self.changed.emit()

    def _set(self, name: str, value: str) -> None:
        if self._loading:
            return
        setattr(self.draft, name, value)
        self._changed()

    def _address_edited(self, key: str, text: str) -> None:
        self._set(key, text)
        if len(text) > LONG_LIST_CHARS:
            # a list of hundreds of addresses: checked once typing pauses, not per key
            self._pending_checks.add(key)
            self.check_timer.start()
        else:
            self._pending_checks.discard(key)
            self._check_field(key)

    def _check_pending(self) -> None:
        for key in sorted(self._pending_checks):
            self._check_field(key)
        self._pending_checks.clear()

    def _subject_edited(self, text: str) -> None:
        self._set("subject", text)
        self._check_subject()

    def _check_subject(self) -> None:
        self._show_characters(self.view.subject, self.view.subject_error, "Subject")

    def _show_characters(self, edit: OneLineEdit, label: QLabel, name: str) -> bool:
        """Show what is wrong with the characters of a one-line field under it (a line
        break or a control character that came in by code, a drop or a paste): marked,
        with the reason and a link that fixes it. False if nothing is wrong."""
        text = edit.text()
        reason = unsendable_problem(text)
        if reason is None:
            edit.mark([])
            show_problem(label, "")
            edit.setToolTip("")
            return False
        sentence = f"{name} {reason}."
        edit.mark([(i, i + 1) for i in unsendable_at(text)])
        show_problem(label, sentence, fix_text(text))
        edit.setToolTip(sentence)
        return True

    def _clean_edit(self, edit: OneLineEdit) -> None:
        """The link under a field: line breaks become spaces, control characters go (one
        undoable edit, so Ctrl+Z brings them back)."""
        text = edit.text()
        cleaned = clean_one_line(text)
        if cleaned != text:
            edit.selectAll()
            edit.insert(cleaned)
            edit.setFocus()

    def _check_field(self, key: str) -> None:
        edit = self.view.address_edits[key]
        label = self.view.address_errors[key]
        if self._show_characters(edit, label, dict(ADDRESS_FIELDS)[key]):
            return
        checks = check_addresses(edit.text())
        bad = [c for c in checks if not c.ok]
        if key == "from_email" and len(checks) > 1 and not bad:
            # From names one sender: the second address on is marked
            bad = [dataclasses.replace(c, reason=ONE_SENDER) for c in checks[1:]]
        edit.mark([(c.start, c.end) for c in bad])
        text = "; ".join(f"\u201c{c.text}\u201d: {c.reason}" for c in bad)
        show_problem(label, text)
        edit.setToolTip(text)
        # an address that needs a server with SMTPUTF8: a note, not a problem
        show_problem(self.view.address_warnings[key], smtputf8_warning(edit.text()))

    def _html_edited(self) -> None:
        self._set("html", self.view.html.toPlainText())
        if self.preview_live:
            self.html_timer.start()
        else:
            self.view.stale_label.setText(
                f"This HTML takes {self.preview_ms / 1000:.1f} s to preview, so the preview "
                "is not updated as you type.")
            self.view.stale_bar.show()

    def _render_html(self) -> None:
        """Preview the HTML: its remote URLs are found on the worker, and the text is rendered
        when they come back, unless the HTML changed meanwhile (a newer scan is awaited)."""
        self.html_timer.stop()
        self.html_generation += 1
        generation, html = self.html_generation, self.draft.html
        if not html:
            self._show_html(generation, html, [])
            return
        self.runner.run(remote_urls, html,
                        on_done=lambda urls: self._show_html(generation, html, urls),
                        on_error=lambda exc: self._scan_failed(generation, html, exc))

    @property
    def html_pending(self) -> bool:
        """True while the preview waits for the newest HTML's scan."""
        return self.shown_generation != self.html_generation

    def _scan_failed(self, generation: int, html: str, exc: BaseException) -> None:
        # remote images stay blocked all the same (the preview blocks what it is asked for)
        self.status.emit(failure_sentence("look for remote images in the HTML", exc))
        self._show_html(generation, html, [])

    def _show_html(self, generation: int, html: str, urls: list[str]) -> None:
        if not shiboken6.isValid(self.html_timer):
            return  # the scan finished after the window closed
        if generation != self.html_generation:
            return  # the HTML changed meanwhile: the newer scan's result renders
        self.shown_generation = generation
        started = time.perf_counter()
        self.view.html_preview.show_html(html, urls, same_message=True)
        self.preview_ms = (time.perf_counter() - started) * 1000
        self.preview_live = self.preview_ms <= LIVE_PREVIEW_MS
        self.html_timer.setInterval(int(min(2000, max(PREVIEW_DELAY_MS, 4 * self.preview_ms))))
        self.view.stale_bar.hide()

    def _blocked_changed(self, count: int) -> None:
        v = self.view
        if count:
            v.remote_label.setText(
                f"{count} remote image{'s' if count != 1 else ''} blocked for your privacy."
            )
            v.remote_bar.show()
        else:
            v.remote_bar.hide()

    def load_remote_images(self) -> None:
        preview = self.view.html_preview
        urls = sorted(preview.blocked)
        if not urls:
            return
        if preview.fallback is None:
            # the browser engine loads them itself, for this HTML only (its interceptor lets
            # them through now): nothing is fetched here
            preview.allow_remote()
            return
        self.view.load_remote.setEnabled(False)
        self.view.remote_label.setText(f"Loading {len(urls)} remote image(s)\u2026")
        self.runner.run(fetch_images, urls, on_done=self._images_loaded,
                        on_error=self._images_failed)

    def _images_failed(self, exc: BaseException) -> None:
        self.view.load_remote.setEnabled(True)
        self.view.remote_label.setText(failure_sentence("load the remote images", exc))

    def _images_loaded(self, images: dict[str, bytes]) -> None:
        # the simple preview only (the browser engine loads remote images itself)
        owner = self.view.html_preview
        preview = owner.fallback
        if preview is None:
            return
        for url, data in images.items():
            image = QImage.fromData(data)
            if not image.isNull():
                preview.add_image(url, image)
        self.view.load_remote.setEnabled(True)
        missing = len(preview.blocked)
        owner.allow_remote()  # renders again, with the images now at hand
        if missing:
            self.view.remote_label.setText(f"{missing} remote image(s) could not be loaded.")
            self.view.remote_bar.show()
        else:
            self.view.remote_bar.hide()

    # -- headers -----------------------------------------------------------------------------
    def _append_header_row(self, name: str, value: str) -> None:
        table = self.view.headers
        row = table.rowCount()
        table.insertRow(row)
        table.setItem(row, 0, QTableWidgetItem(name))
        table.setItem(row, 1, QTableWidgetItem(value))

    def add_header_row(self) -> None:
        table = self.view.headers
        self._append_header_row("X-", "")
        table.setCurrentCell(table.rowCount() - 1, 0)
        table.editItem(table.item(table.rowCount() - 1, 0))
        self._headers_edited()

    def remove_header_rows(self) -> None:
        table = self.view.headers
        rows = sorted({i.row() for i in table.selectedIndexes()} or
                      ({table.currentRow()} if table.currentRow() >= 0 else set()), reverse=True)
        for row in rows:
            table.removeRow(row)
        self._headers_edited()

    def _headers_edited(self, *_args: object) -> None:
        if self._loading:
            return
        table = self.view.headers
        headers = []
        for row in range(table.rowCount()):
            name = table.item(row, 0).text() if table.item(row, 0) else ""
            value = table.item(row, 1).text() if table.item(row, 1) else ""
            headers.append((name.strip(), value))
        self.draft.headers = headers
        self._check_headers()
        self._changed()

    def clean_headers(self) -> None:
        """The link under the headers: line breaks become spaces, control characters go."""
        table = self.view.headers
        for row in range(table.rowCount()):
            for col in range(table.columnCount()):
                item = table.item(row, col)
                if item is not None and clean_one_line(item.text()) != item.text():
                    item.setText(clean_one_line(item.text()))

    @staticmethod
    def _header_characters(row: int, name: str, value: str) -> tuple[str, str] | None:
        """A line break or control character in a header's name or value: the sentence
        and the link's text, or None."""
        for part, text in (("name", name), ("value", value)):
            reason = unsendable_problem(text)
            if reason:
                which = clean_one_line(name) or f"row {row + 1}"
                return f"The {part} of header {which} {reason}.", fix_text(name + value)
        return None

    def _check_headers(self) -> None:
        table = self.view.headers
        problems: list[tuple[str, str]] = []  # (sentence, what its link does, or "")
        with BlockSignals(table):
            for row in range(table.rowCount()):
                name_item, value_item = table.item(row, 0), table.item(row, 1)
                name = name_item.text().strip() if name_item else ""
                value = value_item.text() if value_item else ""
                problem = self._header_characters(row, name, value)
                if problem is None and (name or value):
                    reason = check_header(name, value)
                    problem = (reason, "") if reason else None
                brush = QBrush(QColor(style.FIELD_PROBLEM)) if problem else QBrush()
                for item in (name_item, value_item):
                    if item is not None:
                        item.setForeground(brush)
                        item.setToolTip(problem[0] if problem else "")
                if problem:
                    problems.append(problem)
        show_problem(self.view.header_problem, *(problems[0] if problems else ("", "")))
        index = self.view.tabs.indexOf(self.view.headers.parentWidget())
        count = len([h for h in self.draft.headers if h[0]])
        # the tab says so too: a restored draft's header problem is on a tab not shown
        parts = [str(count)] if count else []
        if problems:
            parts.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}")
        self.view.tabs.setTabText(index, f"Headers ({', '.join(parts)})" if parts
                                  else "Headers")

    # -- attachments ----------------------------------------------------------------------
    def choose_attachments(self) -> None:
        files, _filter = QFileDialog.getOpenFileNames(self.view, "Attach files",
                                                      folders.start_at())
        folders.remember(*files)
        if files:
            self.add_attachments(files)

    def add_attachments(self, paths: list[str]) -> None:
        known = {a.path for a in self.draft.attachments}
        added = 0
        for path in paths:
            path = os.path.abspath(path)
            if path not in known:
                self.draft.attachments.append(AttachmentRef(path))
                known.add(path)
                added += 1
        if added:
            self._refresh_attachments()
            self.refresh_attachment_info()
            self._changed()
            self.status.emit(f"Attached {added} file{'s' if added != 1 else ''}.")

    def remove_selected_attachments(self) -> None:
        tree = self.view.attachments
        selected = {tree.indexOfTopLevelItem(item) for item in tree.selectedItems()}
        if not selected and tree.currentItem() is not None:
            selected = {tree.indexOfTopLevelItem(tree.currentItem())}
        if not selected:
            return
        self.draft.attachments = [a for i, a in enumerate(self.draft.attachments)
                                  if i not in selected]
        self._refresh_attachments()
        self._changed()

    def refresh_attachment_info(self) -> None:
        paths = [a.path for a in self.draft.attachments]
        if paths:
            given = {a.path: a.mimetype for a in self.draft.attachments if a.mimetype}
            self.runner.run(attachment_info, paths, given, on_done=self._info_loaded,
                            what="look at the attached files")
            self.runner.run(_line_end_changes, paths, given, on_done=self._line_ends_loaded,
                            what="look at the line ends of the attached text files")

    def _line_ends_loaded(self, changes: dict[str, int]) -> None:
        if changes != {p: n for p, n in self.line_ends.items() if p in changes}:
            self.line_ends.update(changes)
            self._refresh_attachments()

    def _info_loaded(self, infos: list[AttachmentInfo]) -> None:
        changed = False
        for info in infos:
            changed |= self.info.get(info.path) != info
            self.info[info.path] = info
        if changed:  # (rebuilding the list would lose the selection for nothing)
            self._refresh_attachments()

    def _refresh_attachments(self) -> None:
        tree = self.view.attachments
        tree.clear()
        total = 0
        problems = 0
        for ref in self.draft.attachments:
            info = self.info.get(ref.path)
            item = QTreeWidgetItem([
                ref.name,
                human_size(info.size) if info and not info.problem else "",
                (info.mimetype if info else ref.mimetype) or "\u2026",
                (info.problem if info and info.problem else "ok") if info else "checking\u2026",
            ])
            item.setToolTip(0, ref.path)
            gained = self.line_ends.get(ref.path, 0)
            if info and not info.problem and gained:
                item.setText(3, "ok, line ends become CRLF")
                item.setToolTip(3, line_end_sentence(gained))
            if info and info.problem:
                problems += 1
                for col in range(4):
                    item.setForeground(col, QBrush(QColor(style.FIELD_PROBLEM)))
            elif info:
                total += info.size
            item.setData(0, Qt.ItemDataRole.UserRole, ref.path)
            tree.addTopLevelItem(item)
        n = len(self.draft.attachments)
        text = "Attachments"
        if n:
            text = f"Attachments ({n}, {human_size(total)})"
        self.view.attachments_label.setText(text)
        changing = sum(1 for ref in self.draft.attachments if self.line_ends.get(ref.path))
        self.view.attachments_hint.setText(
            f"{problems} file(s) can't be read" if problems
            else (f"{changing} text file{'s' if changing != 1 else ''}: LF line ends become "
                  "CRLF on the wire") if changing
            else "Drop files here, or use Attach\u2026"
        )
        self.view.attachments_hint.setStyleSheet(
            style.problem_label() if problems else style.muted_label())
        self.view.remove_attachment.setEnabled(bool(n))

    # -- saving ----------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.draft.fingerprint() != self._saved_fingerprint

    def autosave_now(self, force: bool = False) -> bool:
        """Save in the background if something changed; True if a save was started."""
        return self.save(force=force) is not None

    def save(self, *, force: bool = True, on_done: Callable[[object], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None) -> Task | None:
        """Write a snapshot of the draft on the runner's file lane (if it changed, or
        ``force``); None if there was nothing to write. A failure is said in the status bar
        (then ``on_error``) and the next autosave tries again."""
        fingerprint = self.draft.fingerprint()
        if not force and fingerprint == self._saved_fingerprint:
            return None
        self._generation += 1
        self._saved_fingerprint = fingerprint

        def failed(exc: BaseException) -> None:
            self._save_failed(exc)
            if on_error is not None:
                on_error(exc)

        return self.runner.write(self.store.save, self.draft.copy(), self._generation,
                                 on_done=on_done, on_error=failed)

    def _save_failed(self, exc: BaseException) -> None:
        self._saved_fingerprint = ""
        self.status.emit(failure_sentence("save the draft", exc))

    def discard_files(self, old: Draft) -> None:
        """``old`` was replaced by the current draft and is gone (not kept in a file): the
        copies of attachments made when it was opened from an .eml go with it, on the file
        lane."""
        folder = self.store.attachments_dir(old.id)
        if old.id == self.draft.id or any(
                Path(a.path).parent == folder for a in self.draft.attachments):
            return
        self.runner.write(self.store.remove_attachments, old.id,
                          what="remove the attachment copies of the discarded draft")

    def attachment_dir_for_draft(self) -> Path:
        return self.store.attachments_dir(self.draft.id)

    # -- for sending (controllers.sending.DraftSource) ------------------------------------------
    def snapshot(self, *, dated: bool = False) -> Draft:
        """A copy of the draft; ``dated`` first gives the draft itself the Date of now (it
        keeps it, with its Message-ID and boundaries: the source pane shows what goes out)."""
        if dated:
            self.draft.date = new_date()
            self.changed.emit()
        return self.draft.copy()

    def has_attachment(self, path: str) -> bool:
        return any(a.path == path for a in self.draft.attachments)

    def renew(self) -> None:
        """The draft was sent: its next send is a new message (a new Message-ID)."""
        self.draft.renew()
        self.changed.emit()
