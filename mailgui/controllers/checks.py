"""The checks in the window: a ``ChecksPanel`` filled with a report, its network checks (links,
spam score) run on the worker pool with progress and Cancel, and the composer's "Check"
action (Ctrl+K), which runs every local check on the bytes the source pane shows.

Every parse and check runs on the worker (``JobRunner``); results carry the key of the
message they are for, and a result for a message no longer shown is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QTextCursor
from PySide6.QtWidgets import QDialog, QPlainTextEdit, QTreeWidgetItem

from mailcore.checks import CheckResult, Finding, Location, MessageView, Report, Severity
from mailgui.jobs import JobRunner, failure_sentence
from mailgui.model.checks import (
    NET_CHECKS,
    PENDING,
    Badge,
    CheckSettings,
    SpamService,
    StoredChecks,
    badge,
    key_lines,
    load_checks,
    load_net_checks,
    net_checks_path,
    parse_key_lines,
    part_lines,
    run_local,
    save_net_checks,
    section_numbers,
    spam_result,
)
from mailgui.views import style
from mailgui.views.checks import ChecksDialog, ChecksPanel, LinksDialog
from mailgui.views.common import Role

__all__ = ["ChecksController", "ComposerChecks", "InboxChecks", "encoded_source_line",
           "go_to_line", "read_badges"]

Loader = Callable[[], bytes]  # gives the message's bytes; called on the worker


def go_to_line(edit: QPlainTextEdit, line: int) -> None:
    """Put the cursor of ``edit`` on 1-based ``line``, selected, and scroll to it."""
    block = edit.document().findBlockByNumber(max(0, line - 1))
    if not block.isValid():
        return
    cursor = QTextCursor(block)
    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock,
                        QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cursor)
    edit.centerCursor()
    edit.setFocus(Qt.FocusReason.OtherFocusReason)


def encoded_source_line(source: str, start: int, encoded_line: int) -> int:
    """The line of the raw source (1-based) that is ``encoded_line`` of the body of the part
    whose headers begin at line ``start``: past the part's headers and the blank line."""
    lines = source.splitlines()
    index = max(0, start - 1)
    while index < len(lines) and lines[index].strip():
        index += 1  # the part's header lines
    return index + 1 + max(1, encoded_line)


def encoded_line_of(finding: Finding) -> int | None:
    """A finding whose line counts lines of the part's *encoded* body (quoted-printable, as
    ``lint.qp-breaks-url`` says it): that line, else None."""
    value = finding.data.get("encoded_line") if isinstance(finding.data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Progress(QObject):
    """Made on the GUI thread; emitted from the worker (queued to the GUI thread)."""

    moved = Signal(object, object, object)  # key, done, total
    stage = Signal(object, str)  # key, what the long check waits for now


def _links_module() -> Any:
    from mailcore.checks import links

    return links


class ChecksController(QObject):
    """Drives one ``ChecksPanel``: what it shows is the report of the message ``key``, whose
    bytes ``loader`` gives (on the worker)."""

    activated = Signal(object)  # the Finding to go to (double-click, Enter, the button)
    status = Signal(str)
    updated = Signal(object)  # the Report shown, after every change
    network_done = Signal(object, object)  # key, the links or spam CheckResult it got

    def __init__(self, panel: ChecksPanel, runner: JobRunner, spam: SpamService,
                 parent: QObject | None = None) -> None:
        super().__init__(parent or panel)
        self.panel = panel
        self.runner = runner
        self.spam_service = spam
        self.key: Any = None
        self.loader: Loader | None = None
        self.report: Report | None = None
        self.lines: dict[str, int] = {}  # section -> raw line of its headers
        self._cancel: threading.Event | None = None
        self._running = ""  # "links", "spam" or ""
        self._generation = 0
        self._progress = _Progress(self)
        self._progress.moved.connect(self._moved)
        self._progress.stage.connect(self._stage)
        # the links and spam results of each message this session (they cost a visit or a
        # SpamAssassin run: switching messages and back must not lose them)
        self.network: dict[Any, dict[str, CheckResult]] = {}
        panel.links.clicked.connect(self.check_links)
        panel.spam.clicked.connect(self.check_spam)
        panel.cancel.clicked.connect(self.cancel)
        panel.go.clicked.connect(lambda: self._activate(panel.tree.currentItem()))
        panel.tree.itemActivated.connect(lambda item, _c: self._activate(item))
        panel.set_idle(False)

    # -- what is shown ---------------------------------------------------------------------
    def set_message(self, key: Any, loader: Loader | None, note: str = "") -> None:
        """A new message is shown: the panel empties (``note`` says why) until ``show``."""
        if key != self.key:
            self.cancel()
        self.key, self.loader = key, loader
        self.report = None
        self.lines = {}
        self.panel.clear(note or "Checking\u2026")
        self.panel.set_idle(loader is not None)

    def show(self, key: Any, report: Report, lines: dict[str, int] | None = None) -> None:
        if key != self.key:
            return
        # the network checks asked for earlier stay with the new local results
        kept = {r.check: r for r in (self.report.results if self.report else [])
                if r.check in NET_CHECKS}
        kept.update(self.network.get(key, {}))
        self.report = Report([*report.results,
                              *(r for c, r in kept.items() if report.result(c) is None)])
        self.lines = dict(lines or {})
        self.panel.show_report(self.report)
        self.updated.emit(self.report)

    def _merge(self, key: Any, result: CheckResult) -> None:
        if key != self.key:
            return
        results = [r for r in (self.report.results if self.report else [])
                   if r.check != result.check]
        self.report = Report([*results, result])
        if result.check in NET_CHECKS:
            self.network.setdefault(key, {})[result.check] = result
        self.panel.show_report(self.report)
        self.updated.emit(self.report)
        if result.check in NET_CHECKS:
            self.network_done.emit(key, result)

    def forget(self, keys: set[Any]) -> None:
        """Messages gone: their network results go too."""
        for key in keys:
            self.network.pop(key, None)

    def _activate(self, item: QTreeWidgetItem | None) -> None:
        finding = self.panel.finding_of(item)
        if finding is not None:
            self.activated.emit(finding)

    # -- the network checks ----------------------------------------------------------------
    def confirm_links(self, links: list[Any]) -> tuple[bool, bool]:
        """(visit, also single-use): asked before any link is visited (tests replace it)."""
        dialog = LinksDialog(self.panel.window(), links)
        ok = dialog.exec() == QDialog.DialogCode.Accepted
        return ok, dialog.also.isChecked()

    def check_links(self) -> None:
        loader, key = self.loader, self.key
        if loader is None or self._running:
            return
        self._start("links", "Finding the links\u2026")
        generation = self._generation

        def find() -> tuple[MessageView, list[Any]]:
            view = MessageView(loader())
            return view, list(_links_module().extract_links(view))

        def found(result: tuple[MessageView, list[Any]]) -> None:
            if generation != self._generation:
                return
            view, links = result
            if not links:
                self._finish()
                self.status.emit("The message has no links or images to check.")
                self._merge(key, CheckResult("links", summary={"links": [],
                                                               "skipped_single_use": []}))
                return
            visit, single_use = self.confirm_links(links)
            if not visit:
                self._finish()
                return
            self._visit(key, view, len(links), single_use)

        self.runner.run(find, on_done=found,
                        on_error=lambda exc: self._failed(key, "links", exc))

    def _visit(self, key: Any, view: MessageView, total: int, single_use: bool) -> None:
        cancel = threading.Event()
        self._cancel = cancel
        generation = self._generation
        self.panel.set_busy("Links:", 0, total)
        progress = self._progress

        def moved(*args: Any) -> None:
            numbers = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
            done = numbers[0] if numbers else 0
            progress.moved.emit(key, done, numbers[1] if len(numbers) > 1 else total)

        def job() -> CheckResult:
            return _links_module().run(view, include_single_use=single_use, progress=moved,
                                       cancel=cancel)

        def done(result: CheckResult) -> None:
            if generation != self._generation:
                return
            self._finish()
            if cancel.is_set():
                self.status.emit("The link check was cancelled; what was visited is shown.")
            self._merge(key, result)

        self.runner.run(job, on_done=done, on_error=lambda exc: self._failed(key, "links", exc))

    def check_spam(self) -> None:
        loader, key = self.loader, self.key
        if loader is None or self._running:
            return
        self._start("spam", "Asking SpamAssassin\u2026" if self.spam_service.running
                    else "Starting SpamAssassin\u2026")
        generation = self._generation
        service = self.spam_service
        progress = self._progress

        def job() -> CheckResult:
            return spam_result(MessageView(loader()), service,
                               stage=lambda text: progress.stage.emit(key, text))

        def done(result: CheckResult) -> None:
            if generation != self._generation:
                return
            self._finish()
            self._merge(key, result)

        self.runner.run(job, on_done=done, on_error=lambda exc: self._failed(key, "spam", exc))

    def cancel(self) -> None:
        """Stop the long check: the link check stops visiting (it says what it saw); the
        spam score's answer is dropped."""
        if not self._running:
            return
        if self._cancel is not None:
            self._cancel.set()
            if self._running == "links":
                self.panel.set_busy("Cancelling\u2026")
                self.panel.cancel.setEnabled(False)
                return
        self._generation += 1
        self._finish()

    @property
    def running(self) -> str:
        return self._running

    def _start(self, what: str, text: str) -> None:
        self._running = what
        self._generation += 1
        self._cancel = None
        self.panel.set_busy(text)

    def _finish(self) -> None:
        self._running = ""
        self._cancel = None
        self.panel.set_idle(self.loader is not None)

    def _moved(self, key: Any, done: Any, total: Any) -> None:
        if key == self.key and self._running == "links" and not (
                self._cancel is not None and self._cancel.is_set()):
            self.panel.set_busy("Links:", int(done), int(total or 0) or None)

    def _stage(self, key: Any, text: str) -> None:
        if key == self.key and self._running == "spam":
            self.panel.set_busy(text)

    def _failed(self, key: Any, check: str, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, ImportError):
            self._merge(key, CheckResult(check, error=f"the {check} check needs "
                                                      f"{exc.name or exc}"))
            return
        self.status.emit(failure_sentence(f"run the {check} check", exc))


def _signer(profile: Any, secrets: Any = None) -> tuple[Any, str]:
    """The profile's DKIM signer (worker side: it reads the keyring), and the sentence saying
    why a profile that signs can't (no key stored, no keyring): what a send would refuse."""
    if profile is None:
        return None, ""
    from mailgui.model.dkim import DKIMUnavailable, signer_for

    try:
        return signer_for(profile, secrets), ""
    except DKIMUnavailable as exc:
        return None, str(exc)


def check_draft(draft: Any, profile: Any, settings: CheckSettings, secrets: Any = None
                ) -> tuple[bytes, Report, dict[str, int]]:
    """Worker side: the draft's bytes exactly as the source pane shows them, and their local
    checks (signed as the profile will sign them; a profile that can't sign is an error
    finding, as the send would refuse)."""
    from mailgui.model.source import serialized_draft

    raw = serialized_draft(draft, profile).getvalue()
    view = MessageView(raw)
    signer, problem = _signer(profile, secrets)
    report = run_local(view, settings, signer=signer)
    if problem:
        dkim = report.result("dkim")
        if dkim is not None:
            dkim.findings.insert(0, Finding(
                "dkim", "dkim.profile-cannot-sign", Severity.ERROR,
                f"{problem} A send through this profile would send nothing.",
                "Open Profiles and generate or import the key, or untick “Sign with DKIM”.",
                Location(part="0", element="DKIM-Signature"),
                "https://www.rfc-editor.org/rfc/rfc6376"))
    return raw, report, part_lines(view)


class ComposerChecks(QObject):
    """The composer's Check action (Ctrl+K): the local checks of the draft's bytes, in a
    dialog that stays open; a finding goes to the HTML editor's line, or to the source."""

    def __init__(self, window: Any, controller: Any, spam: SpamService) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.spam = spam
        self.dialog: ChecksDialog | None = None
        self.checks: ChecksController | None = None
        self._generation = 0
        self._raw = b""
        window.act_check.triggered.connect(self.check)

    def settings(self) -> CheckSettings:
        return CheckSettings.from_settings(self.controller.settings)

    def _ensure_dialog(self) -> ChecksDialog:
        if self.dialog is None:
            self.dialog = ChecksDialog(self.window)
            self.checks = ChecksController(self.dialog.panel, self.controller.runner, self.spam,
                                           self)
            self.checks.activated.connect(self.go_to)
            self.checks.status.connect(self.controller.show_status)
            self.dialog.recheck.clicked.connect(self.check)
        return self.dialog

    def check(self) -> None:
        """Run the local checks on the draft as it is now (on the worker) and show them."""
        dialog = self._ensure_dialog()
        assert self.checks is not None
        self._generation += 1
        generation = self._generation
        draft = self.controller.compose.draft.copy()
        profile = self.controller.target.current()
        self.checks.set_message(generation, lambda: self._raw, "Checking the draft\u2026")
        self.checks.panel.set_idle(False)
        dialog.show()
        dialog.raise_()

        def done(result: tuple[bytes, Report, dict[str, int]]) -> None:
            if generation != self._generation or self.checks is None:
                return
            raw, report, lines = result
            self._raw = raw
            self.checks.panel.set_idle(True)
            self.checks.show(generation, report, lines)

        def failed(exc: BaseException) -> None:
            if generation != self._generation or self.checks is None:
                return
            from mailgui.model.errors import describe_error

            self.checks.panel.clear(f"Can't check the draft yet: "
                                    f"{describe_error(exc, profile).sentence}")

        secrets = self.controller.passwords.broker.worker_secrets  # the keyring, worker side
        self.controller.runner.run(check_draft, draft, profile, self.settings(), secrets,
                                   on_done=done, on_error=failed)

    def go_to(self, finding: Finding) -> None:
        """An HTML finding with a line: the HTML editor at that line; a line of the encoded
        part (quoted-printable): the source there; anything else: the source pane at the
        part's first line. Then the dialog steps aside from the place shown."""
        w = self.window
        loc = finding.location
        view = MessageView(self._raw) if self._raw else None
        part = view.part(loc.part) if view is not None and loc.part else None
        encoded = encoded_line_of(finding)
        if encoded is None and part is not None and part.content_type == "text/html" \
                and loc.line:
            w.compose.tabs.setCurrentWidget(w.compose.html_page)
            go_to_line(w.compose.html, loc.line)
            self.step_aside(w.compose.html)
            return
        if encoded is None and part is not None and part.content_type == "text/plain" \
                and loc.line:
            w.compose.tabs.setCurrentWidget(w.compose.text_page)
            go_to_line(w.compose.body, loc.line)
            self.step_aside(w.compose.body)
            return
        w.show_pane(w.source)
        start = self.checks.lines.get(loc.part or "", 1) if self.checks else 1
        source = w.source.text

        def there() -> None:
            text = source.toPlainText()
            if loc.part == "0":
                line = 1
            elif encoded is not None:
                line = encoded_source_line(text, start, encoded)
            else:
                line = start
            go_to_line(source, line)
            self.step_aside(source)

        if source.toPlainText():
            there()
        else:
            self.controller.source.updated.connect(lambda _p: there(),
                                                   Qt.ConnectionType.SingleShotConnection)

    def step_aside(self, target: Any) -> None:
        """Move the dialog off the place a jump went to: beside the main window when the
        screen has room, else over the other side of the window, narrowed to fit there."""
        dialog = self.dialog
        if dialog is None or not dialog.isVisible():
            return
        shown = QRect(target.mapToGlobal(QPoint(0, 0)), target.size())
        frame = dialog.frameGeometry()
        if not frame.intersects(shown):
            return
        window = self.window.frameGeometry()
        screen = (dialog.screen() or self.window.screen()).availableGeometry()
        minimum = max(dialog.minimumSizeHint().width(), 420)
        height = min(frame.height(), screen.height())
        top = max(screen.top(), min(frame.top(), screen.bottom() + 1 - height))
        room_right = screen.right() - window.right()
        room_left = window.left() - screen.left()
        if max(room_right, room_left) >= minimum:  # beside the window, the side with room
            width = min(frame.width(), max(room_right, room_left))
            left = window.right() + 1 if room_right >= room_left else window.left() - width
        else:  # over the window: the side the target is not on
            right_side = screen.right() - shown.right()
            left_side = shown.left() - screen.left()
            width = max(minimum, min(frame.width(), max(right_side, left_side)))
            left = (shown.right() + 1 if right_side >= left_side else shown.left() - width)
            left = max(screen.left(), min(left, screen.right() + 1 - width))
        dialog.resize(width - (frame.width() - dialog.width()),
                      height - (frame.height() - dialog.height()))
        dialog.move(left, top)


def read_badges(folder: Any, ids: list[str]) -> dict[str, Badge]:
    """Worker side: the stored badge of each message that has been checked (with the links
    and spam results the window kept for it, as its Checks tab counts them)."""
    out = {}
    for msg_id in ids:
        has_net = net_checks_path(folder, msg_id).exists()
        stored = load_checks(folder, msg_id, badge_only=not has_net)
        if stored is None:
            continue
        net = load_net_checks(folder, msg_id) if has_net else []
        out[msg_id] = badge(_with_net(stored.report, net)) if net else stored.badge
    return out


def _with_net(report: Report, net: list[CheckResult] | dict[str, CheckResult]) -> Report:
    extra = list(net.values()) if isinstance(net, dict) else list(net)
    return Report([*report.results,
                   *(r for r in extra if report.result(r.check) is None)])


def read_stored(folder: Any, msg_id: str) -> tuple[StoredChecks | None, list[CheckResult]]:
    """Worker side: a received message's stored checks and its kept network checks."""
    return load_checks(folder, msg_id), load_net_checks(folder, msg_id)


# After a burst the inbox server says "CHECKED <id>" once per message: the badges of those
# that arrive within this long are read in one job (one per message was a pool job, its
# signals and a whole report parsed each, on the GUI thread's account, for 2,000 at once)
CHECKED_EVERY_MS = 50


class InboxChecks(QObject):
    """The checks of received mail in the inbox pane: the badge column of the list, the
    Checks tab of the message shown, and going from a finding to its part or line.

    The inbox server process checks each message after it is stored, off its ingest path
    (``mailgui.model.inbox_server._Checker``), and says ``CHECKED <id>``; this reads the
    ``<id>.checks.json`` it wrote, on the worker. A message shown before it was checked is
    asked for first (``InboxServer.check``)."""

    BADGE_COLUMN = 5

    def __init__(self, inbox: Any) -> None:
        super().__init__(inbox)
        self.inbox = inbox
        self.view = inbox.view
        self.store = inbox.store
        self.spam = SpamService()
        self.badges: dict[str, Badge] = {}
        self.settings = CheckSettings()
        self.app: Any = None
        self.checks = ChecksController(self.view.checks, inbox.runner, self.spam, self)
        self.checks.activated.connect(self.go_to)
        self.checks.status.connect(inbox.status.emit)
        self.checks.updated.connect(self._panel_updated)
        self.checks.network_done.connect(self._network_done)
        self.view.checks.keys.clicked.connect(self.edit_keys)
        self.sections: list[str] = []  # of the parts list shown, in its order
        self._checked: list[str] = []  # CHECKED ids whose badges are read next
        self._checked_timer = QTimer(self)
        self._checked_timer.setSingleShot(True)
        self._checked_timer.setInterval(CHECKED_EVERY_MS)
        self._checked_timer.timeout.connect(self._read_checked)

    # -- settings -------------------------------------------------------------------------
    def attach_app(self, app: Any) -> None:
        self.app = app
        self.settings = CheckSettings.from_settings(app.settings)
        self.inbox.server.set_check_settings(self.settings.to_json())

    def choose_keys(self, keys_text: str, dns: bool) -> tuple[str, bool] | None:
        """Ask for the pasted keys and the DNS switch (tests replace this)."""
        from mailgui.views.checks import DkimKeysDialog

        dialog = DkimKeysDialog(self.view.window(), keys_text, dns)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.text.toPlainText(), dialog.dns.isChecked()

    def edit_keys(self) -> None:
        chosen = self.choose_keys(key_lines(self.settings.dkim_keys), self.settings.dkim_dns)
        if chosen is not None:
            self.set_settings(CheckSettings(parse_key_lines(chosen[0]), chosen[1]))

    def set_settings(self, settings: CheckSettings) -> None:
        """New settings: kept in the app's settings, told to the inbox server, and the
        message shown checked again with them."""
        self.settings = settings
        if self.app is not None:
            self.app.settings.update(settings.to_settings())
        self.inbox.server.set_check_settings(settings.to_json())
        msg_id = self.inbox.selected_id()
        if msg_id is not None:
            self.view.checks.summary.setText("Checking again with the new settings\u2026")
            self.inbox.server.check(msg_id)

    def stop(self) -> None:
        if self.spam.running:
            self.inbox.runner.run(self.spam.stop, what="stop SpamAssassin")

    # -- badges ---------------------------------------------------------------------------
    def decorate(self, item: QTreeWidgetItem, msg_id: str) -> None:
        shown = self.badges.get(msg_id, PENDING)
        column = self.BADGE_COLUMN
        item.setText(column, shown.text)
        item.setToolTip(column, shown.tooltip)
        item.setTextAlignment(column, Qt.AlignmentFlag.AlignCenter)
        colour = {"error": style.BANNERS["error"].text, "warning": style.BANNERS["warning"].text,
                  "": style.OK}.get(shown.worst)
        item.setForeground(column, QBrush(QColor(colour)) if colour else QBrush())

    def load_badges(self, ids: list[str]) -> None:
        folder = self.store.folder
        self.inbox.runner.run(read_badges, folder, ids, on_done=self._badges_read,
                              what="read the checks of the inbox's messages")

    def _badges_read(self, badges: dict[str, Badge]) -> None:
        self.badges.update(badges)
        for msg_id in badges:
            item = self.inbox._find_item(msg_id)  # noqa: SLF001 - the inbox's own rows
            if item is not None:
                self.decorate(item, msg_id)

    def checked(self, msg_id: str) -> None:
        """The inbox server stored the checks of ``msg_id`` (``CHECKED``). The message shown
        (its Checks tab fills) and one with links or spam results of this session are read
        at once, each on its own; the rest's badges in one job for all that came meanwhile."""
        if msg_id != self.inbox.selected_id() and msg_id not in self.checks.network:
            self._checked.append(msg_id)
            if not self._checked_timer.isActive():
                self._checked_timer.start()
            return
        folder = self.store.folder
        self.inbox.runner.run(load_checks, folder, msg_id,
                              on_done=lambda stored: self._loaded(msg_id, stored),
                              what="read the checks of a received message")

    def _read_checked(self) -> None:
        ids, self._checked = self._checked, []
        if ids:
            self.load_badges(ids)

    def _loaded(self, msg_id: str, stored: StoredChecks | None) -> None:
        if stored is None:
            return
        net = self.checks.network.get(msg_id)
        self._badges_read({msg_id: badge(_with_net(stored.report, net)) if net
                           else stored.badge})
        if self.inbox.selected_id() == msg_id:
            self.checks.show(msg_id, stored.report, stored.part_lines)

    def forget(self, ids: set[str]) -> None:
        for msg_id in ids:
            self.badges.pop(msg_id, None)
        self.checks.forget(set(ids))

    def _network_done(self, msg_id: Any, _result: CheckResult) -> None:
        """Links or spam ran on a received message: kept beside it in
        ``<id>.netchecks.json`` (the GUI's file; on the write lane, after any earlier
        write), so they are there when it is shown again, this session or the next."""
        if not isinstance(msg_id, str):
            return
        results = list(self.checks.network.get(msg_id, {}).values())
        inbox = self.inbox
        self.inbox.runner.write(save_net_checks, self.store.folder, msg_id, results,
                                alive=lambda: inbox.message(msg_id) is not None,
                                what="keep the link and spam results of a message")

    # -- the message shown ----------------------------------------------------------------
    def selected(self, msg_id: str | None) -> None:
        if msg_id is None:
            self.checks.set_message(None, None, "")
            return
        store = self.store
        self.checks.set_message(msg_id, lambda: store.read(msg_id), "Checking\u2026")
        fingerprint = self.settings.fingerprint()

        def shown(found: tuple[StoredChecks | None, list[CheckResult]]) -> None:
            stored, net = found
            if net and msg_id not in self.checks.network:  # kept from an earlier session
                self.checks.network[msg_id] = {r.check: r for r in net}
            if self.inbox.selected_id() != msg_id:
                return
            if stored is None or stored.settings != fingerprint:
                # not checked yet (or with other settings): the inbox checks it next
                self.inbox.server.check(msg_id)
                if stored is None:
                    return
            self._loaded(msg_id, stored)

        self.inbox.runner.run(read_stored, store.folder, msg_id, on_done=shown,
                              what="read the checks of a received message")

    def details_shown(self, details: Any) -> None:
        self.sections = section_numbers([p.depth for p in details.parts])

    def _panel_updated(self, report: Report) -> None:
        n = sum(1 for f in report.findings if f.severity >= Severity.WARNING)
        index = self.view.detail.indexOf(self.view.checks)
        self.view.detail.setTabText(index, f"Checks ({n})" if n else "Checks")
        # the row's badge counts what the tab counts (links and spam included)
        msg_id = self.checks.key
        if isinstance(msg_id, str) and report.results:
            self._badges_read({msg_id: badge(report)})

    def go_to(self, finding: Finding) -> None:
        """To the finding's place: an HTML line in the HTML source, a header in Headers,
        another part selected in Parts, else the Source."""
        v = self.view
        loc = finding.location
        if loc.part == "0" or (loc.part is None and loc.element and not loc.line):
            v.detail.setCurrentIndex(1)  # Headers
            for i in range(v.headers.topLevelItemCount()):
                row = v.headers.topLevelItem(i)
                if loc.element and row.text(0).lstrip("\u26a0 ").lower() == loc.element.lower():
                    v.headers.setCurrentItem(row)
                    break
            return
        index = self.sections.index(loc.part) if loc.part in self.sections else -1
        shown = self.inbox._shown  # noqa: SLF001 - the details being shown
        part = shown.parts[index] if shown is not None and index >= 0 else None
        encoded = encoded_line_of(finding)
        if encoded is not None:  # a line of the encoded body: only the source shows it
            v.detail.setCurrentWidget(v.source)
            start = self.checks.lines.get(loc.part or "", 1)
            go_to_line(v.source, encoded_source_line(v.source.toPlainText(), start, encoded))
            return
        if part is not None and part.content_type == "text/html" and loc.line:
            v.detail.setCurrentIndex(0)
            v.body.setCurrentWidget(v.html_source)
            go_to_line(v.html_source, loc.line)
            return
        if part is not None and part.content_type == "text/plain" and loc.line:
            v.detail.setCurrentIndex(0)
            v.body.setCurrentWidget(v.text)
            go_to_line(v.text, loc.line)
            return
        if index >= 0:
            v.detail.setCurrentWidget(v.parts_page)
            for item in _tree_items(v.parts):
                if item.data(0, Role.PART_INDEX) == index:
                    v.parts.setCurrentItem(item)
                    break
            return
        v.detail.setCurrentWidget(v.source)
        go_to_line(v.source, self.checks.lines.get(loc.part or "", 1))


def _tree_items(tree: Any) -> list[QTreeWidgetItem]:
    items, stack = [], [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        items.append(item)
        stack.extend(item.child(i) for i in range(item.childCount()))
    return items
