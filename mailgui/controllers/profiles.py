"""Profiles: the "Send via" switch, the profile editor, keyring status, test connection."""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QListWidgetItem, QMessageBox, QWidget

from mailgui.jobs import JobRunner, TestConnectionJob
from mailgui.model.errors import describe_error
from mailgui.model.profiles import DEFAULT_PORTS, Profile, ProfileStore
from mailgui.model.secrets import KeyringStatus, KeyringUnavailable, SecretStore
from mailgui.model.sending import transcript_line
from mailgui.views.profiles import PasswordDialog, ProfileDialog


class ProfilesController(QObject):
    target_changed = Signal(object)  # the Profile messages now go to
    profiles_changed = Signal()
    status = Signal(str)
    keyring_checked = Signal(object)  # KeyringStatus

    def __init__(self, combo: QComboBox, detail: Callable[[str], None], runner: JobRunner,
                 store: ProfileStore, secrets: SecretStore, parent_widget: QWidget) -> None:
        super().__init__(combo)
        self.combo = combo
        self.detail = detail
        self.runner = runner
        self.store = store
        self.secrets = secrets
        self.parent_widget = parent_widget
        self.keyring_status: KeyringStatus | None = None
        self.inbox_port = 0
        self.inbox_off = False  # mailgui --no-inbox
        self.session_passwords: dict[str, str] = {}
        self._refused: set[str] = set()  # profiles whose typed password the server refused
        self.dialog: ProfileDialog | None = None
        self._editing: Profile | None = None
        self._test_job: TestConnectionJob | None = None
        self._target_locked = False
        # passwords saved in the editor before the keyring check was done: stored (or kept
        # for the session) as soon as it is
        self._pending_passwords: dict[str, tuple[Profile, str]] = {}
        combo.currentIndexChanged.connect(self._combo_changed)
        self.fill_combo()

    # -- keyring -------------------------------------------------------------------------
    def probe_keyring(self) -> None:
        self.runner.run(self.secrets.status, on_done=self._keyring_probed)

    def _keyring_probed(self, status: KeyringStatus) -> None:
        self.keyring_status = status
        pending, self._pending_passwords = self._pending_passwords, {}
        for profile, password in pending.values():
            self._store_password(profile, password)
        self.keyring_checked.emit(status)
        if self.dialog is not None:
            self._show_keyring_status()

    @property
    def keyring_usable(self) -> bool | None:
        return None if self.keyring_status is None else self.keyring_status.usable

    # -- the "Send via" switch ------------------------------------------------------------
    def fill_combo(self, select_id: str | None = None) -> None:
        current = select_id or self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        profiles = self.store.all()
        builtin_tail = [p for p in profiles[1:] if p.builtin]
        user = [p for p in profiles if not p.builtin]
        self.combo.addItem(profiles[0].name, profiles[0].id)
        if user:
            self.combo.insertSeparator(self.combo.count())
            for p in user:
                self.combo.addItem(p.name, p.id)
        self.combo.insertSeparator(self.combo.count())
        for p in builtin_tail:
            self.combo.addItem(p.name, p.id)
        for i in range(self.combo.count()):
            pid = self.combo.itemData(i)
            if pid:
                profile = self.store.get(pid)
                self.combo.setItemData(i, profile.describe() if profile else "", 3)  # tooltip
        index = self.combo.findData(current) if current else -1
        self.combo.setCurrentIndex(index if index >= 0 else 0)
        self.combo.blockSignals(False)
        self._combo_changed()

    def select(self, profile_id: str) -> bool:
        index = self.combo.findData(profile_id)
        if index < 0:
            return False
        self.combo.setCurrentIndex(index)
        return True

    def lock_target(self, locked: bool) -> None:
        """While a message is being sent, "Send via" and the editor's Use button are off."""
        self._target_locked = locked
        self.combo.setEnabled(not locked)
        if self.dialog is not None:
            self.dialog.use.setEnabled(not locked and self._editing is not None)

    def current(self) -> Profile | None:
        """The profile the next message goes to (the inbox with its live port)."""
        profile = self.store.get(self.combo.currentData() or "")
        if profile is None:
            return None
        if profile.kind == "inbox":
            profile = copy.copy(profile)
            profile.port = self.inbox_port
        return profile

    def _combo_changed(self, *_args: object) -> None:
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
        self._combo_changed()

    # -- passwords ----------------------------------------------------------------------
    def ask_password(self, profile: Profile, reason: str) -> str | None:
        """Ask the person (dialog); remembers it for the session if they tick the box."""
        if profile.id in self._refused:
            reason = f"The server refused the last password you typed. {reason}"
        answer = PasswordDialog.ask(self.parent_widget, profile.name, reason)
        if answer is None:
            return None
        self._refused.discard(profile.id)
        password, remember = answer
        if remember:
            self.session_passwords[profile.id] = password
        return password

    def password_refused(self, profile_id: str, sentence: str) -> str:
        """The server refused the password of a profile (a send or a connection test): it is
        never tried again by itself. Returns ``sentence`` (describe_error's) fitted to where
        the password comes from."""
        self.session_passwords.pop(profile_id, None)
        if self.keyring_usable is not False:
            return sentence  # the next try takes the keyring's, which the editor can replace
        self._refused.add(profile_id)  # no keyring: the editor has no password field
        return sentence.replace(" Check them in the profile.",
                                " Check the user name in the profile;") + (
            " the next test or send asks for the password again.")

    # -- the editor -----------------------------------------------------------------------
    def open_dialog(self) -> ProfileDialog:
        if self.dialog is None:
            dialog = ProfileDialog(self.parent_widget)
            self.dialog = dialog
            dialog.list.currentRowChanged.connect(self._row_changed)
            dialog.new.clicked.connect(self.new_profile)
            dialog.duplicate.clicked.connect(self.duplicate_profile)
            dialog.delete.clicked.connect(self.delete_profile)
            dialog.save.clicked.connect(self.save_profile)
            dialog.revert.clicked.connect(lambda: self._load_form(self._editing))
            dialog.test.clicked.connect(self._test_clicked)
            dialog.use.clicked.connect(self._use_profile)
            dialog.kind.currentIndexChanged.connect(self._kind_changed)
            dialog.security.currentIndexChanged.connect(self._security_changed)
            dialog.client_cert.browse.clicked.connect(
                lambda: self._browse(dialog.client_cert.edit, "Client certificate (PEM)"))
            dialog.client_key.browse.clicked.connect(
                lambda: self._browse(dialog.client_key.edit, "Client key (PEM)"))
            dialog.ca_file.browse.clicked.connect(
                lambda: self._browse(dialog.ca_file.edit, "CA certificate (PEM)"))
            dialog.file_path.browse.clicked.connect(
                lambda: self._browse(dialog.file_path.edit, "Folder", folder=True))
            dialog.finished.connect(self._dialog_closed)
            dialog.can_close = self._leave_form
        self._show_keyring_status()
        self._fill_list(self.combo.currentData())
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _dialog_closed(self, *_args: object) -> None:
        if self._test_job is not None:
            self._test_job.cancel()

    def _show_keyring_status(self) -> None:
        d = self.dialog
        if d is None:
            return
        status = self.keyring_status
        if status is None:
            # Where a typed password would go is not known yet: no typing until it is.
            d.keyring_status.setText("Checking the system keyring\u2026")
            d.password.setEnabled(False)
            d.password.setPlaceholderText("checking the keyring\u2026")
            return
        d.keyring_status.setText(status.sentence)
        d.keyring_status.setStyleSheet("" if status.usable else "color: #9b1c1c; font-weight: 600;")
        d.password.setEnabled(status.usable)
        d.password.setPlaceholderText(
            "" if status.usable else "asked when sending (no secure keyring)")

    def _fill_list(self, select_id: str | None = None) -> None:
        d = self.dialog
        assert d is not None
        d.list.blockSignals(True)
        d.list.clear()
        for p in self.store.user_profiles():
            item = QListWidgetItem(f"{p.name}\n{p.describe()}")
            item.setData(256, p.id)
            d.list.addItem(item)
        d.list.blockSignals(False)
        row = 0
        for i in range(d.list.count()):
            if d.list.item(i).data(256) == select_id:
                row = i
        if d.list.count():
            d.list.setCurrentRow(row)
            self._row_changed(row)
        else:
            self._load_form(None)

    def _row_changed(self, row: int) -> None:
        d = self.dialog
        if d is None or row < 0 or row >= d.list.count():
            return
        wanted = d.list.item(row).data(256)
        if self._editing is not None and wanted != self._editing.id and not self._leave_form():
            self._select_row(self._editing.id)  # stay on the profile being edited
            return
        self._load_form(self.store.get(wanted))
        self._select_row(wanted)

    def _select_row(self, profile_id: str) -> None:
        d = self.dialog
        assert d is not None
        for i in range(d.list.count()):
            if d.list.item(i).data(256) == profile_id:
                d.list.blockSignals(True)
                d.list.setCurrentRow(i)
                d.list.blockSignals(False)
                return

    def form_changed(self) -> bool:
        """True if the form holds edits that are not saved (a typed password counts)."""
        d = self.dialog
        if d is None or self._editing is None or self.store.get(self._editing.id) is None:
            return False
        form = self.form_profile()
        return bool(d.password.text()) or (
            form is not None and form.to_dict() != self._editing.to_dict())

    def ask_unsaved(self, name: str) -> str:
        """"save", "discard" or "cancel" (a dialog; tests replace it)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"The profile \u201c{name}\u201d has changes that are not saved.",
                          parent=self.dialog)
        box.setInformativeText("Save them before leaving it?")
        box.setStandardButtons(QMessageBox.StandardButton.Save
                               | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(
            QMessageBox.StandardButton(answer), "cancel")

    def _leave_form(self) -> bool:
        """Before the form shows another profile or the dialog closes: True to go on."""
        if not self.form_changed():
            return True
        editing, form = self._editing, self.form_profile()
        assert editing is not None and form is not None
        answer = self.ask_unsaved(form.name)
        if answer == "cancel":
            return False
        if answer == "save":
            d = self.dialog
            assert d is not None
            d.list.blockSignals(True)  # saving refills the list; the caller picks the row
            try:
                return self.save_profile() is not None
            finally:
                d.list.blockSignals(False)
        self._load_form(editing)  # discard: the form shows what is saved
        return True

    def _load_form(self, profile: Profile | None) -> None:
        d = self.dialog
        assert d is not None
        self._editing = profile
        d.form.setEnabled(profile is not None)
        d.duplicate.setEnabled(profile is not None)
        d.delete.setEnabled(profile is not None)
        d.save.setEnabled(profile is not None)
        d.use.setEnabled(profile is not None and not self._target_locked)
        d.revert.setEnabled(profile is not None)
        test = self._test_job
        if test is not None and (profile is None or test.profile.id != profile.id):
            # the form now shows another profile: that test's result belongs to no form
            test.cancel()
            self._test_over(test)
        d.test_result.setText("" if profile else "No profiles yet. Press New to add an SMTP "
                              "server or a test backend.")
        d.test_transcript.hide()
        shown = profile or Profile("", "smtp", port=DEFAULT_PORTS["starttls"],
                                   security="starttls", timeout=30)  # greyed out: no values
        self._show_fields(shown)
        if profile is None:
            return
        self._kind_changed()
        self._password_note(profile)

    def _show_fields(self, profile: Profile) -> None:
        d = self.dialog
        assert d is not None
        d.name.setText(profile.name)
        d.kind.setCurrentIndex(max(0, d.kind.findData(profile.kind)))
        d.from_email.setText(profile.from_email)
        d.host.setText(profile.host)
        d.security.blockSignals(True)
        d.security.setCurrentIndex(max(0, d.security.findData(profile.security)))
        d.security.blockSignals(False)
        d.port.setValue(int(profile.port or DEFAULT_PORTS[profile.security]))
        d.username.setText(profile.username)
        d.password.clear()
        d.timeout.setValue(float(profile.timeout or 30))
        d.client_cert.edit.setText(profile.client_cert)
        d.client_key.edit.setText(profile.client_key)
        d.ca_file.edit.setText(profile.ca_file)
        d.file_path.edit.setText(profile.file_path)

    def _password_note(self, profile: Profile) -> None:
        d = self.dialog
        assert d is not None
        d.password_note.setText("")
        if profile.id in self._pending_passwords:
            d.password_note.setText(
                "The password will be stored as soon as the keyring check is done.")
        elif profile.kind == "smtp" and self.keyring_usable:
            pid = profile.id
            self.runner.run(self._has_password, pid,
                            on_done=lambda has, pid=pid: self._password_known(pid, has))
        elif profile.kind == "smtp" and self.keyring_usable is False:
            d.password_note.setText("No secure keyring: the password is asked when sending.")

    def _has_password(self, profile_id: str) -> bool:
        try:
            return self.secrets.get(profile_id) is not None
        except Exception:  # noqa: BLE001 - KeyringUnavailable, or a backend's D-Bus error
            return False

    def _password_known(self, profile_id: str, has: bool) -> None:
        if self.dialog is None or self._editing is None or self._editing.id != profile_id:
            return
        self.dialog.password_note.setText(
            "A password is saved in the system keyring. Type a new one to replace it."
            if has else "No password saved yet."
        )

    def _kind_changed(self, *_args: object) -> None:
        d = self.dialog
        if d is None:
            return
        kind = d.kind.currentData()
        d.smtp_group.setVisible(kind == "smtp")
        d.file_group.setVisible(kind == "file")
        d.test.setVisible(kind == "smtp")
        d.test_result.setVisible(kind == "smtp" or self._editing is None)

    def _security_changed(self, *_args: object) -> None:
        d = self.dialog
        if d is None:
            return
        if d.port.value() in DEFAULT_PORTS.values():
            d.port.setValue(DEFAULT_PORTS[d.security.currentData()])

    def _browse(self, edit: object, title: str, folder: bool = False) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self.dialog, title, edit.text())
        else:
            path, _f = QFileDialog.getOpenFileName(self.dialog, title, edit.text())
        if path:
            edit.setText(path)

    def form_profile(self) -> Profile | None:
        """The profile as the form shows it now (not saved yet)."""
        d = self.dialog
        if d is None or self._editing is None:
            return None
        p = copy.deepcopy(self._editing)
        p.name = d.name.text().strip() or "Unnamed profile"
        p.kind = d.kind.currentData()
        p.from_email = d.from_email.text().strip()
        p.host = d.host.text().strip()
        p.port = d.port.value()
        p.security = d.security.currentData()
        p.username = d.username.text().strip()
        p.timeout = d.timeout.value()
        p.client_cert = d.client_cert.edit.text().strip()
        p.client_key = d.client_key.edit.text().strip()
        p.ca_file = d.ca_file.edit.text().strip()
        p.file_path = d.file_path.edit.text().strip()
        return p

    def new_profile(self) -> None:
        profile = Profile("New SMTP server", "smtp", port=587, security="starttls")
        self.store.upsert(profile)
        self._after_change(profile.id)
        if self.dialog is not None:
            self.dialog.name.setFocus()
            self.dialog.name.selectAll()

    def duplicate_profile(self) -> None:
        if self._editing is None:
            return
        twin = self.store.duplicate(self._editing.id)
        self.status.emit(f"Duplicated as \u201c{twin.name}\u201d (the password is not copied).")
        self._after_change(twin.id)

    def confirm_delete(self, profile: Profile) -> bool:
        answer = QMessageBox.question(
            self.dialog, "Delete profile",
            f"Delete the profile \u201c{profile.name}\u201d and its saved password?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def delete_profile(self) -> None:
        profile = self._editing
        if profile is None or not self.confirm_delete(profile):
            return
        self.store.delete(profile.id)
        self.session_passwords.pop(profile.id, None)
        if self.keyring_usable:
            self.runner.run(self._forget_password, profile.id)
        self._after_change(None)

    def _forget_password(self, profile_id: str) -> None:
        try:
            self.secrets.delete(profile_id)
        except KeyringUnavailable:
            pass

    def save_profile(self) -> Profile | None:
        d = self.dialog
        profile = self.form_profile()
        if d is None or profile is None:
            return None
        if profile.kind == "smtp" and not profile.host:
            d.test_result.setText("Enter the SMTP host name.")
            d.host.setFocus()
            return None
        if profile.kind == "file" and not profile.file_path:
            d.test_result.setText("Choose a folder for the message files.")
            return None
        self.store.upsert(profile)
        self._editing = profile  # what the form shows is saved now
        password = d.password.text()
        if password and profile.kind == "smtp":
            # a new password replaces one remembered for this session (which was tried first)
            self.session_passwords.pop(profile.id, None)
            if self.keyring_status is None:
                self._pending_passwords[profile.id] = (profile, password)  # note: _load_form
            else:
                self._store_password(profile, password)
            d.password.clear()
        self.status.emit(f"Saved the profile \u201c{profile.name}\u201d.")
        self._after_change(profile.id)
        return profile

    def _store_password(self, profile: Profile, password: str) -> None:
        """In the keyring (on the worker) if there is one, else in memory for the session."""
        if self.keyring_usable:
            self.runner.run(self.secrets.set, profile.id, password,
                            on_done=lambda _r: self._password_saved(profile),
                            on_error=self._password_not_saved)
            return
        self.session_passwords[profile.id] = password
        if self.dialog is not None and self._editing and self._editing.id == profile.id:
            self.dialog.password_note.setText(
                "Kept in memory until mailgui quits (no secure keyring).")
        else:
            self.status.emit(f"The password of \u201c{profile.name}\u201d is kept in memory "
                             "until mailgui quits (no secure keyring).")

    def _password_saved(self, profile: Profile) -> None:
        self.status.emit(f"The password of \u201c{profile.name}\u201d is in the system keyring.")
        if self.dialog is not None and self._editing and self._editing.id == profile.id:
            self.dialog.password_note.setText(
                "A password is saved in the system keyring. Type a new one to replace it.")

    def _password_not_saved(self, exc: BaseException) -> None:
        text = f"The password could not be saved in the keyring: {exc}"
        self.status.emit(text)
        if self.dialog is not None:
            self.dialog.password_note.setText(text)

    def _after_change(self, select_id: str | None) -> None:
        self.fill_combo()
        self.profiles_changed.emit()
        if self.dialog is not None:
            self._fill_list(select_id)

    def _use_profile(self) -> None:
        if self._target_locked:  # a message is being sent: "Send via" stays as it is
            return
        profile = self.save_profile()
        if profile is not None:
            self.select(profile.id)
            if self.dialog is not None:
                self.dialog.accept()

    # -- test connection ----------------------------------------------------------------
    def _test_clicked(self) -> None:
        """Test connection, or Cancel test while one runs (a server may never answer)."""
        job = self._test_job
        if job is None:
            self.test_connection()
            return
        job.cancel()
        if self.dialog is not None:
            self.dialog.test.setEnabled(False)
            self.dialog.test_result.setText("Cancelling\u2026")

    def test_connection(self, password: str | None = None) -> TestConnectionJob | None:
        d = self.dialog
        profile = self.form_profile()
        if d is None or profile is None or self._test_job is not None:
            return None
        typed = d.password.text()
        if password is None:
            password = typed or self.session_passwords.get(profile.id)
        if profile.needs_password and password is None and self.keyring_usable is False:
            password = self.ask_password(profile, self.keyring_status.sentence)
            if password is None:
                return None
        return self._start_test(profile, password)

    def _start_test(self, profile: Profile, password: str | None) -> TestConnectionJob | None:
        d = self.dialog
        if d is None:
            return None
        d.test.setText("Cancel test")
        d.test.setAccessibleName("Cancel the connection test")
        d.test_result.setStyleSheet("")
        d.test_result.setText(f"Connecting to {profile.host}:{profile.port}\u2026")
        d.test_transcript.clear()
        d.test_transcript.show()
        job = TestConnectionJob(profile, password=password,
                                secrets=self.secrets if self.keyring_usable is not False else None)
        job.signals.transcript.connect(
            lambda ev, text, j=job: self._test_transcript(j, ev, text))
        job.signals.finished.connect(lambda outcome, j=job: self._tested(j, outcome))
        job.signals.failed.connect(lambda exc, j=job: self._test_crashed(j, exc))
        self._test_job = job
        self.runner.start(job)
        return job

    def _test_transcript(self, job: TestConnectionJob, event: str, text: str) -> None:
        if job is not self._test_job or self.dialog is None:
            return
        d = self.dialog
        d.test_transcript.appendPlainText(transcript_line(event, text))
        where = f"{job.profile.host}:{job.profile.port}"
        step = {"tls": f"TLS is on; talking to {where}\u2026"}.get(event)
        if event == "client" and text.upper().startswith("AUTH"):
            step = f"Logging in to {where}, waiting for its answer\u2026"
        elif event == "client" and text.upper().startswith("STARTTLS"):
            step = f"Starting TLS with {where}\u2026"
        elif event == "server" and not d.test_result.text().startswith(("Logging", "TLS")):
            step = f"Connected to {where}, talking\u2026"
        if step:
            d.test_result.setText(step)

    def _test_over(self, job: TestConnectionJob) -> bool:
        """Forget ``job``; False if its result is not to be shown (superseded)."""
        if job is not self._test_job:
            return False
        self._test_job = None
        if self.dialog is None:
            return False
        self.dialog.test.setEnabled(True)
        self.dialog.test.setText("Test connection")
        self.dialog.test.setAccessibleName("Test connection")
        return True

    def _tested(self, job: TestConnectionJob, outcome: object) -> None:
        if not self._test_over(job):
            return
        d = self.dialog
        assert d is not None
        if job.canceller.cancelled:
            d.test_result.setStyleSheet("")
            d.test_result.setText("Not tested: cancelled.")
            return
        if outcome.password_needed:
            # the password of the profile that was tested, for that profile again
            password = self.ask_password(job.profile, outcome.password_needed)
            if password is not None:
                self._start_test(job.profile, password)
            else:
                d.test_result.setText("Not tested: no password.")
            return
        sentence = outcome.sentence
        if outcome.kind == "auth":
            sentence = self.password_refused(job.profile.id, sentence)
        self._show_test_result(outcome.ok, sentence, outcome.reply)

    def _test_crashed(self, job: TestConnectionJob, exc: BaseException) -> None:
        if self._test_over(job):
            self._show_test_result(False, describe_error(exc, job.profile).sentence, "")

    def _show_test_result(self, ok: bool, sentence: str, reply: str) -> None:
        d = self.dialog
        assert d is not None
        reply = f"\n{reply}" if reply and not ok else ""
        d.test_result.setText(("\u2714 " if ok else "\u2716 ") + sentence + reply)
        d.test_result.setStyleSheet("color: #1e6b34;" if ok else "color: #9b1c1c;")
