"""The public API: every name on the page, with Django 5.2's signatures."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mailcore
from mailcore.backends import base, console, dummy, filebased, locmem, smtp

PAGE_NAMES = [
    "send_mail",
    "send_mass_mail",
    "mail_admins",
    "mail_managers",
    "get_connection",
    "EmailMessage",
    "EmailMultiAlternatives",
    "BadHeaderError",
    "SafeMIMEText",
    "SafeMIMEMultipart",
    "settings",
]


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_names_exist(name):
    assert hasattr(mailcore, name)
    assert name in mailcore.__all__


def test_everything_django_exports_is_here(django_mail):
    missing = [name for name in django_mail.__all__ if not hasattr(mailcore, name)]
    assert missing == []


def test_star_import_works():
    namespace: dict = {}
    exec("from mailcore import *", namespace)  # noqa: S102
    assert "send_mail" in namespace and "outbox" in namespace


def test_bad_header_error_is_a_value_error():
    assert issubclass(mailcore.BadHeaderError, ValueError)


@pytest.mark.parametrize(
    "name", ["send_mail", "send_mass_mail", "mail_admins", "mail_managers", "get_connection"]
)
def test_function_signatures_match_django(django_mail, name):
    ours = inspect.signature(getattr(mailcore, name))
    theirs = inspect.signature(getattr(django_mail, name))
    assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.default, p.kind) for p in theirs.parameters.values()
    ]


@pytest.mark.parametrize("name", ["EmailMessage", "EmailMultiAlternatives"])
def test_class_signatures_match_django(django_mail, name):
    ours = inspect.signature(getattr(mailcore, name))
    theirs = inspect.signature(getattr(django_mail, name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]


def test_positional_order():
    msg = mailcore.EmailMessage(
        "subject",
        "body",
        "from@example.com",
        ["to@example.com"],
        ["bcc@example.com"],
        None,
        [("a.txt", "x", "text/plain")],
        {"X-H": "1"},
        ["cc@example.com"],
        ["reply@example.com"],
    )
    assert (msg.bcc, msg.cc, msg.reply_to, msg.extra_headers) == (
        ["bcc@example.com"],
        ["cc@example.com"],
        ["reply@example.com"],
        {"X-H": "1"},
    )
    alt = mailcore.EmailMultiAlternatives(
        "s",
        "b",
        "f@example.com",
        ["t@example.com"],
        None,
        None,
        None,
        None,
        [("<p>x</p>", "text/html")],
        ["cc@example.com"],
        ["r@example.com"],
    )
    assert alt.alternatives == [("<p>x</p>", "text/html")]
    assert alt.alternatives[0].mimetype == "text/html"
    assert (alt.cc, alt.reply_to) == (["cc@example.com"], ["r@example.com"])


def test_smtp_backend_signature_starts_like_django(django_mail):
    from django.core.mail.backends.smtp import EmailBackend as DjangoSMTP

    ours = list(inspect.signature(smtp.EmailBackend).parameters)
    theirs = [p for p in inspect.signature(DjangoSMTP).parameters if p != "kwargs"]
    assert ours[: len(theirs)] == theirs


def test_backend_modules():
    for module in (smtp, console, filebased, locmem, dummy):
        assert issubclass(module.EmailBackend, base.BaseEmailBackend)
    with pytest.raises(NotImplementedError):
        base.BaseEmailBackend().send_messages([])


def test_import_loads_neither_qt_nor_keyring():
    code = (
        "import sys, mailcore, mailcore.backends.smtp, mailcore.backends.console, "
        "mailcore.backends.filebased, mailcore.backends.locmem, mailcore.wire\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'keyring', 'mailgui', 'django', 'aiosmtpd')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mailcore_source_never_imports_the_gui():
    from pathlib import Path

    root = Path(mailcore.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for forbidden in (
            "import PySide6",
            "from PySide6",
            "import keyring",
            "import mailgui",
            "from mailgui",
        ):
            assert forbidden not in text, f"{path} mentions {forbidden}"
