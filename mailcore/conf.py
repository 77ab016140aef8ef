"""Settings for mailcore, standing in for Django's ``django.conf.settings``.

Every setting has Django's name and Django's default. A value comes from, in
order of precedence:

1. ``settings.NAME = value``, ``settings.configure(NAME=value)`` or an active
   ``settings.override(NAME=value)``;
2. the environment variable ``MAILCORE_NAME``, converted to the setting's type;
3. the default below.

Settings are looked up each time they are read, so ``override`` and the
environment apply everywhere, including to backends created earlier without
explicit arguments (as in Django, a backend copies them when it is created).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ImproperlyConfigured", "UnknownSettingError", "Settings", "settings", "DEFAULTS"]

ENV_PREFIX = "MAILCORE_"


class ImproperlyConfigured(Exception):
    """The configuration is wrong in a way that no retry can fix."""


class UnknownSettingError(ImproperlyConfigured, AttributeError):
    """A setting name that mailcore does not know (probably a typo)."""


# Django 5.2's defaults (django/conf/global_settings.py), plus mailcore's own
# additions at the end.
DEFAULTS: dict[str, Any] = {
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
    # mailcore additions
    # A PEM file of CA certificates to trust instead of the system's.
    "EMAIL_SSL_CAFILE": None,
    # Allow sending a password over an unencrypted connection to a host that
    # is not on the loopback interface. Off: mailcore refuses, and says why.
    "EMAIL_ALLOW_INSECURE_AUTH": False,
    "EMAIL_DKIM": None,  # DKIM signing: a DKIMSigner, or {domain, selector, key_file} (or JSON)
    # An OAuth 2.0 access token for SMTP AUTH (XOAUTH2 / OAUTHBEARER) with EMAIL_HOST_USER,
    # instead of EMAIL_HOST_PASSWORD. A static token: it expires (pass oauth_token= a callable
    # to the backend to refresh it).
    "EMAIL_OAUTH_TOKEN": "",
    # Queued sending (mailcore.backends.celery, mailcore.queue; mailcore only). The broker
    # (Celery's, a Redis URL; a password in it is never shown).
    "EMAIL_QUEUE_BROKER_URL": "redis://127.0.0.1:6379/0",
    # Where the queue keeps what happened to each message (sent records, locks, the
    # dead-letter list, counts): a Redis URL; None: the broker's.
    "EMAIL_QUEUE_STATE_URL": None,
    # The Celery queue the backend fills and the workers read (also the Redis keys' prefix).
    "EMAIL_QUEUE_NAME": "mailcore",
    # The backend the workers deliver with (an SMTP backend: mailcore's, or a subclass) and
    # its arguments (a dict, or JSON), on top of the EMAIL_* settings of the workers.
    "EMAIL_QUEUE_DELIVERY_BACKEND": "mailcore.backends.smtp.EmailBackend",
    "EMAIL_QUEUE_DELIVERY_OPTIONS": {},
    # The most messages per destination (recipient domain): "100/m" ("/s", "/m", "/h") for
    # each domain, or a dict (or JSON) {"example.com": "10/s", "*": "100/m"}; None: no limit.
    "EMAIL_QUEUE_RATE_LIMIT": None,
    # Temporary failures (4xx, connection errors, timeouts) are tried again this many times,
    # after about RETRY_BACKOFF * 2**n seconds (with jitter, at most RETRY_BACKOFF_MAX).
    "EMAIL_QUEUE_MAX_RETRIES": 8,
    "EMAIL_QUEUE_RETRY_BACKOFF": 30.0,
    "EMAIL_QUEUE_RETRY_BACKOFF_MAX": 3600.0,
    # A message whose bytes are over SPOOL_THRESHOLD goes to this folder (one the producers
    # and all workers share), not into the broker; the task carries its name and checksum.
    # None: such a message is refused (ImproperlyConfigured) rather than put in Redis whole.
    "EMAIL_QUEUE_SPOOL_DIR": None,
    "EMAIL_QUEUE_SPOOL_THRESHOLD": 5 * 1024 * 1024,
    # How long a message's "sent" record is kept (seconds): a task delivered again within it
    # is not sent again.
    "EMAIL_QUEUE_DEDUP_TTL": 7 * 24 * 3600,
    # The lock a worker holds on a Message-ID while it sends it (seconds; renewed while the
    # content is written), and how long an unused SMTP connection stays open in a worker.
    "EMAIL_QUEUE_LOCK_TTL": 120.0,
    "EMAIL_QUEUE_IDLE_CLOSE": 30.0,
    # Seconds after which Redis gives a task that no worker acknowledged (the worker died)
    # to another worker. Keep it above RETRY_BACKOFF_MAX.
    "EMAIL_QUEUE_VISIBILITY_TIMEOUT": 7200,
    # Tasks each worker process takes from the broker ahead of the one it runs.
    "EMAIL_QUEUE_PREFETCH": 4,
    # messages one task carries (a task of several messages is one broker round trip; each
    # message is still locked, recorded as sent, retried and dead-lettered on its own)
    "EMAIL_QUEUE_BATCH_SIZE": 100,
}

# How to read each setting from a MAILCORE_* environment variable.
_TYPES: dict[str, str] = {
    "EMAIL_PORT": "int",
    "EMAIL_USE_TLS": "bool",
    "EMAIL_USE_SSL": "bool",
    "EMAIL_USE_LOCALTIME": "bool",
    "EMAIL_ALLOW_INSECURE_AUTH": "bool",
    "EMAIL_TIMEOUT": "float_or_none",
    "EMAIL_SSL_KEYFILE": "str_or_none",
    "EMAIL_SSL_CERTFILE": "str_or_none",
    "EMAIL_SSL_CAFILE": "str_or_none",
    "EMAIL_FILE_PATH": "str_or_none",
    "ADMINS": "people",
    "MANAGERS": "people",
    "EMAIL_QUEUE_STATE_URL": "str_or_none",
    "EMAIL_QUEUE_MAX_RETRIES": "int",
    "EMAIL_QUEUE_BATCH_SIZE": "int",
    "EMAIL_QUEUE_RETRY_BACKOFF": "float_or_none",
    "EMAIL_QUEUE_RETRY_BACKOFF_MAX": "float_or_none",
    "EMAIL_QUEUE_SPOOL_DIR": "str_or_none",
    "EMAIL_QUEUE_SPOOL_THRESHOLD": "int",
    "EMAIL_QUEUE_DEDUP_TTL": "int",
    "EMAIL_QUEUE_LOCK_TTL": "float_or_none",
    "EMAIL_QUEUE_IDLE_CLOSE": "float_or_none",
    "EMAIL_QUEUE_VISIBILITY_TIMEOUT": "int",
    "EMAIL_QUEUE_PREFETCH": "int",
}

# EMAIL_DKIM may hold a key; the queue's URLs a Redis password, its delivery options an SMTP one
_SECRET_NAMES = frozenset({"EMAIL_HOST_PASSWORD", "EMAIL_DKIM", "EMAIL_OAUTH_TOKEN",
                           "EMAIL_QUEUE_BROKER_URL", "EMAIL_QUEUE_STATE_URL",
                           "EMAIL_QUEUE_DELIVERY_OPTIONS"})

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _people_list(label: str, value: list) -> list[tuple[str, str]]:
    """ADMINS/MANAGERS from a list: addresses, or [name, address] pairs."""
    people = []
    for item in value:
        if isinstance(item, str):
            people.append(("", item))
        elif isinstance(item, list) and len(item) == 2:
            people.append((str(item[0]), str(item[1])))
        else:
            raise ImproperlyConfigured(
                f"{label}: each entry must be an address or a [name, address] pair"
            )
    return people


def _parse_people(label: str, raw: str) -> list[tuple[str, str]]:
    """Parse ADMINS/MANAGERS: JSON (``[["Ann", "ann@example.com"]]``) or
    ``Ann <ann@example.com>, bob@example.com``."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{label} is not valid JSON: {exc}") from None
        return _people_list(label, value)
    from email.utils import getaddresses

    people = [(n, a) for n, a in getaddresses([raw]) if a]
    if not people:
        raise ImproperlyConfigured(f"{label} holds no address: {raw!r}")
    return people


# What each kind of setting must be, in words (for errors)
KIND_TEXT = {
    "int": "a whole number",
    "bool": "true or false",
    "float_or_none": "a number of seconds",
    "str_or_none": "a text (a path)",
    "people": 'a list of addresses or ["name", "address"] pairs',
    "str": "a text",
}


def coerce(name: str, value: Any, *, label: str | None = None) -> Any:
    """The value of setting ``name`` from text, read as ``MAILCORE_*`` variables are, or from
    a typed value (a TOML file's), checked against the setting's kind. Errors name ``label``
    (default: the environment variable)."""
    label = label or ENV_PREFIX + name
    kind = _TYPES.get(name, "str")
    if isinstance(value, str):
        return _convert(name, value, label)
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "float_or_none": isinstance(value, int | float) and not isinstance(value, bool),
        "str_or_none": False,
        "str": False,
        "people": isinstance(value, list) and all(
            isinstance(v, str) or (isinstance(v, list) and len(v) == 2
                                   and all(isinstance(x, str) for x in v)) for v in value),
    }[kind]
    if not ok:
        raise ImproperlyConfigured(f"{label} must be {KIND_TEXT[kind]}, not {value!r}")
    return _people_list(label, value) if kind == "people" else value


def _convert(name: str, raw: str, label: str | None = None) -> Any:
    kind = _TYPES.get(name, "str")
    env = label or ENV_PREFIX + name
    if kind == "int":
        try:
            return int(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{env} must be a whole number, not {raw!r}") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ImproperlyConfigured(f"{env} must be true or false, not {raw!r}")
    if kind == "float_or_none":
        word = raw.strip().lower()
        if word in ("", "none"):
            return None
        try:
            return float(word)
        except ValueError:
            raise ImproperlyConfigured(f"{env} must be a number of seconds, not {raw!r}") from None
    if kind == "str_or_none":
        return raw if raw.strip() else None
    if kind == "people":
        return _parse_people(env, raw)
    return raw


def _environment_reader() -> Callable[[str], str | None]:
    """``os.environ.get`` for the MAILCORE_ names, without its cost: a setting is read for
    every message sent (the charset, the Date's time zone), and ``os.environ.get`` on a
    name that is not set raises and catches a KeyError inside (about 5 % of a mass send's
    CPU). This looks in the mapping ``os.environ`` keeps (the same one every change through
    ``os.environ`` writes, what ``os.environ.get`` reads) with each name encoded once; where
    that mapping is not there (another Python), it is ``os.environ.get``."""
    environ = os.environ
    data = getattr(environ, "_data", None)
    encodekey = getattr(environ, "encodekey", None)
    decodevalue = getattr(environ, "decodevalue", None)
    if not isinstance(data, dict) or encodekey is None or decodevalue is None:
        return environ.get
    keys: dict[str, Any] = {}

    def get(name: str) -> str | None:
        key = keys.get(name)
        if key is None:
            key = keys[name] = encodekey(name)
        raw = data.get(key)
        return None if raw is None else decodevalue(raw)

    return get


_getenv = _environment_reader()


class Settings:
    """Attribute access to the settings; see the module docstring."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_defaults", dict(DEFAULTS if defaults is None else defaults))
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_lock", threading.RLock())

    # -- reading -----------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._values
        if name in values:
            return values[name]
        if name not in self._defaults:
            raise UnknownSettingError(f"Unknown setting {name!r}")
        raw = _getenv(ENV_PREFIX + name)
        if raw is not None:
            return _convert(name, raw)
        default = self._defaults[name]
        return list(default) if isinstance(default, list) else default

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._defaults))

    def is_overridden(self, name: str) -> bool:
        """True if ``name`` was set in code or in the environment."""
        self._check(name)
        return name in self._values or (ENV_PREFIX + name) in os.environ

    def as_dict(self) -> dict[str, Any]:
        """All settings with their current values (the password masked)."""
        out = {}
        for name in self._defaults:
            value = getattr(self, name)
            out[name] = "********" if name in _SECRET_NAMES and value else value
        return out

    def __repr__(self) -> str:
        changed = {n: ("********" if n in _SECRET_NAMES else self._values[n]) for n in self._values}
        return f"<mailcore.settings {changed!r}>"

    # -- writing -----------------------------------------------------------
    def _check(self, name: str) -> None:
        if name not in self._defaults:
            known = ", ".join(sorted(self._defaults))
            raise UnknownSettingError(f"Unknown setting {name!r}. Known settings: {known}")

    def __setattr__(self, name: str, value: Any) -> None:
        self._check(name)
        with self._lock:
            self._values[name] = value

    def __delattr__(self, name: str) -> None:
        self._check(name)
        with self._lock:
            self._values.pop(name, None)

    def configure(self, **values: Any) -> None:
        """Set several settings at once. An unknown name raises and sets nothing."""
        for name in values:
            self._check(name)
        with self._lock:
            self._values.update(values)

    def reset(self) -> None:
        """Forget every value set in code (the environment still applies)."""
        with self._lock:
            self._values.clear()

    def override(self, **values: Any) -> _Override:
        """Change settings temporarily: a context manager and a decorator.

        ``with settings.override(EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend"):``
        """
        for name in values:
            self._check(name)
        return _Override(self, values)


_MISSING = object()


class _Override(contextlib.ContextDecorator):
    def __init__(self, target: Settings, values: dict[str, Any]) -> None:
        self._target = target
        self._new = values
        self._saved: list[dict[str, Any]] = []

    def __enter__(self) -> Settings:
        target = self._target
        with target._lock:
            self._saved.append({n: target._values.get(n, _MISSING) for n in self._new})
            target._values.update(self._new)
        return target

    def __exit__(self, *exc_info: object) -> None:
        target = self._target
        with target._lock:
            saved = self._saved.pop()
            for name, value in saved.items():
                if value is _MISSING:
                    target._values.pop(name, None)
                else:
                    target._values[name] = value

    # Django's override_settings also has enable()/disable()
    def enable(self) -> None:
        self.__enter__()

    def disable(self) -> None:
        self.__exit__(None, None, None)

    def __call__(self, func: Callable) -> Callable:
        if isinstance(func, type):
            return self._decorate_class(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return await func(*args, **kwargs)

            return async_inner
        return super().__call__(func)

    def _decorate_class(self, cls: type) -> type:
        """A class keeps being a class: a ``unittest.TestCase`` gets the override around each
        test (set up in ``setUp``, undone by a cleanup, as Django's override_settings does);
        any other class gets each of its ``test*`` methods wrapped."""
        import unittest

        if issubclass(cls, unittest.TestCase):
            original_setup = cls.setUp
            override = self

            @functools.wraps(original_setup)
            def setUp(test: Any) -> None:  # noqa: N802 - unittest's name
                cm = override._recreate_cm()
                cm.enable()
                test.addCleanup(cm.disable)
                original_setup(test)

            cls.setUp = setUp  # type: ignore[method-assign]
            return cls
        for name, attr in list(vars(cls).items()):
            if name.startswith("test") and callable(attr):
                setattr(cls, name, self._recreate_cm()(attr))
        return cls

    def _recreate_cm(self) -> _Override:
        return _Override(self._target, self._new)


settings = Settings()
