"""The main window's controller: builds the other controllers, wires actions, handles start
(first run, restored draft) and quit (save the draft, stop the inbox).

Quitting never waits on the GUI thread: ``shutdown`` hands the draft and the settings to the
runner's file lane, cancels a send and tells the inbox process to stop, and returns at once;
``quit_ready`` says when the writes are back (``app.main`` ends the event loop then), and
``finish`` waits, after the loop, for what still runs behind (workers, the inbox process)."""

from __future__ import annotations

import html
import importlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from mailgui.controllers import folders
from mailgui.controllers.send_target import SendTargetController
from mailgui.model.draft import Draft, DraftStore
from mailgui.model.paths import AppPaths, atomic_write_json, read_json
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.views.main_window import MainWindow

if TYPE_CHECKING:
    from mailgui.model.secrets import KeyringStatus, SecretStore

# A quit whose writes do not come back by then (a file system that hangs) ends the loop anyway;
# ``finish`` still waits for them before the process ends.
QUIT_WRITES_MS = 10000
# The fields a draft shown in the first frame may fill (one with more is loaded before it)
FIRST_FRAME_FIELDS = ("from_email", "to", "cc", "bcc", "reply_to", "subject", "body")
WELCOME = ("Welcome! Messages go to the built-in Local test inbox: nothing leaves this "
           "computer, and what arrives is listed on the right. Add your SMTP server "
           "in Profiles when you are ready.")
WELCOME_ACTION = "Add SMTP profile\u2026"


# What ``start()`` imports (mailcore, the keyring, the worker pool's jobs, the inbox's store):
# ``import_later_modules`` imports them on a thread of their own while the window shows its
# first frame and takes keystrokes, so ``start()`` finds them imported.
LATER_MODULES = (
    "mailcore", "mailgui.model.secrets", "mailgui.jobs", "mailgui.model.inbox",
    "mailgui.controllers.compose", "mailgui.controllers.source",
    "mailgui.controllers.inbox", "mailgui.controllers.passwords",
    "mailgui.controllers.profile_editor", "mailgui.controllers.sending",
    "mailgui.controllers.checks",
)


def import_later_modules() -> threading.Thread:
    """Import ``LATER_MODULES`` on a daemon thread (started; join it or poll it). A module
    that fails to import is left for the GUI thread's own import to report."""

    def run() -> None:
        for name in LATER_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - start() imports it again and says why
                continue

    global _IMPORTS  # noqa: PLW0603 - the one import thread; start() waits for it
    thread = threading.Thread(target=run, name="mailgui-imports", daemon=True)
    _IMPORTS = thread
    thread.start()
    return thread


_IMPORTS: threading.Thread | None = None


class MainController(QObject):
    """``staged``: build only what the window's first frame shows (the "Send via" list, the
    restored draft's fields, the banner, the splitter) and leave the rest to ``start()``,
    which ``app.main`` calls once that frame is on the screen: the other controllers, the
    worker pool, the keyring probe, the local inbox's process, and the imports of mailcore,
    the checks and the keyring that they need. Not staged (tests, the screenshot tool), the
    whole controller is built at once, as ``start()`` has been called."""

    quit_ready = Signal()  # after shutdown(): the draft and settings writes are back

    def __init__(self, window: MainWindow, paths: AppPaths, *, secrets: SecretStore | None = None,
                 start_inbox: bool = True, inbox_port: int | None = None,
                 staged: bool = False) -> None:
        super().__init__(window)
        self.window = window
        self.paths = paths
        self.first_start = not paths.profiles_file.exists() and not paths.settings_file.exists()
        self.start_inbox = start_inbox
        saved = read_json(paths.settings_file, {})
        # read once; quitting writes it back with this window's own keys updated, so what the
        # person put there by hand (inbox_port) stays
        self.settings: dict = saved if isinstance(saved, dict) else {}
        self.profile_store = ProfileStore(paths)
        self.draft_store = DraftStore(paths)
        self._secrets = secrets
        self._inbox_port = inbox_port
        self.started = False
        self.queue: Any = None  # the Queue panel's controller, made when first opened
        self._shown: dict[str, Any] | None = None  # what the first frame showed (staged)
        self._shut_down = False
        self._quit_writes: set[str] = set()  # what the quit still writes
        self._quit_problems: list[str] = []
        self._quit_ended = False
        self._quit_after_send = False  # "Wait": the window closes when the send is over
        w = window
        self.target = SendTargetController(w.target, w.target_detail.setText, self.profile_store)
        w.close_requested.connect(self.shutdown)
        w.can_close = self._may_close
        self._restore_settings()
        if not (staged and self._first_frame()):
            self.start()

    # what start() builds; asking for one of them before start() has run runs it
    LATER = frozenset({"runner", "sent_log", "secrets", "passwords", "profiles", "compose",
                       "source", "inbox", "sending"})

    def __getattr__(self, name: str) -> Any:
        if name in MainController.LATER and not self.__dict__.get("started", True):
            self.start()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _first_frame(self) -> bool:
        """Staged start: show what the first frame shows, without the other controllers.
        False when the draft brought back has attachments or extra headers (the compose
        controller shows them, in the attachment list and the Headers tab's title: ``start()``
        runs at once). Its HTML is on a tab the first frame does not show."""
        raw = self.draft_store.peek()
        fields = {}
        html = ""
        if raw is not None:
            if any(raw.get(k) for k in ("headers", "attachments")):
                return False
            fields = {k: raw.get(k) if isinstance(raw.get(k), str) else "" for k in
                      FIRST_FRAME_FIELDS}
            html = raw.get("html") if isinstance(raw.get("html"), str) else ""
        w = self.window
        view = w.compose
        empty = not html.strip() and not any(v.strip() if k == "body" else v
                                             for k, v in fields.items() if k != "from_email")
        if not empty:
            profile_id = raw.get("profile_id") if raw else None
            if isinstance(profile_id, str) and profile_id and self.profile_store.get(profile_id):
                self.target.select(profile_id)
            for key, value in fields.items():
                if key == "body":
                    view.body.setPlainText(value)
                elif key == "subject":
                    view.subject.setText(value)
                else:
                    view.address_edits[key].setText(value)
            saved_at = raw.get("saved_at") if raw else 0
            when = time.strftime("%H:%M:%S on %Y-%m-%d", time.localtime(
                saved_at if isinstance(saved_at, int | float) else 0))
            w.banner.show_message("info", f"Your draft from {when} is back.")
            subject = fields.get("subject", "").strip()
            w.setWindowTitle(f"{subject} \u2014 mailgui" if subject else "mailgui")
        elif self.first_start and self.start_inbox:
            w.banner.show_message("info", WELCOME, action=WELCOME_ACTION)
        if self.profile_store.problem:
            w.banner.show_message("warning", self._profiles_problem())
        profile = self.target.current()
        if profile is not None and profile.from_email:
            view.from_edit.setPlaceholderText(f"{profile.from_email}  (the profile's default From)")
        w.act_open_folder.setVisible(bool(profile and profile.kind == "file"))
        if not self.start_inbox:
            w.inbox.status.setText("The local test inbox is switched off (--no-inbox).")
        # the inbox pane as its controller sets it up: the hint, no message (so no preview:
        # the browser engine starts when one is shown), nothing to act on yet
        w.inbox.set_empty(True)
        w.inbox.detail_box.hide()
        for button in (w.inbox.delete, w.inbox.mark_unread, w.inbox.clear):
            button.setEnabled(False)
        self._shown = {"fields": fields if not empty else {k: "" for k in FIRST_FRAME_FIELDS}}
        return True

    def start(self) -> None:
        """Build the rest of the window's controllers (see the class); idempotent."""
        if self.started:
            return
        self.started = True
        if _IMPORTS is not None:
            # the GUI thread never imports a module while the import thread is half-way
            # through it (asked for early: Ctrl+C, a test harness): it waits for them instead
            _IMPORTS.join()
        from mailgui.controllers.compose import ComposeController
        from mailgui.controllers.inbox import InboxController, inbox_limits
        from mailgui.controllers.passwords import PasswordsController
        from mailgui.controllers.profile_editor import ProfileEditorController
        from mailgui.controllers.sending import SendController
        from mailgui.controllers.source import SourceController
        from mailgui.jobs import JobRunner
        from mailgui.model.inbox import DEFAULT_INBOX_PORT, InboxStore
        from mailgui.model.passwords import PasswordBroker
        from mailgui.model.secrets import SecretStore
        from mailgui.model.sentlog import SentLog

        paths = self.paths
        self.runner = JobRunner(self)
        self.sent_log = SentLog(paths.sent_log_file)
        self.secrets = self._secrets or SecretStore()
        w = self.window
        self.runner.error.connect(self.show_status)  # the default error path of every job

        self.passwords = PasswordsController(PasswordBroker(self.secrets), self.runner, w)
        self.profiles = ProfileEditorController(self.runner, self.profile_store, self.passwords,
                                                self.target, w)
        self.compose = ComposeController(w.compose, self.runner, self.draft_store,
                                         self.target.current)
        self.source = SourceController(w.source, self.runner, lambda: self.compose.draft,
                                       self.target.current,
                                       lambda: w.side.currentWidget() is w.source)
        inbox_port = self._inbox_port
        if inbox_port is None:  # the settings file may name one ("inbox_port"), else 1025
            port = self.settings.get("inbox_port")
            valid = isinstance(port, int) and not isinstance(port, bool) and 0 <= port < 65536
            inbox_port = port if valid else DEFAULT_INBOX_PORT
        self.inbox = InboxController(w.inbox, self.runner,
                                     InboxStore(paths.inbox_dir, *inbox_limits(self.settings)),
                                     port=inbox_port)
        self.inbox.attach_app(self)  # its settings, the profiles and passwords, Open as draft
        self.sending = SendController(w, self.runner, self.compose, self.target, self.passwords,
                                      self.sent_log, lambda: self.inbox.running)
        w.build_panes()  # those the controllers above did not ask for

        self.compose.changed.connect(self.source.draft_changed)
        self.compose.changed.connect(self.sending.draft_changed)
        self.compose.changed.connect(self._update_title)
        self.compose.changed.connect(self.inbox.note_input)  # its viewer's warm-up waits
        self.sending.started.connect(self.inbox.note_input)  # (and while a send starts)
        self.inbox.busy = lambda: self.sending.sending  # nor while a send is under way
        self.compose.status.connect(self.show_status)
        self.source.status.connect(self.show_status)
        self.profiles.status.connect(self.show_status)
        self.profiles.problem.connect(lambda text: self.sending.banner("error", text))
        self.inbox.status.connect(self.show_status)
        self.target.target_changed.connect(self._target_changed)
        self.passwords.keyring_checked.connect(self._keyring_checked)
        self.inbox.started.connect(self.target.inbox_started)
        self.inbox.count_changed.connect(w.show_unread)
        self.sending.started.connect(self.source.refresh_now)
        self.sending.finished.connect(self._sent)
        w.side.currentChanged.connect(self._pane_changed)

        w.act_source.triggered.connect(lambda: w.show_pane(w.source))
        w.act_inbox.triggered.connect(w.show_inbox)
        w.act_save.triggered.connect(self.save_draft)
        w.act_attach.triggered.connect(self.compose.choose_attachments)
        w.act_profiles.triggered.connect(self.profiles.open_dialog)
        w.act_queue.triggered.connect(self.open_queue)
        w.act_open.triggered.connect(lambda: self.open_eml())
        w.act_save_eml.triggered.connect(self.source.save_as)
        w.act_open_folder.triggered.connect(self.sending.open_output_folder)
        w.act_new.triggered.connect(self.new_draft)
        w.act_quit.triggered.connect(w.close)
        w.act_about.triggered.connect(self.about)
        w.act_keys.triggered.connect(self.show_shortcuts)
        # files may have been moved or deleted meanwhile: the attachment list says so at once
        w.activated.connect(self.compose.refresh_attachment_info)

        self._restore_draft()
        if self.profile_store.problem:
            self.sending.banner("warning", self._profiles_problem())
        self.passwords.probe_keyring()
        if self.start_inbox:
            self.inbox.start()
        else:
            w.inbox.status.setText("The local test inbox is switched off (--no-inbox).")
        self._target_changed(self.target.current())
        # What start-up made lives as long as the window: frozen, a full collection during a
        # burst of mail scans only what came later (one of 63 ms was seen in a 2,000 burst).
        import gc

        gc.freeze()

    def open_queue(self) -> None:
        """The Queue panel (made when first asked for: it is off the first frame)."""
        if not self.started:
            self.start()
        if self.queue is None:
            from mailgui.controllers.queue import QueueController
            from mailgui.views.queue import QueuePanel

            broker = self.passwords.broker
            self.queue = QueueController(
                QueuePanel(self.window), self.runner, self.target.current_queue,
                lambda: self.compose.snapshot(dated=True), lambda: broker.worker_secrets,
                lambda profile: broker.plan(profile).password)
            self.queue.status.connect(self.show_status)
            self.target.target_changed.connect(self.queue.target_changed)
        self.queue.open()

    def _profiles_problem(self) -> str:
        return (f"Your profiles could not all be read: {self.profile_store.problem}. "
                "Fix the file and restart mailgui, or set the profiles up again.")

    # -- start --------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        settings = self.settings
        target = settings.get("target")
        if not self.start_inbox:
            # the inbox is switched off (--no-inbox): nothing could be delivered to it
            self.target.inbox_off = True
            if target in (None, "builtin-inbox"):
                target = "builtin-console"
        if not (isinstance(target, str) and self.target.select(target)):
            self.target.select("builtin-inbox")
        sizes = settings.get("splitter")
        if isinstance(sizes, list) and len(sizes) == 2 and all(isinstance(s, int) for s in sizes):
            self.window.split.setSizes(sizes)

    def _typed_since_first_frame(self, draft: Draft) -> bool:
        """What the person typed between the first frame and ``start()`` goes into the
        draft (the fields still show it; loading the draft then changes nothing on screen).
        True if there was any."""
        typed = False
        if self._shown is None:
            return typed
        view = self.window.compose
        for key, shown in self._shown["fields"].items():
            if key == "body":
                now = view.body.toPlainText()
            elif key == "subject":
                now = view.subject.text()
            else:
                now = view.address_edits[key].text()
            if now != shown:
                setattr(draft, key, now)
                typed = True
        self._shown = None
        return typed

    def _restore_draft(self) -> None:
        draft = self.draft_store.load()
        if draft is not None and not draft.is_empty:
            if draft.profile_id and self.profile_store.get(draft.profile_id):
                self.target.select(draft.profile_id)
            typed = self._typed_since_first_frame(draft)
            self.compose.load(draft, saved=not typed, keep_shown=True)
            when = time.strftime("%H:%M:%S on %Y-%m-%d", time.localtime(draft.saved_at))
            self.sending.banner("info", f"Your draft from {when} is back.")
        else:
            draft = Draft(profile_id=self.window.target.currentData() or "")
            typed = self._typed_since_first_frame(draft)
            self.compose.load(draft, saved=not typed, keep_shown=True)
            if self.first_start and self.start_inbox:
                self.sending.banner("info", WELCOME, action=WELCOME_ACTION,
                                    action_fn=self._first_profile)
        self.compose.profile_changed(self.target.current())

    def focus_first_field(self) -> None:
        """Where typing should go when the window opens: the first empty one of To and
        Subject, else the text (never the banner's button)."""
        view = self.window.compose
        if not view.address_edits["to"].text().strip():
            view.address_edits["to"].setFocus()
        elif not view.subject.text().strip():
            view.subject.setFocus()
        else:
            view.tabs.setCurrentWidget(view.text_page)
            view.body.setFocus()

    def _first_profile(self) -> None:
        self.profiles.open_dialog()
        if not self.profile_store.user_profiles():
            self.profiles.new_profile()

    # -- reactions ------------------------------------------------------------------------
    def show_status(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)

    def _target_changed(self, profile: Profile | None) -> None:
        self.compose.profile_changed(profile)
        self.source.draft_changed()
        self.window.act_open_folder.setVisible(bool(profile and profile.kind == "file"))

    def _keyring_checked(self, status: KeyringStatus) -> None:
        if not status.usable:
            self.show_status(status.sentence)

    def _pane_changed(self, _index: int) -> None:
        if self.window.side.currentWidget() is self.window.source:
            self.source.pane_shown()

    def _sent(self, outcome: object) -> None:
        profile = self.sending.last_profile
        if outcome.ok and profile is not None and profile.kind == "inbox":
            self.window.show_pane(self.window.inbox)
        elif not outcome.ok and not outcome.cancelled:
            self.window.show_pane(self.window.transcript)

    def _update_title(self) -> None:
        subject = self.compose.draft.subject.strip()
        self.window.setWindowTitle(f"{subject} \u2014 mailgui" if subject else "mailgui")

    # -- drafts ---------------------------------------------------------------------------
    def save_draft(self) -> None:
        # said once it is written (a failure says so instead)
        self.compose.save(force=True, on_done=lambda _written: self.show_status(
            f"Draft saved to {self.draft_store.path}."))

    def confirm_discard(self) -> bool:
        answer = QMessageBox.question(
            self.window, "New draft",
            "Start a new message? The current draft will be discarded.")
        return answer == QMessageBox.StandardButton.Yes

    def new_draft(self) -> None:
        if not self.compose.draft.is_empty and not self.confirm_discard():
            return
        old = self.compose.draft
        self.compose.load(Draft(profile_id=self.window.target.currentData() or ""), saved=False)
        self.compose.discard_files(old)
        self.compose.autosave_now(force=True)
        self.window.compose.banner.hide()
        self.window.compose.address_edits["to"].setFocus()

    def ask_open_path(self) -> str:
        path, _f = QFileDialog.getOpenFileName(
            self.window, "Open an .eml file", folders.start_at(),
            "Email messages (*.eml);;Drafts kept by mailgui (*.json);;All files (*)")
        folders.remember(path)
        return path

    def confirm_replace(self, name: str) -> bool:
        answer = QMessageBox.question(
            self.window, "Open as a new draft",
            f"Open {name} as a new draft? The current draft will be replaced (it is not sent).")
        return answer == QMessageBox.StandardButton.Yes

    def open_eml(self, path: str | None = None, *, at_start: bool = False) -> None:
        """Open an .eml file (or a draft kept by mailgui) as the new draft.

        A draft that is not empty is never replaced silently: the person is asked first; at
        start (``mailgui FILE.eml``) the draft just brought back is kept in a numbered file in
        the drafts folder instead, and the banner says where.
        """
        path = path or self.ask_open_path()
        if not path:
            return
        name = Path(path).name
        current = self.compose.draft
        keep: Draft | None = None
        if not current.is_empty:
            if at_start:
                keep = current.copy()
            elif not self.confirm_replace(name):
                return
        agreed = current.fingerprint()
        draft = Draft(profile_id=self.window.target.currentData() or "")
        folder = self.draft_store.attachments_dir(draft.id)
        store = self.draft_store

        from mailgui.model.eml import draft_from_eml
        from mailgui.model.errors import describe_error

        def load() -> tuple[Draft, Path | None, list[str]]:
            # on the worker: keep the old draft first; if that fails, nothing is opened
            kept = store.save_copy(keep) if keep is not None else None
            if Path(path).suffix.lower() == ".json":
                opened = store.load_file(Path(path))
                if opened is None:
                    raise ValueError(f"{name} is not a draft saved by mailgui.")
                return opened, kept, []
            notes: list[str] = []
            return draft_from_eml(Path(path).read_bytes(), folder, draft, notes), kept, notes

        self.runner.run(load, on_done=lambda result: self._eml_loaded(*result, name, agreed),
                        on_error=lambda exc: self.sending.banner(
                            "error", f"Can't open {name}: {describe_error(exc).sentence}"))

    def _eml_loaded(self, draft: Draft, kept: Path | None = None, notes: list[str] | None = None,
                    name: str = "", agreed: str = "") -> None:
        current = self.compose.draft
        if (agreed and current.fingerprint() != agreed and not current.is_empty
                and not self.confirm_replace(name or "the message")):
            return  # typed into meanwhile, and the person wants to keep it
        self.compose.load(draft, saved=False)
        if kept is None:  # the replaced draft is gone: its attachment copies with it
            self.compose.discard_files(current)
        self.compose.autosave_now(force=True)
        n = len(draft.attachments)
        text = f"Opened {name or 'the message'} as a new draft" + (
            f" ({n} attachment{'s' if n != 1 else ''} saved next to your drafts)." if n else ".")
        if notes:
            text += " Note: " + "; ".join(notes) + "."
        if kept is not None:
            text += (f" Your previous draft was kept in {kept}; File \u203a Open opens it "
                     "again.")
            self.show_status(f"Your previous draft was kept in {kept}.")
        self.sending.banner("warning" if notes else "info", text)

    def shortcuts(self) -> list[tuple[str, str]]:
        """(what, keys) for every action of the window that has a shortcut."""
        out = []
        for act in self.window.actions() + self.window.pane_actions:
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText)
                             for k in act.shortcuts() if not k.isEmpty())
            row = (act.text().replace("&", "").rstrip("\u2026"), keys)
            if keys and row not in out:
                out.append(row)
        return out

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{html.escape(what)}</td><td>&nbsp;&nbsp;<b>{html.escape(keys)}"
                       "</b></td></tr>" for what, keys in self.shortcuts())
        QMessageBox.information(
            self.window, "Keyboard shortcuts",
            f"<table>{rows}</table><p>In the compose form, Tab moves to the next field and "
            "Alt with the underlined letter of a label goes to its field; Delete removes "
            "the selected attachment, header or received message.</p>")

    def about(self) -> None:
        from mailgui import __version__

        QMessageBox.about(
            self.window, "About mailgui",
            f"<b>mailgui {__version__}</b><br>A desktop email composer for developers and "
            "testers, on top of mailcore (Django's django.core.mail without Django).<br><br>"
            f"Config: {self.paths.config_dir}<br>Data: {self.paths.data_dir}",
        )

    # -- quit -----------------------------------------------------------------------------
    def confirm_quit_during_send(self) -> str:
        """"wait" or "cancel": a message is going out while the person quits (a dialog;
        tests replace it). Wait is the default: nothing is given up by pressing Enter."""
        box = QMessageBox(QMessageBox.Icon.Question, "A message is being sent",
                          "A message is being sent. Quit now and the send is cancelled.",
                          parent=self.window)
        box.setInformativeText("Wait for it to finish (mailgui then quits), or cancel the "
                               "send and quit?")
        wait = box.addButton("&Wait", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("&Cancel the send and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(wait)
        box.setEscapeButton(wait)
        box.exec()
        return "wait" if box.clickedButton() is wait else "cancel"

    def _may_close(self) -> bool:
        """Before the window closes: during a send the person chooses to wait for it (the
        window closes once it is over) or to cancel it and quit."""
        if self._shut_down or not self.started or not self.sending.sending:
            return True
        if self.confirm_quit_during_send() == "cancel":
            return True
        if not self._quit_after_send:
            self._quit_after_send = True
            self.sending.finished.connect(self._send_over_then_quit)
        self.show_status("mailgui quits when the message has been sent.")
        return False

    def _send_over_then_quit(self, outcome: object) -> None:
        if not self._quit_after_send or self.sending.sending:
            return
        self._quit_after_send = False
        self.sending.finished.disconnect(self._send_over_then_quit)
        if getattr(outcome, "ok", False):
            QTimer.singleShot(0, self.window.close)
        else:  # what went wrong is on screen: the person reads it, then quits
            self.show_status("The message was not sent, so mailgui did not quit.")

    def shutdown(self) -> None:
        """Start quitting and return at once: the draft and the settings go to the file lane,
        a send is cancelled, the inbox process is told to stop. ``quit_ready`` is emitted
        when both writes are back; a write that failed is said first (``warn``). Idempotent."""
        if self._shut_down:
            return
        self.start()  # (a staged start not finished yet: the draft is saved as usual)
        self._shut_down = True
        self.compose.autosave.stop()
        self.settings.update(target=self.window.target.currentData(),
                             splitter=self.window.split.sizes())
        self._quit_writes = {"save the draft", "save the settings"}
        self.compose.save(force=True,
                          on_done=lambda _r: self._quit_write_back("save the draft"),
                          on_error=lambda exc: self._quit_write_back("save the draft", exc))
        what = "save the settings"
        self.runner.write(atomic_write_json, self.paths.settings_file, dict(self.settings),
                          on_done=lambda _r: self._quit_write_back(what),
                          on_error=lambda exc: self._quit_write_back(what, exc))
        QTimer.singleShot(QUIT_WRITES_MS, self._end_quit)
        if self.sending.job is not None:
            self.sending.job.cancel()
        self.inbox.stop()  # the process ends behind (finish() waits for it)

    def _quit_write_back(self, what: str, exc: BaseException | None = None) -> None:
        if exc is not None:
            from mailgui.jobs import failure_sentence

            self._quit_problems.append(failure_sentence(what, exc))
        self._quit_writes.discard(what)
        if not self._quit_writes:
            if self._quit_problems:
                self.warn(" ".join(self._quit_problems))
            self._end_quit()

    def _end_quit(self) -> None:
        if not self._quit_ended:
            self._quit_ended = True
            self.quit_ready.emit()

    def warn(self, text: str) -> None:
        """Tell the person something went wrong while quitting (tests answer this)."""
        QMessageBox.warning(self.window, "mailgui", text)

    def finish(self, timeout: float = 15.0) -> bool:
        """After ``shutdown`` (and the event loop): wait, up to ``timeout`` seconds in all,
        for the writes, the workers and the inbox process to end; True if all did. The
        results that come back meanwhile are delivered (a failed write is still said)."""
        deadline = time.monotonic() + timeout
        if not self.started:
            return True

        def left_ms() -> int:
            return max(0, int((deadline - time.monotonic()) * 1000))

        ended = self.runner.wait_writes(left_ms())
        ended = self.inbox.finish(left_ms() / 1000) and ended
        ended = self.runner.wait(left_ms()) and ended
        QCoreApplication.sendPostedEvents()  # queued results: error paths run
        return ended


def singleshot(ms: int, fn: object) -> None:
    QTimer.singleShot(ms, fn)
