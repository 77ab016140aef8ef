"""Fixtures for the mailcore tests."""

from __future__ import annotations

import pytest

import mailcore
from mailcore.conf import settings


@pytest.fixture(autouse=True)
def _clean_settings_and_outbox(monkeypatch):
    """Every test starts from Django's defaults, with no MAILCORE_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("MAILCORE_"):
            monkeypatch.delenv(name)
    saved = dict(settings._values)
    settings.reset()
    mailcore.outbox = []
    yield
    settings.reset()
    settings.configure(**saved)


@pytest.fixture(autouse=True)
def _stream_every_attached_file(monkeypatch):
    """attach_file() reads files up to 1 MiB at once, as Django does; the tests here
    stream every file, so that the streaming path is what small test files exercise
    (test_message.py checks the limit itself)."""
    import mailcore.message

    monkeypatch.setattr(mailcore.message, "ATTACH_FILE_READ_LIMIT", 0)


@pytest.fixture(scope="session")
def django_mail():
    """Django 5.2's django.core.mail, configured once for the differential tests."""
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure(
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            USE_TZ=True,
            SECRET_KEY="differential-tests",
        )
        django.setup()
    from django.core import mail

    return mail
