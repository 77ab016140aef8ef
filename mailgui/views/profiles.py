"""The profile editor dialog and the password prompt: layout, and the small methods that show a
state (a profile's fields, the keyring, a connection test, a DKIM key, an OAuth2 sign-in).
Controllers hold the logic."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mailgui.model.oauth import PROVIDERS
from mailgui.model.profiles import (
    AUTH,
    DEFAULT_PORTS,
    DEFAULT_QUEUE,
    KINDS,
    SECURITY,
    Profile,
    split_broker_url,
)
from mailgui.views import style
from mailgui.views.common import BlockSignals, Role, mono_font, named

PasswordAnswer = tuple[str, bool]  # (the password, remember it until mailgui quits)


class PathEdit(QWidget):
    """A line edit with a Browse button."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        named(self.edit, name)
        self.browse = QPushButton("Browse\u2026")
        named(self.browse, f"Browse for {name.lower()}")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse)


class ProfileDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Profiles \u2014 mailgui")
        self.resize(900, 760)
        self.keyring_status = QLabel("Checking the system keyring\u2026")
        self.keyring_status.setWordWrap(True)
        named(self.keyring_status, "Keyring status")

        self.list = QListWidget()
        named(self.list, "Profiles")
        self.list.setMinimumWidth(230)
        self.list.setSpacing(3)
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.new = QPushButton("New")
        named(self.new, "New profile")
        self.duplicate = QPushButton("Duplicate")
        named(self.duplicate, "Duplicate profile")
        self.delete = QPushButton("Delete")
        named(self.delete, "Delete profile")
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new)
        buttons.addWidget(self.duplicate)
        buttons.addWidget(self.delete)
        left.addLayout(buttons)

        self.name = QLineEdit()
        named(self.name, "Profile name")
        self.kind = QComboBox()
        named(self.kind, "Kind of profile")
        for key, label in KINDS.items():
            if key != "inbox":
                self.kind.addItem(label, key)
        self.from_email = QLineEdit()
        named(self.from_email, "Default From address")
        self.from_email.setPlaceholderText("Name <you@example.com>")
        general = QFormLayout()
        general.addRow("&Name:", self.name)
        general.addRow("&Kind:", self.kind)
        general.addRow("Default &From:", self.from_email)

        self.host = QLineEdit()
        named(self.host, "SMTP host")
        self.host.setPlaceholderText("smtp.example.com")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        named(self.port, "SMTP port")
        self.security = QComboBox()
        named(self.security, "Security")
        for key, label in SECURITY.items():
            self.security.addItem(label, key)
        self.auth = QComboBox()
        named(self.auth, "Login", "How this profile logs in: a password, or OAuth2")
        for key, label in AUTH.items():
            self.auth.addItem(label, key)
        self.username = QLineEdit()
        named(self.username, "User name")
        self.username.setPlaceholderText("empty: no login")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        named(self.password, "Password", "Stored in the system keyring, never in a file")
        self.password_note = QLabel()
        self.password_note.setWordWrap(True)
        self.password_note.setStyleSheet(style.muted_label())
        named(self.password_note, "Password note")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setDecimals(0)
        named(self.timeout, "Timeout in seconds")
        self.client_cert = PathEdit("Client certificate")
        self.client_key = PathEdit("Client key")
        self.ca_file = PathEdit("CA file")
        self.ca_file.edit.setPlaceholderText("empty: the system's trusted CAs")
        smtp_form = QFormLayout()
        smtp_form.addRow("&Host:", self.host)
        smtp_form.addRow("&Port:", self.port)
        smtp_form.addRow("S&ecurity:", self.security)
        smtp_form.addRow("Login:", self.auth)  # (its letters are all taken)
        smtp_form.addRow("&User name:", self.username)
        smtp_form.addRow("Pass&word:", self.password)
        smtp_form.addRow("", self.password_note)
        smtp_form.addRow("&Timeout:", self.timeout)
        smtp_form.addRow("Client certificate:", self.client_cert)
        smtp_form.addRow("Client key:", self.client_key)
        smtp_form.addRow("CA file (private server):", self.ca_file)
        self.smtp_form = smtp_form
        self.smtp_group = QGroupBox("SMTP server")
        self.smtp_group.setLayout(smtp_form)
        self.oauth_group = self._oauth_section()
        self.dkim_group = self._dkim_section()

        self.file_path = PathEdit("Folder for message files")
        file_form = QFormLayout()
        file_form.addRow("&Folder:", self.file_path)
        self.file_group = QGroupBox("Files")
        self.file_group.setLayout(file_form)
        self.queue_group = self._queue_section()

        self.test = QPushButton("Test connection")
        named(self.test, "Test connection")
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        named(self.test_result, "Connection test result")
        self.test_transcript = QPlainTextEdit()
        self.test_transcript.setReadOnly(True)
        self.test_transcript.setFont(mono_font())
        self.test_transcript.setMaximumHeight(110)
        named(self.test_transcript, "Connection test transcript")
        self.test_transcript.hide()
        test_row = QHBoxLayout()
        test_row.addWidget(self.test)
        test_row.addWidget(self.test_result, 1)

        self.save = QPushButton("Save")
        self.save.setDefault(True)
        named(self.save, "Save profile")
        self.revert = QPushButton("Revert")
        named(self.revert, "Revert changes")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.use = QPushButton("Use for this message")
        named(self.use, "Use this profile for the message")
        bottom = QHBoxLayout()
        bottom.addWidget(self.use)
        bottom.addStretch(1)
        bottom.addWidget(self.revert)
        bottom.addWidget(self.save)
        bottom.addWidget(self.buttons)

        self.form = QWidget()
        right = QVBoxLayout(self.form)
        right.setContentsMargins(0, 0, 0, 0)
        right.addLayout(general)
        right.addWidget(self.smtp_group)
        right.addWidget(self.oauth_group)
        right.addWidget(self.dkim_group)
        right.addWidget(self.file_group)
        right.addWidget(self.queue_group)
        right.addLayout(test_row)
        right.addWidget(self.test_transcript)
        right.addStretch(1)

        # the form scrolls when the screen is too low for all of it (SMTP and DKIM)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QHBoxLayout()
        body.addLayout(left)
        body.addWidget(scroll, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.keyring_status)
        layout.addLayout(body, 1)
        layout.addLayout(bottom)
        # Asked before the dialog closes (Close, Esc, the window's X); False keeps it open.
        self.can_close: Callable[[], bool] | None = None

    def _queue_section(self) -> QGroupBox:
        """A queue profile: the broker (Redis) and the Celery queue the workers read."""
        self.queue_url = QLineEdit()
        self.queue_url.setPlaceholderText("redis://redis.internal:6379/0")
        named(self.queue_url, "Broker URL", "Celery's broker (Redis); a password typed in it "
              "goes to the system keyring, not into the profile file")
        self.queue_password = QLineEdit()
        self.queue_password.setEchoMode(QLineEdit.EchoMode.Password)
        named(self.queue_password, "Broker password", "Stored in the system keyring, never "
              "in a file")
        self.queue_password_note = QLabel()
        self.queue_password_note.setWordWrap(True)
        self.queue_password_note.setStyleSheet(style.muted_label())
        named(self.queue_password_note, "Broker password note")
        self.queue_name = QLineEdit()
        self.queue_name.setPlaceholderText(DEFAULT_QUEUE)
        named(self.queue_name, "Queue name", "EMAIL_QUEUE_NAME of the workers")
        note = QLabel("Messages are queued for the workers (<tt>mailcore worker</tt>), which "
                      "deliver them with their own SMTP settings. Watch the queue drain in "
                      "the Queue panel.")
        note.setWordWrap(True)
        note.setStyleSheet(style.muted_label())
        form = QFormLayout()
        form.addRow("&Broker URL:", self.queue_url)
        form.addRow("Broker pass&word:", self.queue_password)
        form.addRow("", self.queue_password_note)
        form.addRow("&Queue:", self.queue_name)
        form.addRow(note)
        group = QGroupBox("Queue (Celery)")
        group.setLayout(form)
        return group

    def typed_broker_password(self) -> str:
        """A password typed for the broker: in the URL, else in the password field."""
        return split_broker_url(self.queue_url.text())[1] or self.queue_password.text()

    def _oauth_section(self) -> QGroupBox:
        """Log in with OAuth2: the provider (which fills in the SMTP server), the issuer, the
        user's own client ID, the scopes, hand-entered endpoints for a custom issuer, and Sign
        in / Sign out with the state of the saved sign-in."""
        self.oauth_provider = QComboBox()
        named(self.oauth_provider, "OAuth2 provider",
              "Choosing one fills in its SMTP server, issuer and scopes")
        for key, provider in PROVIDERS.items():
            self.oauth_provider.addItem(provider.label, key)
        self.oauth_issuer = QComboBox()
        self.oauth_issuer.setEditable(True)
        self.oauth_issuer.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        named(self.oauth_issuer, "OAuth2 issuer")
        self.oauth_client_id = QLineEdit()
        named(self.oauth_client_id, "OAuth2 client ID",
              "The client ID of your own app registration with the provider")
        self.oauth_client_id.setPlaceholderText("from your app registration (see the README)")
        self.oauth_client_secret = QLineEdit()
        self.oauth_client_secret.setEchoMode(QLineEdit.EchoMode.Password)
        named(self.oauth_client_secret, "OAuth2 client secret",
              "Only if the provider gave your desktop client one; kept in the system keyring")
        self.oauth_client_secret.setPlaceholderText("only if your client has one (Google does)")
        self.oauth_scopes = QLineEdit()
        named(self.oauth_scopes, "OAuth2 scopes", "Separated by spaces")
        self.oauth_auth_url = QLineEdit()
        named(self.oauth_auth_url, "OAuth2 authorization endpoint")
        self.oauth_auth_url.setPlaceholderText("empty: discovered from the issuer")
        self.oauth_token_url = QLineEdit()
        named(self.oauth_token_url, "OAuth2 token endpoint")
        self.oauth_token_url.setPlaceholderText("empty: discovered from the issuer")
        self.oauth_sign_in = QPushButton("&Sign in\u2026")
        named(self.oauth_sign_in, "Sign in",
              "Sign in with the provider in your web browser; the sign-in is kept in the "
              "system keyring")
        self.oauth_sign_out = QPushButton("Sign out")
        named(self.oauth_sign_out, "Sign out",
              "Revoke the saved sign-in and remove it from the keyring")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.oauth_sign_in)
        buttons.addWidget(self.oauth_sign_out)
        buttons.addStretch(1)
        self.oauth_state = QLabel("Not signed in.")
        self.oauth_state.setWordWrap(True)
        self.oauth_state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.oauth_state.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.oauth_state.setMinimumWidth(420)
        self.oauth_state.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        named(self.oauth_state, "OAuth2 sign-in state")
        form = QFormLayout()
        form.addRow("P&rovider:", self.oauth_provider)
        form.addRow("Issuer:", self.oauth_issuer)
        form.addRow("&Client ID:", self.oauth_client_id)
        form.addRow("Client secret:", self.oauth_client_secret)
        form.addRow("Scopes:", self.oauth_scopes)
        form.addRow("Authorization endpoint:", self.oauth_auth_url)
        form.addRow("Token endpoint:", self.oauth_token_url)
        form.addRow("Sign-in:", buttons)
        form.addRow("", self.oauth_state)  # its own row: a failure is a sentence or two
        self.oauth_form = form
        group = QGroupBox("OAuth2 sign-in")
        group.setLayout(form)
        return group

    def _dkim_section(self) -> QGroupBox:
        """Sign with DKIM: domain, selector, the key (generated or imported, kept in the
        keyring) and the TXT record to publish, read-only with Copy buttons."""
        self.dkim_enabled = QCheckBox("Sign with &DKIM")
        named(self.dkim_enabled, "Sign with DKIM",
              "Sign every message this profile sends; the private key is kept in the keyring")
        self.dkim_domain = QLineEdit()
        named(self.dkim_domain, "DKIM domain", "The d= of the signature")
        self.dkim_selector = QLineEdit()
        named(self.dkim_selector, "DKIM selector", "The s= of the signature")
        self.dkim_selector.setMaximumWidth(160)
        names = QHBoxLayout()
        names.setContentsMargins(0, 0, 0, 0)
        names.addWidget(self.dkim_domain, 1)
        selector_label = QLabel("Se&lector:")
        selector_label.setBuddy(self.dkim_selector)
        names.addWidget(selector_label)
        names.addWidget(self.dkim_selector)
        self.dkim_state = QLabel("No key yet.")
        self.dkim_state.setWordWrap(True)
        self.dkim_state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # wrapped, it asks for the height its text needs at the width it gets (a label's own
        # guess is for a narrower one: a sentence got twice its height, centred in blank)
        self.dkim_state.setSizePolicy(QSizePolicy.Policy.Expanding,
                                      QSizePolicy.Policy.Minimum)
        self.dkim_state.setMinimumWidth(420)
        self.dkim_state.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        named(self.dkim_state, "DKIM key state")
        self.dkim_generate = QPushButton("&Generate key")
        named(self.dkim_generate, "Generate DKIM key",
              "Make a new 2048-bit RSA key and keep it in the system keyring")
        self.dkim_import = QPushButton("&Import key\u2026")
        named(self.dkim_import, "Import DKIM key", "Read a PEM private key from a file")
        key_row = QHBoxLayout()
        key_row.setContentsMargins(0, 0, 0, 0)
        key_row.addWidget(self.dkim_generate)
        key_row.addWidget(self.dkim_import)
        key_row.addStretch(1)
        self.dkim_record_name = QLineEdit()
        self.dkim_record_name.setReadOnly(True)
        named(self.dkim_record_name, "DKIM DNS record name")
        self.dkim_record_value = QLineEdit()
        self.dkim_record_value.setReadOnly(True)
        self.dkim_record_value.setFont(mono_font())
        named(self.dkim_record_value, "DKIM DNS record value")
        self.dkim_copy_name = QPushButton("Copy")
        named(self.dkim_copy_name, "Copy the DKIM record name")
        self.dkim_copy_value = QPushButton("Copy")
        named(self.dkim_copy_value, "Copy the DKIM record value")
        form = QFormLayout()
        form.addRow(self.dkim_enabled)
        domain_label = QLabel("D&omain:")  # (a row of several widgets gets no buddy itself)
        domain_label.setBuddy(self.dkim_domain)
        form.addRow(domain_label, names)
        form.addRow("Key:", key_row)
        form.addRow("", self.dkim_state)  # its own row: a refusal is a sentence or two
        for label, edit, copy in (("TXT record name:", self.dkim_record_name,
                                   self.dkim_copy_name),
                                  ("TXT record value:", self.dkim_record_value,
                                   self.dkim_copy_value)):
            row = QHBoxLayout()
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(edit, 1)
            row.addWidget(copy)
            form.addRow(label, row)
        group = QGroupBox("DKIM signing")
        group.setLayout(form)
        return group

    def done(self, result: int) -> None:
        if self.can_close is not None and not self.can_close():
            return
        super().done(result)  # (the window's X goes through here too: closeEvent -> reject)

    # -- the list --------------------------------------------------------------------------
    def show_profiles(self, profiles: list[Profile]) -> None:
        """List ``profiles`` (name and where it sends); no row is current afterwards, and
        nothing is signalled while the list is rebuilt."""
        with BlockSignals(self.list):
            self.list.clear()
            for p in profiles:
                item = QListWidgetItem(f"{p.name}\n{p.describe()}")
                item.setData(Role.PROFILE_ID, p.id)
                self.list.addItem(item)

    def profile_id_at(self, row: int) -> str | None:
        item = self.list.item(row)
        return None if item is None else item.data(Role.PROFILE_ID)

    def row_of(self, profile_id: str | None) -> int:
        """The row of ``profile_id``, or -1."""
        for i in range(self.list.count()):
            if self.profile_id_at(i) == profile_id:
                return i
        return -1

    def mark_row(self, profile_id: str) -> None:
        """Make the row of ``profile_id`` the current one without signalling it."""
        row = self.row_of(profile_id)
        if row >= 0:
            with BlockSignals(self.list):
                self.list.setCurrentRow(row)

    # -- the form --------------------------------------------------------------------------
    def set_editing(self, editing: bool, can_use: bool) -> None:
        """The form and its buttons are on while a profile is shown; "Use for this message"
        also needs ``can_use`` (it is off while a message is being sent)."""
        self.form.setEnabled(editing)
        for button in (self.duplicate, self.delete, self.save, self.revert):
            button.setEnabled(editing)
        self.use.setEnabled(editing and can_use)

    def show_fields(self, profile: Profile) -> None:
        """The fields of ``profile``, the password field empty."""
        self.name.setText(profile.name)
        self.kind.setCurrentIndex(max(0, self.kind.findData(profile.kind)))
        self.from_email.setText(profile.from_email)
        self.host.setText(profile.host)
        with BlockSignals(self.security):  # (its handler would change the port)
            self.security.setCurrentIndex(max(0, self.security.findData(profile.security)))
        self.port.setValue(int(profile.port or DEFAULT_PORTS[profile.security]))
        with BlockSignals(self.auth):
            self.auth.setCurrentIndex(max(0, self.auth.findData(profile.auth)))
        self.username.setText(profile.username)
        self.password.clear()
        self.timeout.setValue(float(profile.timeout or 30))
        self.client_cert.edit.setText(profile.client_cert)
        self.client_key.edit.setText(profile.client_key)
        self.ca_file.edit.setText(profile.ca_file)
        self.file_path.edit.setText(profile.file_path)
        self.queue_url.setText(profile.queue_broker_url)  # never with a password in it
        self.queue_password.clear()
        self.queue_name.setText(profile.queue_name)
        self.dkim_enabled.setChecked(profile.dkim_enabled)
        self.dkim_domain.setText(profile.dkim_domain)
        self.dkim_selector.setText(profile.dkim_selector)
        with BlockSignals(self.oauth_provider):
            self.oauth_provider.setCurrentIndex(
                max(0, self.oauth_provider.findData(profile.oauth_provider)))
        self.show_oauth_provider(profile.oauth_provider)
        self.oauth_issuer.setEditText(profile.oauth_issuer)
        self.oauth_client_id.setText(profile.oauth_client_id)
        self.oauth_client_secret.clear()
        self.oauth_scopes.setText(profile.oauth_scopes)
        self.oauth_auth_url.setText(profile.oauth_auth_url)
        self.oauth_token_url.setText(profile.oauth_token_url)

    def read_fields(self, profile: Profile) -> None:
        """Put what the fields hold into ``profile`` (not the password)."""
        profile.name = self.name.text().strip() or "Unnamed profile"
        profile.kind = self.kind.currentData()
        profile.from_email = self.from_email.text().strip()
        profile.host = self.host.text().strip()
        profile.port = self.port.value()
        profile.security = self.security.currentData()
        profile.username = self.username.text().strip()
        profile.timeout = self.timeout.value()
        profile.client_cert = self.client_cert.edit.text().strip()
        profile.client_key = self.client_key.edit.text().strip()
        profile.ca_file = self.ca_file.edit.text().strip()
        profile.file_path = self.file_path.edit.text().strip()
        profile.queue_broker_url = split_broker_url(self.queue_url.text())[0]
        profile.queue_name = self.queue_name.text().strip() or DEFAULT_QUEUE
        profile.dkim_enabled = self.dkim_enabled.isChecked()
        profile.dkim_domain = self.dkim_domain.text().strip().lower()
        profile.dkim_selector = self.dkim_selector.text().strip()
        profile.auth = self.auth.currentData()
        profile.oauth_provider = self.oauth_provider.currentData()
        profile.oauth_issuer = self.oauth_issuer.currentText().strip()
        profile.oauth_client_id = self.oauth_client_id.text().strip()
        profile.oauth_scopes = " ".join(self.oauth_scopes.text().split())
        custom = profile.oauth_provider == "custom"
        profile.oauth_auth_url = self.oauth_auth_url.text().strip() if custom else ""
        profile.oauth_token_url = self.oauth_token_url.text().strip() if custom else ""

    def show_kind(self, kind: str, editing: bool) -> None:
        """The groups and the test row that a profile of ``kind`` has."""
        self.smtp_group.setVisible(kind == "smtp")
        self.dkim_group.setVisible(kind == "smtp")
        self.show_auth(self.auth.currentData(), smtp=kind == "smtp")
        self.file_group.setVisible(kind == "file")
        self.queue_group.setVisible(kind == "queue")
        self.test.setVisible(kind == "smtp")
        self.test_result.setVisible(kind == "smtp" or not editing)

    def show_message(self, text: str, ok: bool | None = None) -> None:
        """The line under the form: a check that failed, a test's result, a failed save."""
        self.test_result.setText(text)
        self.test_result.setStyleSheet(style.result_label(ok))

    def show_keyring(self, sentence: str | None, usable: bool | None) -> None:
        """Where a typed password goes: ``None`` while the keyring check at start runs (no
        typing until it is known), else its sentence; without a keyring the field is off."""
        if usable is None:
            self.keyring_status.setText("Checking the system keyring\u2026")
            self.password.setEnabled(False)
            self.password.setPlaceholderText("checking the keyring\u2026")
            return
        self.keyring_status.setText(sentence or "")
        self.keyring_status.setStyleSheet(style.warning_label(not usable))
        self.password.setEnabled(usable)
        self.password.setPlaceholderText("" if usable else "asked when sending (no secure keyring)")

    # -- OAuth2 ------------------------------------------------------------------------------
    def show_auth(self, auth: str, smtp: bool = True) -> None:
        """A password login has the password row; an OAuth2 login the OAuth2 section."""
        oauth = auth == "oauth2"
        self.oauth_group.setVisible(smtp and oauth)
        self.smtp_form.setRowVisible(self.password, not oauth)
        self.smtp_form.setRowVisible(self.password_note, not oauth)
        self.username.setPlaceholderText("you@example.com: the mailbox you sign in to" if oauth
                                         else "empty: no login")

    def show_oauth_provider(self, key: str) -> None:
        """The fields a provider has: its issuers to choose from; hand-entered endpoints for
        a custom issuer only."""
        provider = PROVIDERS[key]
        text = self.oauth_issuer.currentText()
        with BlockSignals(self.oauth_issuer):
            self.oauth_issuer.clear()
            self.oauth_issuer.addItems(list(provider.issuers))
            self.oauth_issuer.setEditText(text)
        self.oauth_issuer.setEnabled(key != "google")
        self.oauth_issuer.lineEdit().setPlaceholderText(
            "https://login.example.com (its endpoints are discovered)" if key == "custom"
            else "")
        self.oauth_issuer.setToolTip(
            "common: any work, school or personal account; organizations: work or school "
            "accounts only; or your tenant's ID or domain in its place" if key == "microsoft"
            else "")
        custom = key == "custom"
        for edit in (self.oauth_auth_url, self.oauth_token_url):
            self.oauth_form.setRowVisible(edit, custom)
        # Entra ID's public (desktop) clients have no secret and must not send one
        self.oauth_form.setRowVisible(self.oauth_client_secret, key != "microsoft")

    def show_oauth_state(self, text: str, ok: bool | None = None, *, signed_in: bool = False,
                         busy: bool = False, can_sign_in: bool = True) -> None:
        """The sign-in line ("Signed in as ... until revoked", "Not signed in", a failure) and
        which buttons work now; while a sign-in waits for the browser, Sign in cancels it."""
        self.oauth_state.setText(text)
        self.oauth_state.setStyleSheet(style.result_label(False) if ok is False else
                                       "" if ok else style.muted_label())
        self.oauth_sign_in.setText("Cancel sign-in" if busy else "&Sign in\u2026")
        self.oauth_sign_in.setAccessibleName("Cancel sign-in" if busy else "Sign in")
        self.oauth_sign_in.setEnabled(can_sign_in or busy)
        self.oauth_sign_out.setEnabled(signed_in and not busy)

    # -- DKIM --------------------------------------------------------------------------------
    def show_dkim_defaults(self, domain: str, selector: str) -> None:
        """What an empty domain or selector stands for (the From domain, a dated selector)."""
        self.dkim_domain.setPlaceholderText(domain or "example.com")
        self.dkim_selector.setPlaceholderText(selector)

    def show_dkim_record(self, name: str, value: str) -> None:
        """The TXT record to publish; empty parts say what is missing."""
        self.dkim_record_name.setText(name)
        self.dkim_record_name.setPlaceholderText("" if name else "enter a domain and selector")
        self.dkim_record_value.setText(value)
        self.dkim_record_value.setCursorPosition(0)  # "v=DKIM1; k=rsa; p=..." shows first
        self.dkim_record_value.setToolTip(value)
        self.dkim_record_value.setPlaceholderText("" if value else "generate or import a key")
        self.dkim_copy_name.setEnabled(bool(name))
        self.dkim_copy_value.setEnabled(bool(value))

    def show_dkim_state(self, text: str, ok: bool | None = None,
                        can_change: bool = True) -> None:
        """The key line ("Key stored in the keyring", "No key yet", a refused PEM) and
        whether the key buttons work now (not while the keyring is asked or a key is made)."""
        self.dkim_state.setText(text)
        self.dkim_state.setStyleSheet(style.result_label(False) if ok is False else
                                      "" if ok else style.muted_label())
        self.dkim_generate.setEnabled(can_change)
        self.dkim_import.setEnabled(can_change)

    # -- the connection test ---------------------------------------------------------------
    def show_test_running(self, text: str) -> None:
        self.test.setText("Cancel test")
        self.test.setAccessibleName("Cancel the connection test")
        self.show_message(text)
        self.test_transcript.clear()
        self.test_transcript.show()

    def show_test_step(self, text: str) -> None:
        self.test_result.setText(text)

    def add_test_line(self, line: str) -> None:
        self.test_transcript.appendPlainText(line)

    def show_test_cancelling(self) -> None:
        self.test.setEnabled(False)
        self.test_result.setText("Cancelling\u2026")

    def show_test_idle(self) -> None:
        self.test.setEnabled(True)
        self.test.setText("Test connection")
        self.test.setAccessibleName("Test connection")


class PasswordDialog(QDialog):
    """Asks for a password when no keyring can hold it (or none is saved)."""

    def __init__(self, profile_name: str, reason: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Password needed \u2014 mailgui")
        self.reason = QLabel(reason)
        self.reason.setWordWrap(True)
        named(self.reason, "Why the password is asked")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        named(self.password, f"Password for {profile_name}")
        self.remember = QCheckBox("Remember until mailgui quits (in memory only)")
        named(self.remember, "Remember password for this session")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow(f"Password for \u201c{profile_name}\u201d:", self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(self.reason)
        layout.addLayout(form)
        layout.addWidget(self.remember)
        layout.addWidget(self.buttons)
        # A wrapped label only gets the height it needs once the dialog's width is known:
        # fix the width first, then size the height to it (else the reason was cut off).
        width = 480
        self.setMinimumWidth(width)
        layout.activate()
        self.resize(width, max(self.sizeHint().height(), layout.heightForWidth(width)))

    @classmethod
    def request(cls, parent: QWidget | None, profile_name: str, reason: str,
                answered: Callable[[PasswordAnswer | None], None]) -> PasswordDialog:
        """Open the prompt (window-modal, without a nested event loop) and return at once;
        ``answered`` gets (password, remember) when it is accepted, None when it is
        cancelled or closed. The seam a test answers instead of the person."""
        dialog = cls(profile_name, reason, parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(result: int) -> None:
            accepted = result == QDialog.DialogCode.Accepted.value
            answered((dialog.password.text(), dialog.remember.isChecked()) if accepted else None)

        dialog.finished.connect(finished)
        dialog.open()
        return dialog
