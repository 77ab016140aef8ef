"""The profile editor dialog and the password prompt. Layout only."""

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
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mailgui.model.profiles import KINDS, SECURITY
from mailgui.views.common import mono_font, named


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
        self.resize(860, 600)
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
        self.username = QLineEdit()
        named(self.username, "User name")
        self.username.setPlaceholderText("empty: no login")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        named(self.password, "Password", "Stored in the system keyring, never in a file")
        self.password_note = QLabel()
        self.password_note.setWordWrap(True)
        self.password_note.setStyleSheet("color: palette(placeholder-text);")
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
        smtp_form.addRow("&User name:", self.username)
        smtp_form.addRow("Pass&word:", self.password)
        smtp_form.addRow("", self.password_note)
        smtp_form.addRow("&Timeout:", self.timeout)
        smtp_form.addRow("Client certificate:", self.client_cert)
        smtp_form.addRow("Client key:", self.client_key)
        smtp_form.addRow("CA file (private server):", self.ca_file)
        self.smtp_group = QGroupBox("SMTP server")
        self.smtp_group.setLayout(smtp_form)

        self.file_path = PathEdit("Folder for message files")
        file_form = QFormLayout()
        file_form.addRow("&Folder:", self.file_path)
        self.file_group = QGroupBox("Files")
        self.file_group.setLayout(file_form)

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
        right.addWidget(self.file_group)
        right.addLayout(test_row)
        right.addWidget(self.test_transcript)
        right.addStretch(1)

        body = QHBoxLayout()
        body.addLayout(left)
        body.addWidget(self.form, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.keyring_status)
        layout.addLayout(body, 1)
        layout.addLayout(bottom)
        # Asked before the dialog closes (Close, Esc, the window's X); False keeps it open.
        self.can_close: Callable[[], bool] | None = None

    def done(self, result: int) -> None:
        if self.can_close is not None and not self.can_close():
            return
        super().done(result)  # (the window's X goes through here too: closeEvent -> reject)


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
    def ask(cls, parent: QWidget | None, profile_name: str, reason: str
            ) -> tuple[str, bool] | None:
        dialog = cls(profile_name, reason, parent)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.password.text(), dialog.remember.isChecked()
