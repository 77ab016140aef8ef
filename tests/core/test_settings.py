"""The settings contract: Django's names and defaults, configure(), override(),
MAILCORE_* environment variables, read when used."""

from __future__ import annotations

import pytest

import mailcore
from mailcore.backends.smtp import EmailBackend as SMTPBackend
from mailcore.conf import ImproperlyConfigured, UnknownSettingError, settings

DJANGO_DEFAULTS = {
    "EMAIL_BACKEND": "mailcore.backends.smtp.EmailBackend",
    "EMAIL_HOST": "localhost",
    "EMAIL_PORT": 25,
    "EMAIL_HOST_USER": "",
    "EMAIL_HOST_PASSWORD": "",
    "EMAIL_USE_TLS": False,
    "EMAIL_USE_SSL": False,
    "EMAIL_TIMEOUT": None,
    "EMAIL_SSL_KEYFILE": None,
    "EMAIL_SSL_CERTFILE": None,
    "EMAIL_FILE_PATH": None,
    "EMAIL_SUBJECT_PREFIX": "[Django] ",
    "EMAIL_USE_LOCALTIME": False,
    "DEFAULT_FROM_EMAIL": "webmaster@localhost",
    "SERVER_EMAIL": "root@localhost",
    "DEFAULT_CHARSET": "utf-8",
    "ADMINS": [],
    "MANAGERS": [],
}


@pytest.mark.parametrize("name,value", sorted(DJANGO_DEFAULTS.items()))
def test_django_names_and_defaults(name, value):
    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is type(value)


def test_defaults_match_django_global_settings(django_mail):
    from django.conf import global_settings

    for name, value in DJANGO_DEFAULTS.items():
        if name == "EMAIL_BACKEND":
            assert global_settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
        elif name == "EMAIL_FILE_PATH":
            assert not hasattr(global_settings, name)
        else:
            assert getattr(global_settings, name) == value, name


def test_secure_additions_default_to_safe_values():
    assert settings.EMAIL_SSL_CAFILE is None
    assert settings.EMAIL_ALLOW_INSECURE_AUTH is False


def test_list_defaults_are_not_shared():
    settings.ADMINS.append(("x", "x@example.com"))
    assert settings.ADMINS == []


def test_attribute_assignment_and_unknown_names():
    settings.EMAIL_HOST = "mail.example.com"
    assert settings.EMAIL_HOST == "mail.example.com"
    with pytest.raises(UnknownSettingError):
        settings.EMAIL_HOTS = "typo"
    with pytest.raises(AttributeError):
        settings.EMAIL_HOTS  # noqa: B018


def test_configure_sets_several_and_rejects_unknown_atomically():
    settings.configure(EMAIL_HOST="smtp.example.com", EMAIL_PORT=2525)
    assert (settings.EMAIL_HOST, settings.EMAIL_PORT) == ("smtp.example.com", 2525)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PROT"):
        settings.configure(EMAIL_USE_TLS=True, EMAIL_PROT=587)
    assert settings.EMAIL_USE_TLS is False  # nothing was set


def test_override_context_manager_restores():
    settings.EMAIL_HOST = "before"
    with settings.override(EMAIL_HOST="during", EMAIL_PORT=1025):
        assert settings.EMAIL_HOST == "during"
        assert settings.EMAIL_PORT == 1025
        with settings.override(EMAIL_HOST="nested"):
            assert settings.EMAIL_HOST == "nested"
        assert settings.EMAIL_HOST == "during"
    assert settings.EMAIL_HOST == "before"
    assert settings.EMAIL_PORT == 25
    assert not settings.is_overridden("EMAIL_PORT")


def test_override_restores_after_an_exception():
    with pytest.raises(RuntimeError), settings.override(EMAIL_HOST="during"):
        raise RuntimeError("boom")
    assert settings.EMAIL_HOST == "localhost"


def test_override_as_decorator():
    @settings.override(EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend")
    def send():
        return mailcore.send_mail("s", "b", "f@example.com", ["t@example.com"])

    assert send() == 1
    assert len(mailcore.outbox) == 1
    assert settings.EMAIL_BACKEND == "mailcore.backends.smtp.EmailBackend"
    assert send() == 1  # reusable


def test_override_rejects_unknown_names():
    with pytest.raises(UnknownSettingError):
        settings.override(EMAIL_HOTS="x")


def test_settings_are_read_when_used_not_at_import():
    # A backend created inside override() sees the override...
    with settings.override(EMAIL_HOST="inside.example.com", EMAIL_PORT=2525):
        backend = SMTPBackend()
    assert (backend.host, backend.port) == ("inside.example.com", 2525)
    # ...and get_connection() picks up EMAIL_BACKEND at call time.
    with settings.override(EMAIL_BACKEND="mailcore.backends.dummy.EmailBackend"):
        from mailcore.backends.dummy import EmailBackend as Dummy

        assert isinstance(mailcore.get_connection(), Dummy)


def test_environment_values_are_typed(monkeypatch):
    monkeypatch.setenv("MAILCORE_EMAIL_PORT", "2525")
    monkeypatch.setenv("MAILCORE_EMAIL_USE_TLS", "yes")
    monkeypatch.setenv("MAILCORE_EMAIL_USE_SSL", "0")
    monkeypatch.setenv("MAILCORE_EMAIL_TIMEOUT", "7.5")
    monkeypatch.setenv("MAILCORE_EMAIL_HOST", "env.example.com")
    monkeypatch.setenv("MAILCORE_ADMINS", "Ann <ann@example.com>, bob@example.com")
    monkeypatch.setenv("MAILCORE_MANAGERS", '[["Cy", "cy@example.com"]]')
    assert settings.EMAIL_PORT == 2525
    assert settings.EMAIL_USE_TLS is True
    assert settings.EMAIL_USE_SSL is False
    assert settings.EMAIL_TIMEOUT == 7.5
    assert settings.EMAIL_HOST == "env.example.com"
    assert settings.ADMINS == [("Ann", "ann@example.com"), ("", "bob@example.com")]
    assert settings.MANAGERS == [("Cy", "cy@example.com")]
    assert settings.is_overridden("EMAIL_PORT")


def test_code_beats_environment(monkeypatch):
    monkeypatch.setenv("MAILCORE_EMAIL_HOST", "env.example.com")
    with settings.override(EMAIL_HOST="code.example.com"):
        assert settings.EMAIL_HOST == "code.example.com"
    assert settings.EMAIL_HOST == "env.example.com"


def test_environment_is_read_when_used(monkeypatch):
    assert settings.EMAIL_PORT == 25
    monkeypatch.setenv("MAILCORE_EMAIL_PORT", "587")
    assert SMTPBackend().port == 587


@pytest.mark.parametrize(
    "name,raw",
    [("EMAIL_PORT", "twenty-five"), ("EMAIL_USE_TLS", "maybe"), ("EMAIL_TIMEOUT", "soon")],
)
def test_bad_environment_values_say_which_variable(monkeypatch, name, raw):
    monkeypatch.setenv(f"MAILCORE_{name}", raw)
    with pytest.raises(ImproperlyConfigured, match=f"MAILCORE_{name}"):
        getattr(settings, name)


def test_timeout_none_from_environment(monkeypatch):
    monkeypatch.setenv("MAILCORE_EMAIL_TIMEOUT", "")
    assert settings.EMAIL_TIMEOUT is None


def test_password_never_in_repr(monkeypatch):
    settings.EMAIL_HOST_PASSWORD = "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.as_dict())
    backend = SMTPBackend(username="ann", password="p4ss-w0rd")
    assert "p4ss-w0rd" not in repr(backend)


def test_a_dkim_key_in_the_settings_is_never_in_repr():
    settings.EMAIL_DKIM = {"domain": "example.com", "selector": "s1",
                           "private_key": "-----BEGIN PRIVATE KEY-----sekrit"}
    assert "sekrit" not in repr(settings)
    assert "sekrit" not in str(settings.as_dict())


def test_every_change_to_the_environment_is_read_at_once(monkeypatch) -> None:  # noqa: ANN001
    """The settings read the environment through os.environ's own mapping (a fast path):
    whatever changes it, the next read sees."""
    import os

    monkeypatch.delenv("MAILCORE_DEFAULT_CHARSET", raising=False)
    assert mailcore.settings.DEFAULT_CHARSET == "utf-8"
    os.environ["MAILCORE_DEFAULT_CHARSET"] = "iso-8859-1"
    try:
        assert mailcore.settings.DEFAULT_CHARSET == "iso-8859-1"
        os.environ.update({"MAILCORE_DEFAULT_CHARSET": "ascii"})
        assert mailcore.settings.DEFAULT_CHARSET == "ascii"
        os.environ.setdefault("MAILCORE_DEFAULT_CHARSET", "utf-16")  # (already set: kept)
        assert mailcore.settings.DEFAULT_CHARSET == "ascii"
        assert os.environ.pop("MAILCORE_DEFAULT_CHARSET") == "ascii"
        assert mailcore.settings.DEFAULT_CHARSET == "utf-8"
        monkeypatch.setenv("MAILCORE_DEFAULT_CHARSET", "koi8-r")
        assert mailcore.settings.DEFAULT_CHARSET == "koi8-r"
        monkeypatch.setenv("MAILCORE_DEFAULT_CHARSET", "caf\u00e9")  # not ASCII: decoded back
        assert mailcore.settings.DEFAULT_CHARSET == "caf\u00e9"
    finally:
        os.environ.pop("MAILCORE_DEFAULT_CHARSET", None)
