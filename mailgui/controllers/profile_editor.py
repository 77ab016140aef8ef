"""The Profiles dialog: the list of the user's profiles and the form that edits one (new,
duplicate, delete, save, revert, "Use for this message"), where a typed password goes, and
edits that are never dropped silently. Profile saves run on the worker pool; a failed save is
shown and keeps the edits. The "Test connection" row is ``ConnectionTestController``'s; the
DKIM section (key generated or imported into the keyring, the TXT record to publish) is
``DKIMSectionController``'s; the OAuth2 section (provider presets, sign in in the browser on the
worker, sign out) is ``OAuthSectionController``'s."""

from __future__ import annotations

import copy
import webbrowser
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QLineEdit, QMessageBox, QWidget

from mailgui.controllers.connection_test import ConnectionTestController
from mailgui.controllers.passwords import PasswordsController
from mailgui.controllers.send_target import SendTargetController
from mailgui.jobs import JobRunner, TestConnectionJob
from mailgui.model import dkim, oauth
from mailgui.model.passwords import PasswordBroker
from mailgui.model.profiles import DEFAULT_PORTS, Profile, ProfileStore
from mailgui.model.sending import ConnectionOutcome
from mailgui.views.common import BlockSignals
from mailgui.views.profiles import ProfileDialog

KEYRING_HOLDS_ONE = "A password is saved in the system keyring. Type a new one to replace it."
KEPT_IN_MEMORY = "Kept in memory until mailgui quits (no secure keyring)."
NO_DKIM_KEY = "No key yet. Generate one, or import a PEM private key."
DKIM_NO_KEYRING = ("No secure keyring: a DKIM key can't be kept, so this profile can't sign.")


def key_stored(key: dkim.KeyInfo) -> str:
    return f"Key stored in the keyring ({key.description})."


class DKIMSectionController(QObject):
    """The DKIM section of the profile editor: the defaults of domain and selector, the TXT
    record to publish (updated as they are typed), and the key, which is generated, imported
    and read back from the keyring on the worker pool, never in the form or the profile file.
    A key made or imported is stored at once (it may be published before the profile is
    saved); the profile's id names it."""

    status = Signal(str)

    def __init__(self, dialog: ProfileDialog, runner: JobRunner, broker: PasswordBroker,
                 form: Callable[[], Profile | None]) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.runner = runner
        self.broker = broker
        self.form = form  # the profile as the form shows it
        self.keys: dict[str, dkim.KeyInfo | None] = {}  # profile id -> its key, once known
        self.working: set[str] = set()  # profiles whose key is being read, made or imported
        d = dialog
        d.dkim_enabled.toggled.connect(self._enabled_toggled)
        for edit in (d.dkim_domain, d.dkim_selector, d.from_email, d.username):
            edit.textChanged.connect(self.refresh)
        d.dkim_generate.clicked.connect(self.generate)
        d.dkim_import.clicked.connect(self._import_clicked)
        d.dkim_copy_name.clicked.connect(lambda: self._copy(d.dkim_record_name.text(), "name"))
        d.dkim_copy_value.clicked.connect(
            lambda: self._copy(d.dkim_record_value.text(), "value"))

    def _current(self) -> Profile | None:
        profile = self.form()
        return profile if profile is not None and profile.kind == "smtp" else None

    def _shows(self, profile_id: str) -> bool:
        profile = self.form()
        return profile is not None and profile.id == profile_id

    def load(self, profile: Profile | None) -> None:
        """The form shows ``profile`` now: ask the keyring (on the worker) for its key."""
        self.refresh()
        if profile is None:
            return
        usable = self.broker.keyring_usable
        if usable is None:
            self.dialog.show_dkim_state("Checking the system keyring\u2026", can_change=False)
        elif not usable:
            self.dialog.show_dkim_state(DKIM_NO_KEYRING, ok=False, can_change=False)
        elif profile.id not in self.working:
            self._ask_keyring(profile.id)
        else:
            self.dialog.show_dkim_state("Working on the key\u2026", can_change=False)

    def _ask_keyring(self, profile_id: str) -> None:
        self.working.add(profile_id)
        self.dialog.show_dkim_state("Asking the keyring for a DKIM key\u2026", can_change=False)
        self.runner.run(dkim.stored_key, self.broker.secrets, profile_id,
                        on_done=lambda key, pid=profile_id: self._key_known(pid, key),
                        on_error=lambda exc, pid=profile_id: self._key_failed(pid, exc))

    def _key_known(self, profile_id: str, key: dkim.KeyInfo | None) -> None:
        self.working.discard(profile_id)
        self.keys[profile_id] = key
        if self._shows(profile_id):
            self.dialog.show_dkim_state(key_stored(key) if key else NO_DKIM_KEY,
                                        ok=True if key else None)
            self.refresh()

    def _key_failed(self, profile_id: str, exc: BaseException) -> None:
        self.working.discard(profile_id)
        if self._shows(profile_id):
            self.dialog.show_dkim_state(str(exc) or type(exc).__name__, ok=False)
            self.refresh()

    def refresh(self, *_args: object) -> None:
        """The placeholders and the TXT record as the form shows domain and selector now."""
        d = self.dialog
        profile = self._current()
        if profile is None:
            d.show_dkim_defaults("", dkim.default_selector())
            d.show_dkim_record("", "")
            return
        d.show_dkim_defaults(dkim.default_domain(profile), dkim.default_selector())
        key = self.keys.get(profile.id)
        d.show_dkim_record(dkim.record_name(dkim.selector_of(profile), dkim.domain_of(profile)),
                           key.record if key else "")

    def _enabled_toggled(self, on: bool) -> None:
        """Ticking "Sign with DKIM" writes the defaults into empty fields, so the record
        published stays right when the From address changes later."""
        profile = self._current()
        if not on or profile is None:
            return
        d = self.dialog
        if not d.dkim_domain.text().strip():
            d.dkim_domain.setText(dkim.default_domain(profile))
        if not d.dkim_selector.text().strip():
            d.dkim_selector.setText(dkim.default_selector())

    # -- the key ---------------------------------------------------------------------------
    def confirm_replace(self, name: str) -> bool:
        """A key is stored: replace it? (a dialog; tests replace it)"""
        answer = QMessageBox.question(
            self.dialog, "Replace the DKIM key",
            f"The profile \u201c{name}\u201d already has a DKIM key. Replace it? Mail signed "
            "with the new key only verifies once its TXT record is published.")
        return answer == QMessageBox.StandardButton.Yes

    def choose_key_file(self) -> str:
        """The PEM file to import, or "" (a dialog; tests replace it)."""
        path, _f = QFileDialog.getOpenFileName(self.dialog, "Import a DKIM private key", "",
                                               "PEM private keys (*.pem *.key);;All files (*)")
        return path

    def _ready(self) -> Profile | None:
        """The profile whose key may change now, if any (asked to replace a stored key)."""
        profile = self._current()
        if profile is None or not self.broker.keyring_usable or profile.id in self.working:
            return None
        if self.keys.get(profile.id) is not None and not self.confirm_replace(profile.name):
            return None
        return profile

    def generate(self) -> None:
        profile = self._ready()
        if profile is None:
            return
        self._change(profile, f"Generating a {dkim.KEY_BITS}-bit RSA key\u2026",
                     dkim.new_key, self.broker.secrets, profile.id)

    def _import_clicked(self) -> None:
        profile = self._current()
        if profile is None:
            return
        path = self.choose_key_file()
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        profile = self._ready()
        if profile is None:
            return
        self._change(profile, "Reading the key\u2026", dkim.import_key,
                     self.broker.secrets, profile.id, path)

    def _change(self, profile: Profile, doing: str, fn: Callable[..., dkim.KeyInfo],
                *args: object) -> None:
        pid, name = profile.id, profile.name
        self.working.add(pid)
        self.dialog.show_dkim_state(doing, can_change=False)

        def done(key: dkim.KeyInfo) -> None:
            self._key_known(pid, key)
            self.status.emit(f"The DKIM key of \u201c{name}\u201d is in the system keyring. "
                             "Publish its TXT record before sending signed mail.")

        def failed(exc: BaseException) -> None:
            self.working.discard(pid)
            text = str(exc) if isinstance(exc, dkim.DKIMKeyError) else (
                f"The DKIM key could not be stored in the keyring: {exc}")
            if self._shows(pid):
                key = self.keys.get(pid)
                self.dialog.show_dkim_state(text, ok=False)
                self.refresh()
                if key is not None:  # the key stored before is still the one in use
                    self.dialog.dkim_state.setText(
                        f"{text} The key stored before stays ({key.description}).")
            self.status.emit(text)

        self.runner.run(fn, *args, on_done=done, on_error=failed,
                        what="keep the DKIM key in the keyring")

    def forget(self, profile_id: str) -> None:
        """The profile was deleted: its key goes from the keyring too (on the worker)."""
        self.keys.pop(profile_id, None)
        if self.broker.keyring_usable:
            self.runner.run(dkim.remove_key, self.broker.secrets, profile_id,
                            on_error=lambda exc: self.status.emit(
                                f"The DKIM key could not be removed from the keyring: {exc}"))

    def _copy(self, text: str, what: str) -> None:
        if text:
            QGuiApplication.clipboard().setText(text)
            self.status.emit(f"Copied the TXT record {what}.")


NOT_SIGNED_IN = "Not signed in."
OAUTH_NO_KEYRING = ("No secure keyring: an OAuth2 sign-in can't be kept, so this profile can't "
                    "log in.")


class OAuthSectionController(QObject):
    """The OAuth2 section of the profile editor. Choosing a provider fills in its SMTP server,
    issuer and scopes; "Sign in..." runs ``oauth.SignIn`` on the worker (the browser opens
    through ``open_browser``, a seam tests replace) and can be cancelled while it waits;
    "Sign out" revokes and removes the saved sign-in. The refresh token never reaches the
    GUI thread: only ``oauth.SavedSignIn`` (who, since when) does."""

    status = Signal(str)

    def __init__(self, dialog: ProfileDialog, runner: JobRunner, broker: PasswordBroker,
                 form: Callable[[], Profile | None]) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.runner = runner
        self.broker = broker
        self.form = form
        self.open_browser: Callable[[str], object] = webbrowser.open
        self.signed_in: dict[str, oauth.SavedSignIn | None] = {}  # profile id -> saved sign-in
        self.sign_in: oauth.SignIn | None = None  # the one waiting for the browser
        self.sign_in_for = ""  # its profile id
        d = dialog
        d.auth.currentIndexChanged.connect(self._auth_changed)
        d.oauth_provider.activated.connect(self._provider_chosen)
        d.oauth_sign_in.clicked.connect(self._sign_in_clicked)
        d.oauth_sign_out.clicked.connect(self.sign_out)

    def _current(self) -> Profile | None:
        profile = self.form()
        return profile if profile is not None and profile.kind == "smtp" else None

    def _shows(self, profile_id: str) -> bool:
        profile = self.form()
        return profile is not None and profile.id == profile_id

    def _auth_changed(self, *_args: object) -> None:
        d = self.dialog
        d.show_auth(d.auth.currentData(), smtp=d.kind.currentData() == "smtp")
        if d.auth.currentData() == "oauth2" and not d.oauth_scopes.text().strip():
            self._provider_chosen()  # a first switch to OAuth2 fills the provider's fields
        profile = self._current()
        if profile is not None and profile.uses_oauth and profile.id not in self.signed_in:
            self.load(profile)

    def _provider_chosen(self, *_args: object) -> None:
        """The person chose a provider: its SMTP server, issuer and scopes go into the form
        (a custom provider keeps what the form has)."""
        d = self.dialog
        key = d.oauth_provider.currentData()
        d.show_oauth_provider(key)
        provider = oauth.PROVIDERS[key]
        if key == "custom":
            return
        d.oauth_issuer.setEditText(provider.issuer)
        d.oauth_scopes.setText(provider.scopes)
        d.host.setText(provider.smtp_host)
        with BlockSignals(d.security):
            d.security.setCurrentIndex(max(0, d.security.findData(provider.smtp_security)))
        d.port.setValue(provider.smtp_port)

    # -- what the keyring holds ---------------------------------------------------------
    def load(self, profile: Profile | None) -> None:
        """The form shows ``profile``: ask the keyring (on the worker) for its sign-in."""
        if profile is None or not profile.uses_oauth:
            return
        if self.sign_in is not None and self.sign_in_for == profile.id:
            self.dialog.show_oauth_state("Waiting for the sign-in in your web browser\u2026",
                                         busy=True)
            return
        usable = self.broker.keyring_usable
        if usable is None:
            self.dialog.show_oauth_state("Checking the system keyring\u2026", can_sign_in=False)
            return
        if not usable:
            self.dialog.show_oauth_state(OAUTH_NO_KEYRING, ok=False, can_sign_in=False)
            return
        self._show_saved(profile.id)
        pid = profile.id
        self.runner.run(oauth.saved_sign_in, self.broker.secrets, pid,
                        on_done=lambda saved, pid=pid: self._known(pid, saved),
                        on_error=lambda exc, pid=pid: self._failed(pid, exc))

    def _show_saved(self, profile_id: str) -> None:
        saved = self.signed_in.get(profile_id)
        if profile_id not in self.signed_in:
            self.dialog.show_oauth_state("Asking the keyring for a saved sign-in\u2026",
                                         can_sign_in=False)
        elif saved is None:
            self.dialog.show_oauth_state(NOT_SIGNED_IN)
        else:
            self.dialog.show_oauth_state(saved.sentence, ok=True, signed_in=True)

    def _known(self, profile_id: str, saved: oauth.SavedSignIn | None) -> None:
        self.signed_in[profile_id] = saved
        if self._shows(profile_id) and self.sign_in_for != profile_id:
            self._show_saved(profile_id)

    def _failed(self, profile_id: str, exc: BaseException) -> None:
        if self._shows(profile_id):
            self.dialog.show_oauth_state(str(exc) or type(exc).__name__, ok=False,
                                         signed_in=bool(self.signed_in.get(profile_id)))

    # -- sign in, sign out ---------------------------------------------------------------
    def _sign_in_clicked(self) -> None:
        if self.sign_in is not None:
            self.cancel()
        else:
            self.start_sign_in()

    def start_sign_in(self) -> oauth.SignIn | None:
        """Sign in the profile as the form shows it (on the worker), None if none started."""
        profile = self._current()
        d = self.dialog
        if profile is None or not profile.uses_oauth or self.sign_in is not None:
            return None
        if not self.broker.keyring_usable:
            d.show_oauth_state(OAUTH_NO_KEYRING, ok=False, can_sign_in=False)
            return None
        if not profile.oauth_client_id:
            d.show_oauth_state("Enter the client ID of your app registration first (the "
                               "README says how to make one).", ok=False)
            d.oauth_client_id.setFocus()
            return None
        typed_secret = self._typed_secret(profile)
        flow = oauth.SignIn(profile, self.broker.secrets, open_browser=self.open_browser,
                            client_secret=typed_secret or None)
        self.sign_in, self.sign_in_for = flow, profile.id
        pid, name = profile.id, profile.name
        d.show_oauth_state("Waiting for the sign-in in your web browser\u2026", busy=True)

        def run() -> oauth.SavedSignIn:
            saved = flow.run()
            if typed_secret:  # it worked with this secret: keep it for the refreshes
                oauth.store_client_secret(self.broker.secrets, pid, typed_secret)
            return saved

        def done(saved: oauth.SavedSignIn) -> None:
            self._over(flow)
            self.signed_in[pid] = saved
            if self._shows(pid):
                d.oauth_client_secret.clear()
                if saved.account and not d.username.text().strip():
                    d.username.setText(saved.account)
                self._show_saved(pid)
            self.status.emit(f"\u201c{name}\u201d is signed in; the sign-in is kept in the "
                             "system keyring.")

        def failed(exc: BaseException) -> None:
            self._over(flow)
            text = str(exc) or type(exc).__name__
            if self._shows(pid):
                saved = self.signed_in.get(pid)
                self.dialog.show_oauth_state(text, ok=False, signed_in=saved is not None)
            self.status.emit(text)

        self.runner.run(run, on_done=done, on_error=failed, what="sign in")
        return flow

    def _over(self, flow: oauth.SignIn) -> None:
        if self.sign_in is flow:
            self.sign_in, self.sign_in_for = None, ""

    def cancel(self) -> None:
        """Stop waiting for the browser (Cancel sign-in, the dialog closing)."""
        if self.sign_in is not None:
            self.sign_in.cancel()
            self.dialog.show_oauth_state("Cancelling the sign-in\u2026", can_sign_in=False)

    def sign_out(self) -> None:
        profile = self._current()
        if profile is None or self.sign_in is not None or not self.broker.keyring_usable:
            return
        pid = profile.id
        self.dialog.show_oauth_state("Signing out\u2026", can_sign_in=False)

        def done(sentence: str) -> None:
            self.signed_in[pid] = None
            if self._shows(pid):
                self.dialog.show_oauth_state(f"{NOT_SIGNED_IN} {sentence}"
                                             if sentence != NOT_SIGNED_IN else NOT_SIGNED_IN)
            self.status.emit(sentence)

        self.runner.run(oauth.sign_out, profile, self.broker.secrets, on_done=done,
                        on_error=lambda exc, pid=pid: self._failed(pid, exc),
                        what="sign out")

    def _typed_secret(self, profile: Profile) -> str:
        """The client secret typed in (none for Microsoft: its field is hidden, and Entra ID
        refuses a secret from a public client)."""
        if profile.oauth_provider == "microsoft":
            return ""
        return self.dialog.oauth_client_secret.text()

    def store_secret(self, profile: Profile) -> None:
        """Save: a client secret typed in goes to the keyring (on the worker)."""
        secret = self._typed_secret(profile)
        if secret and profile.uses_oauth and self.broker.keyring_usable:
            self.dialog.oauth_client_secret.clear()
            self.runner.run(oauth.store_client_secret, self.broker.secrets, profile.id, secret,
                            on_error=lambda exc: self.status.emit(
                                f"The client secret could not be saved in the keyring: {exc}"))

    def forget(self, profile: Profile) -> None:
        """The profile was deleted: its sign-in is revoked and leaves the keyring (worker)."""
        self.signed_in.pop(profile.id, None)
        if self.sign_in is not None and self.sign_in_for == profile.id:
            self.sign_in.cancel()
        if self.broker.keyring_usable:
            self.runner.run(oauth.forget, profile, self.broker.secrets,
                            on_error=lambda exc: self.status.emit(
                                f"The OAuth2 sign-in of \u201c{profile.name}\u201d could not be "
                                f"removed from the keyring: {exc}"))


class ProfileEditorController(QObject):
    status = Signal(str)  # a status-bar message
    problem = Signal(str)  # something the person must see (a save that failed)

    def __init__(self, runner: JobRunner, store: ProfileStore, passwords: PasswordsController,
                 target: SendTargetController, parent_widget: QWidget) -> None:
        super().__init__(parent_widget)
        self.runner = runner
        self.store = store
        self.passwords = passwords
        self.broker = passwords.broker
        self.target = target
        self.parent_widget = parent_widget
        self.dialog: ProfileDialog | None = None
        self.tester: ConnectionTestController | None = None
        self.dkim: DKIMSectionController | None = None
        self.oauth: OAuthSectionController | None = None
        self._editing: Profile | None = None  # the profile the form shows, as saved
        self._refused_password: str | None = None  # typed, tested, refused by the server
        passwords.keyring_checked.connect(self._keyring_checked)
        target.locked_changed.connect(self._target_locked)

    # -- the dialog -----------------------------------------------------------------------
    def open_dialog(self) -> ProfileDialog:
        if self.dialog is None:
            self.dialog = dialog = ProfileDialog(self.parent_widget)
            self.tester = ConnectionTestController(dialog, self.runner, self.passwords)
            self.dkim = DKIMSectionController(dialog, self.runner, self.broker,
                                              self.form_profile)
            self.dkim.status.connect(self.status)
            self.oauth = OAuthSectionController(dialog, self.runner, self.broker,
                                                self.form_profile)
            self.oauth.status.connect(self.status)
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
            for path_edit, title, folder in (
                    (dialog.client_cert, "Client certificate (PEM)", False),
                    (dialog.client_key, "Client key (PEM)", False),
                    (dialog.ca_file, "CA certificate (PEM)", False),
                    (dialog.file_path, "Folder", True)):
                path_edit.browse.clicked.connect(
                    lambda _c=False, e=path_edit.edit, t=title, f=folder: self._browse(e, t, f))
            dialog.finished.connect(self._dialog_closed)
            dialog.can_close = self._leave_form
        self._show_keyring_status()
        self._fill_list(self.target.combo.currentData())
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _dialog_closed(self, *_args: object) -> None:
        if self.tester is not None:
            self.tester.cancel()
        if self.oauth is not None:
            self.oauth.cancel()

    def _shows(self, profile_id: str) -> bool:
        """True if the form shows the profile ``profile_id``."""
        return (self.dialog is not None and self._editing is not None
                and self._editing.id == profile_id)

    # -- the keyring --------------------------------------------------------------------
    def _keyring_checked(self, _status: object) -> None:
        for profile, password in self.broker.take_pending():
            self._store_password(profile, password)
        self._show_keyring_status()
        if self.dkim is not None and self._editing is not None:
            self.dkim.load(self._editing)
        if self.oauth is not None and self._editing is not None:
            self.oauth.load(self._editing)

    def _show_keyring_status(self) -> None:
        if self.dialog is not None:
            status = self.broker.keyring_status
            self.dialog.show_keyring(status.sentence if status else None,
                                     status.usable if status else None)

    def _target_locked(self, locked: bool) -> None:
        if self.dialog is not None:
            self.dialog.use.setEnabled(not locked and self._editing is not None)

    # -- the list and the form -----------------------------------------------------------------
    def _fill_list(self, select_id: str | None = None) -> None:
        d = self.dialog
        assert d is not None
        d.show_profiles(self.store.user_profiles())
        row = max(0, d.row_of(select_id))
        if d.list.count():
            d.list.setCurrentRow(row)
            self._row_changed(row)
        else:
            self._load_form(None)

    def _row_changed(self, row: int) -> None:
        d = self.dialog
        wanted = d.profile_id_at(row) if d is not None and row >= 0 else None
        if d is None or wanted is None:
            return
        if self._editing is not None and wanted != self._editing.id and not self._leave_form():
            d.mark_row(self._editing.id)  # stay on the profile being edited
            return
        self._load_form(self.store.get(wanted))
        d.mark_row(wanted)

    def form_changed(self) -> bool:
        """True if the form holds edits that are not saved (a typed password counts)."""
        d = self.dialog
        if d is None or self._editing is None or self.store.get(self._editing.id) is None:
            return False
        form = self.form_profile()
        return bool(d.password.text()) or bool(d.typed_broker_password()) or (
            form is not None and form.to_dict() != self._editing.to_dict())

    def ask_unsaved(self, name: str, default: str = "save") -> str:
        """"save", "discard" or "cancel" (a dialog; tests replace it). ``default`` is the
        button Enter presses: "discard" right after the server refused the typed password
        (saving it would keep a password known to be wrong)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"The profile \u201c{name}\u201d has changes that are not saved.",
                          parent=self.dialog)
        box.setInformativeText("Save them before leaving it?")
        box.setStandardButtons(QMessageBox.StandardButton.Save
                               | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Discard if default == "discard"
                             else QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(
            QMessageBox.StandardButton(answer), "cancel")

    def _leave_form(self) -> bool:
        """Before the form shows another profile or the dialog closes: True to go on."""
        if not self.form_changed():
            return True
        editing, form = self._editing, self.form_profile()
        assert editing is not None and form is not None and self.dialog is not None
        typed = self.dialog.password.text()
        refused = bool(typed) and typed == self._refused_password
        answer = self.ask_unsaved(form.name, "discard" if refused else "save")
        if answer == "cancel":
            return False
        if answer == "save":
            with BlockSignals(self.dialog.list):  # saving refills the list; the caller picks
                return self.save_profile() is not None
        self._load_form(editing)  # discard: the form shows what is saved
        return True

    def _load_form(self, profile: Profile | None) -> None:
        d = self.dialog
        assert d is not None and self.tester is not None
        self._editing = profile
        self._refused_password = None
        d.set_editing(profile is not None, can_use=not self.target.locked)
        self.tester.drop(profile)
        d.show_message("" if profile else "No profiles yet. Press New to add an SMTP server "
                       "or a test backend.")
        d.test_transcript.hide()
        d.show_fields(profile or Profile("", "smtp", port=DEFAULT_PORTS["starttls"],
                                         security="starttls", timeout=30))  # greyed out
        assert self.dkim is not None
        if profile is None:
            self.dkim.load(None)
            return
        self._kind_changed()
        self._password_note(profile)
        self.dkim.load(profile)
        assert self.oauth is not None
        self.oauth.load(profile)

    def _password_note(self, profile: Profile) -> None:
        d = self.dialog
        assert d is not None
        d.password_note.setText("")
        usable = self.broker.keyring_usable
        if profile.kind == "queue":
            self._broker_password_note(profile)
            return
        if self.broker.is_pending(profile.id):
            d.password_note.setText(
                "The password will be stored as soon as the keyring check is done.")
        elif profile.kind == "smtp" and usable:
            pid = profile.id
            self.runner.run(self.broker.has_stored, pid,
                            on_done=lambda has, pid=pid: self._password_known(pid, has),
                            what="ask the keyring for a saved password")
        elif profile.kind == "smtp" and usable is False:
            d.password_note.setText("No secure keyring: the password is asked when sending.")

    def _broker_password_note(self, profile: Profile) -> None:
        d = self.dialog
        assert d is not None
        note = d.queue_password_note
        if self.broker.is_pending(profile.id):
            note.setText("The password will be stored as soon as the keyring check is done.")
        elif not profile.queue_password:
            note.setText("No password: the broker is used without one.")
        elif self.broker.keyring_usable is False:
            note.setText("No secure keyring: the password is asked when it is needed.")
        else:
            note.setText("The broker’s password is in the system keyring. Type a new one "
                         "to replace it.")

    def _password_known(self, profile_id: str, has: bool) -> None:
        if self._shows(profile_id):
            assert self.dialog is not None
            self.dialog.password_note.setText(KEYRING_HOLDS_ONE if has
                                              else "No password saved yet.")

    def _kind_changed(self, *_args: object) -> None:
        if self.dialog is not None:
            self.dialog.show_kind(self.dialog.kind.currentData(), self._editing is not None)
        if self.dkim is not None:
            self.dkim.refresh()

    def _security_changed(self, *_args: object) -> None:
        d = self.dialog
        if d is not None and d.port.value() in DEFAULT_PORTS.values():
            d.port.setValue(DEFAULT_PORTS[d.security.currentData()])

    def _browse(self, edit: QLineEdit, title: str, folder: bool = False) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self.dialog, title, edit.text())
        else:
            path, _f = QFileDialog.getOpenFileName(self.dialog, title, edit.text())
        if path:
            edit.setText(path)

    def form_profile(self) -> Profile | None:
        """The profile as the form shows it now (not saved yet)."""
        if self.dialog is None or self._editing is None:
            return None
        profile = copy.deepcopy(self._editing)
        self.dialog.read_fields(profile)
        return profile

    # -- changes -------------------------------------------------------------------------
    def new_profile(self) -> None:
        profile = Profile("New SMTP server", "smtp", port=587, security="starttls")
        self.store.upsert(profile, write=False)
        self._write()
        self._after_change(profile.id)
        if self.dialog is not None:
            self.dialog.name.setFocus()
            self.dialog.name.selectAll()

    def duplicate_profile(self) -> None:
        if self._editing is None:
            return
        twin = self.store.duplicate(self._editing.id, write=False)
        self._write(f"Duplicated as \u201c{twin.name}\u201d (the password is not copied).")
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
        self.store.delete(profile.id, write=False)
        self._write()
        self.broker.forget(profile.id)
        if self.dkim is not None:
            self.dkim.forget(profile.id)
        if self.oauth is not None:  # (also a profile that no longer uses OAuth2 but did)
            self.oauth.forget(profile)
        if self.broker.keyring_usable:
            self.runner.run(self.broker.remove_stored, profile.id,
                            on_error=lambda exc: self.status.emit(
                                f"The password of \u201c{profile.name}\u201d could not be "
                                f"removed from the keyring: {exc}"))
        self._after_change(None)

    def save_profile(self) -> Profile | None:
        """Save what the form shows (in memory at once, the file on the worker); its typed
        password goes to the keyring. None if the form is not complete."""
        d = self.dialog
        profile = self.form_profile()
        if d is None or profile is None:
            return None
        if profile.kind == "smtp" and not profile.host:
            d.show_message("Enter the SMTP host name.")
            d.host.setFocus()
            return None
        if profile.kind == "file" and not profile.file_path:
            d.show_message("Choose a folder for the message files.")
            return None
        broker_password = d.typed_broker_password() if profile.kind == "queue" else ""
        if profile.kind == "queue":
            from mailcore.queue import REDIS_SCHEMES

            scheme = profile.queue_broker_url.partition("://")[0].lower()
            if scheme not in REDIS_SCHEMES:
                d.show_message("Enter the broker’s URL: redis://host:6379/0 (rediss:// for "
                               "TLS, redis+socket:///path/redis.sock for a Unix socket).")
                d.queue_url.setFocus()
                return None
            if broker_password:
                profile.queue_password = True
        if profile.uses_oauth and not profile.oauth_client_id:
            d.show_message("Enter the OAuth2 client ID of your app registration.")
            d.oauth_client_id.setFocus()
            return None
        problem = profile.signs and dkim.name_problem(dkim.selector_of(profile),
                                                      dkim.domain_of(profile))
        if problem:
            d.show_message(problem)
            (d.dkim_selector if "selector" in problem else d.dkim_domain).setFocus()
            return None
        self.store.upsert(profile, write=False)
        self._editing = profile  # what the form shows is saved now
        self._write(f"Saved the profile \u201c{profile.name}\u201d.", profile)
        assert self.oauth is not None
        self.oauth.store_secret(profile)
        password = d.password.text()
        if password and profile.kind == "smtp" and not profile.uses_oauth:
            self._store_password(profile, password)
            d.password.clear()
        if broker_password:  # in the keyring, as an SMTP password; the URL shown without it
            self._store_password(profile, broker_password)
            d.queue_password.clear()
            d.queue_url.setText(profile.queue_broker_url)
            self._broker_password_note(profile)
        self._after_change(profile.id)
        return profile

    def _write(self, done: str = "", profile: Profile | None = None) -> None:
        """Write the profiles file on the runner's file lane; ``done`` is said when it is
        written, a failure is shown (``_write_failed``)."""
        self.runner.write(self.store.save,
                          on_done=lambda _r: self.status.emit(done) if done else None,
                          on_error=lambda exc: self._write_failed(exc, profile))

    def _write_failed(self, exc: BaseException, profile: Profile | None) -> None:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        text = (f"The profiles could not be saved to {self.store.path} ({why}). Your changes "
                "are kept until mailgui quits: press Save to try again.")
        self.status.emit(text)
        self.problem.emit(text)
        if self.dialog is not None and self.dialog.isVisible() and (
                profile is None or self._shows(profile.id)):
            self.dialog.show_message(text, ok=False)

    def _store_password(self, profile: Profile, password: str) -> None:
        """In the keyring (on the worker) if there is one, else in memory for the session;
        held until the keyring check at start is done."""
        where = self.broker.password_typed(profile, password)
        if where == "pending":
            pass  # _password_note says so, and _keyring_checked stores it
        elif where == "keyring":
            self.runner.run(self.broker.store, profile.id, password,
                            on_done=lambda _r: self._password_saved(profile),
                            on_error=self._password_not_saved)
        elif self._shows(profile.id):
            assert self.dialog is not None
            self.dialog.password_note.setText(KEPT_IN_MEMORY)
        else:
            self.status.emit(f"The password of \u201c{profile.name}\u201d is kept in memory "
                             "until mailgui quits (no secure keyring).")

    def _password_saved(self, profile: Profile) -> None:
        self.status.emit(f"The password of \u201c{profile.name}\u201d is in the system keyring.")
        if self._shows(profile.id):
            assert self.dialog is not None
            if profile.kind == "queue":
                self._broker_password_note(profile)
            else:
                self.dialog.password_note.setText(KEYRING_HOLDS_ONE)

    def _password_not_saved(self, exc: BaseException) -> None:
        text = f"The password could not be saved in the keyring: {exc}"
        self.status.emit(text)
        if self.dialog is not None:
            self.dialog.password_note.setText(text)

    def _after_change(self, select_id: str | None) -> None:
        self.target.fill_combo()
        if self.dialog is not None:
            self._fill_list(select_id)

    def _use_profile(self) -> None:
        if self.target.locked:  # a message is being sent: "Send via" stays as it is
            return
        profile = self.save_profile()
        if profile is not None:
            self.target.select(profile.id)
            if self.dialog is not None:
                self.dialog.accept()

    # -- test connection ----------------------------------------------------------------
    def _test_clicked(self) -> None:
        """Test connection, or Cancel test while one runs (a server may never answer)."""
        if self.tester is not None and self.tester.running:
            self.tester.cancel()
        else:
            self.test_connection()

    def test_connection(self, password: str | None = None) -> TestConnectionJob | None:
        """Test the profile as the form shows it (with the password typed there, if any)."""
        profile = self.form_profile()
        if self.dialog is None or self.tester is None or profile is None:
            return None
        typed = "" if profile.uses_oauth else self.dialog.password.text()
        tried = password if password is not None else typed or None
        job = self.tester.start(profile, tried)
        if job is not None and tried:
            job.signals.finished.connect(
                lambda outcome, pw=tried: self._password_tested(pw, outcome))
        return job

    def _password_tested(self, password: str, outcome: ConnectionOutcome) -> None:
        """Remember a password the server refused in a test, so that leaving the form does
        not offer to save it by default."""
        if outcome.kind == "auth" and not outcome.ok:
            self._refused_password = password
        elif outcome.ok and self._refused_password == password:
            self._refused_password = None
