"""Code moved from Django keeps working where it reaches into the library: the settings
override on test classes, the names Django's users patch (make_msgid, formatdate, DNS_NAME,
EmailMessage.message, smtplib.SMTP) and connection classes of their own. The servers are
real (aiosmtpd on 127.0.0.1); the stand-in classes are real smtplib subclasses."""

from __future__ import annotations

import io
import smtplib
import unittest

import pytest

import mailcore
import mailcore.message
from mailcore import EmailMessage, get_connection
from mailcore.backends.filebased import EmailBackend as FileBackend
from mailcore.backends.smtp import EmailBackend as SMTPBackend
from mailcore.conf import ImproperlyConfigured


def _msg(**kwargs) -> EmailMessage:
    return EmailMessage("Subject", "Body", "from@example.com", ["to@example.com"], **kwargs)


# -- settings.override on classes --------------------------------------------------------------


def test_override_decorates_a_testcase_class_and_stays_a_class() -> None:
    seen: list[int] = []

    @mailcore.settings.override(EMAIL_PORT=4025)
    class Case(unittest.TestCase):
        def setUp(self) -> None:  # noqa: N802
            seen.append(mailcore.settings.EMAIL_PORT)

        def test_port(self) -> None:
            seen.append(mailcore.settings.EMAIL_PORT)

    assert isinstance(Case, type) and issubclass(Case, unittest.TestCase)
    result = unittest.TextTestRunner(stream=io.StringIO()).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(Case))
    assert result.wasSuccessful() and result.testsRun == 1
    assert seen == [4025, 4025]
    assert mailcore.settings.EMAIL_PORT == 25


def test_override_decorates_the_test_methods_of_a_plain_class() -> None:
    @mailcore.settings.override(EMAIL_HOST="mail.example.org")
    class Checks:
        def test_host(self) -> str:
            return mailcore.settings.EMAIL_HOST

        def helper(self) -> str:
            return mailcore.settings.EMAIL_HOST

    assert isinstance(Checks, type)
    assert Checks().test_host() == "mail.example.org"
    assert Checks().helper() == "localhost"


def test_override_enable_and_disable() -> None:
    override = mailcore.settings.override(DEFAULT_FROM_EMAIL="me@example.com")
    override.enable()
    try:
        assert mailcore.settings.DEFAULT_FROM_EMAIL == "me@example.com"
    finally:
        override.disable()
    assert mailcore.settings.DEFAULT_FROM_EMAIL == "webmaster@localhost"


# -- what the backends write follows the patch points of message() -----------------------------


def test_patched_make_msgid_and_formatdate_reach_the_console_backend(monkeypatch) -> None:
    monkeypatch.setattr(mailcore.message, "make_msgid", lambda domain=None: "<fixed@id.example>")
    monkeypatch.setattr(mailcore.message, "formatdate",
                        lambda localtime=False: "Mon, 30 Nov 2026 12:00:00 -0000")
    out = io.StringIO()
    get_connection("console", stream=out).send_messages([_msg()])
    assert "Message-ID: <fixed@id.example>" in out.getvalue()
    assert "Date: Mon, 30 Nov 2026 12:00:00 -0000" in out.getvalue()


def test_a_message_method_of_a_subclass_decides_what_is_sent(smtp_server) -> None:
    class Tagged(EmailMessage):
        def message(self, *args, **kwargs):
            msg = super().message(*args, **kwargs)
            msg["X-Tagged"] = "by-subclass"
            return msg

    backend = SMTPBackend(host=smtp_server.host, port=smtp_server.port, timeout=5)
    assert backend.send_messages([Tagged("s", "b", "f@example.com", ["t@example.com"])]) == 1
    (record,) = smtp_server.handler.wait_for(1)
    assert b"\r\nX-Tagged: by-subclass\r\n" in record.data


def test_message_patched_on_the_class_is_what_the_file_backend_writes(monkeypatch,
                                                                      tmp_path) -> None:
    original = EmailMessage.message

    def message(self, *args, **kwargs):
        msg = original(self, *args, **kwargs)
        msg["X-Patched"] = "yes"
        return msg

    monkeypatch.setattr(EmailMessage, "message", message)
    backend = FileBackend(file_path=tmp_path)
    backend.send_messages([_msg()])
    (written,) = list(tmp_path.iterdir())
    assert b"\nX-Patched: yes\n" in written.read_bytes()


# -- connection classes that are not mailcore's ------------------------------------------------


class RecordingSMTP(smtplib.SMTP):
    """A real smtplib client that notes its sendmail() calls."""

    calls: list[tuple[str, list[str]]] = []

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        type(self).calls.append((from_addr, list(to_addrs)))
        return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)


def test_a_custom_connection_class_is_driven_as_django_drives_it(smtp_server) -> None:
    RecordingSMTP.calls = []

    class Backend(SMTPBackend):
        @property
        def connection_class(self):
            return RecordingSMTP

    backend = Backend(host=smtp_server.host, port=smtp_server.port, timeout=5)
    msg = _msg(bcc=["hidden@example.com"])
    assert backend.send_messages([msg]) == 1
    assert RecordingSMTP.calls == [("from@example.com", ["to@example.com", "hidden@example.com"])]
    (record,) = smtp_server.handler.wait_for(1)
    assert record.rcpt_tos == ["to@example.com", "hidden@example.com"]
    assert b"Bcc" not in record.data
    assert backend.last_results[0].message_id in record.data.decode()


def test_smtplib_smtp_replaced_in_a_test_is_used(smtp_server, monkeypatch) -> None:
    RecordingSMTP.calls = []
    monkeypatch.setattr(smtplib, "SMTP", RecordingSMTP)
    mailcore.settings.configure(EMAIL_HOST=smtp_server.host, EMAIL_PORT=smtp_server.port)
    assert mailcore.send_mail("s", "b", "f@example.com", ["t@example.com"]) == 1
    assert RecordingSMTP.calls == [("f@example.com", ["t@example.com"])]
    assert len(smtp_server.handler.wait_for(1)) == 1


def test_custom_connection_logs_in_over_loopback_by_name(smtp_auth_server) -> None:
    """'localhost' is this machine: a connection class without a socket of its own to ask
    still may log in there without TLS."""
    from tests.support.servers import TEST_PASSWORD, TEST_USER

    logins: list[str] = []

    class LoggingIn(smtplib.SMTP):
        def login(self, user, password, *, initial_response_ok=True):
            logins.append(user)
            return super().login(user, password, initial_response_ok=initial_response_ok)

    class Backend(SMTPBackend):
        @property
        def connection_class(self):
            return LoggingIn

    backend = Backend(host="localhost", port=smtp_auth_server.port, timeout=5,
                      username=TEST_USER, password=TEST_PASSWORD)
    assert backend.send_messages([_msg()]) == 1
    assert logins == [TEST_USER]


def test_file_backend_without_a_folder_raises_what_django_raises() -> None:
    with pytest.raises(TypeError) as caught:
        FileBackend()
    assert isinstance(caught.value, ImproperlyConfigured)
    assert "EMAIL_FILE_PATH" in str(caught.value)
