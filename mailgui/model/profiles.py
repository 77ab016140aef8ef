"""Profiles: where a message goes (an SMTP server or one of mailcore's test backends).

A profile file never holds a secret: the SMTP password lives in the OS keyring (see
``secrets.py``), under the profile's ``id``, and its DKIM private key under ``<id>:dkim``
(``dkim.py``); the profile keeps only whether it signs, the domain and the selector. An OAuth2
login keeps its provider, issuer, client ID and scopes here; its refresh token lives only in the
keyring under ``<id>:oauth`` (``oauth.py``), its access token only in memory. A queue profile
(Celery, ``queueing.py``) keeps its broker URL without the password; the password is the
profile's password in the keyring, under its ``id`` as an SMTP profile's.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from mailgui.model.paths import AppPaths, atomic_write_bytes, atomic_write_json

__all__ = [
    "AUTH",
    "BACKENDS",
    "BUILTIN_IDS",
    "DEFAULT_FROM",
    "KINDS",
    "SECURITY",
    "Profile",
    "ProfileStore",
    "builtin_profiles",
    "split_broker_url",
]

KINDS = {
    "smtp": "SMTP server",
    "inbox": "Local test inbox",
    "console": "Console",
    "file": "Files in a folder",
    "memory": "Memory",
    "dummy": "Dummy (discard)",
    "queue": "Queue (Celery)",
}
AUTH = {"password": "Password", "oauth2": "OAuth2 (sign in with the provider)"}
OAUTH_PROVIDERS = ("google", "microsoft", "custom")
SECURITY = {"none": "None (no encryption)", "starttls": "STARTTLS", "tls": "Implicit TLS (SMTPS)"}
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_FROM = "Mail Tester <tester@example.com>"
# The one map from a profile's kind to the mailcore backend that delivers it, by the short name
# that both ``mailcore.get_connection`` and ``mailcore --backend`` take.
BACKENDS = {
    "smtp": "smtp",
    "inbox": "smtp",
    "console": "console",
    "file": "file",
    "memory": "locmem",
    "dummy": "dummy",
    "queue": "celery",  # mailcore.backends.celery (queueing.queue_backend makes it)
}
DEFAULT_QUEUE = "mailcore"
BUILTIN_IDS = (
    "builtin-inbox", "builtin-console", "builtin-file", "builtin-memory", "builtin-dummy",
)


@dataclass
class Profile:
    """One place to send to. ``kind`` is a key of KINDS; SMTP fields matter only for "smtp"."""

    name: str
    kind: str = "smtp"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    from_email: str = ""
    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    timeout: float = 30.0
    client_cert: str = ""
    client_key: str = ""
    ca_file: str = ""
    file_path: str = ""
    dkim_enabled: bool = False  # sign what goes out with DKIM (the key is in the keyring)
    dkim_domain: str = ""  # d=; empty: the From (else user name) domain
    dkim_selector: str = ""  # s=; empty: ``dkim.DEFAULT_SELECTOR``
    auth: str = "password"  # a key of AUTH: how an SMTP profile logs in
    oauth_provider: str = "custom"  # google, microsoft, custom (``oauth.PROVIDERS``)
    oauth_issuer: str = ""
    oauth_client_id: str = ""  # the user's own app registration (not a secret)
    oauth_scopes: str = ""  # space-separated
    oauth_auth_url: str = ""  # custom provider: empty means discovered from the issuer
    oauth_token_url: str = ""
    # a queue profile: the broker (a Redis URL, never with its password: that is in the
    # keyring) and the Celery queue; the delivery settings are the workers' own
    queue_broker_url: str = ""
    queue_name: str = DEFAULT_QUEUE
    queue_password: bool = False  # the broker needs the password kept in the keyring
    builtin: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown profile kind {self.kind!r}")
        if self.security not in SECURITY:
            raise ValueError(f"unknown security {self.security!r}")
        if self.auth not in AUTH:
            raise ValueError(f"unknown login {self.auth!r}")
        if self.oauth_provider not in OAUTH_PROVIDERS:
            raise ValueError(f"unknown OAuth2 provider {self.oauth_provider!r}")

    @property
    def is_smtp(self) -> bool:
        return self.backend_name == "smtp"

    @property
    def uses_oauth(self) -> bool:
        """True if this SMTP profile logs in with an OAuth2 access token, not a password."""
        return self.kind == "smtp" and self.auth == "oauth2"

    @property
    def needs_password(self) -> bool:
        if self.kind == "queue":
            return self.queue_password
        return self.kind == "smtp" and bool(self.username) and not self.uses_oauth

    def broker_url(self, password: str | None = None) -> str:
        """A queue profile's broker URL, with ``password`` put in (for the backend only:
        never shown, never written)."""
        url = self.queue_broker_url
        if not password:
            return url
        parts = urlsplit(url)
        user = quote(unquote(parts.username or ""), safe="")
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"{user}:{quote(password, safe='')}@{host}",
                           parts.path, parts.query, parts.fragment))

    @property
    def signs(self) -> bool:
        """True if what this profile sends is DKIM-signed (SMTP profiles only)."""
        return self.kind == "smtp" and self.dkim_enabled

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    def describe(self) -> str:
        """A short line saying where this profile sends: "smtp.example.com:587, STARTTLS"."""
        if self.kind == "smtp":
            user = f", as {self.username}" if self.username else ""
            if self.uses_oauth:
                user = f", as {self.username or '?'} (OAuth2)"
            security = "no encryption" if self.security == "none" else SECURITY[self.security]
            return f"{self.host or '?'}:{self.port}, {security}{user}"
        if self.kind == "file":
            return f"files in {self.file_path or '?'}"
        if self.kind == "queue":
            return f"Celery queue \u201c{self.queue_name}\u201d at {self.queue_broker_url or '?'}"
        return self.kind_label

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("builtin")
        # the login's settings only when they say something (a password login writes none:
        # "password" is the default, and the word has no place in the file)
        for name in _LOGIN_FIELDS:
            if data[name] == _LOGIN_DEFAULTS[name]:
                del data[name]
        for name in _QUEUE_FIELDS:  # the same for the queue's (only a queue profile has them)
            if data[name] == _QUEUE_DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        known = {f.name for f in fields(cls)} - {"builtin"}
        kwargs = {k: v for k, v in data.items() if k in known}
        # Anything that looks like a secret is dropped, even if someone put it in by hand
        # (unknown keys such as "dkim_private_key" are not read at all).
        for name in ("password", "access_token", "refresh_token", "oauth_token",
                     "client_secret", "oauth_client_secret"):
            kwargs.pop(name, None)
        if "queue_broker_url" in kwargs:  # a password typed into the file by hand: dropped
            kwargs["queue_broker_url"] = split_broker_url(str(kwargs["queue_broker_url"]))[0]
        if "queue_password" in kwargs:
            kwargs["queue_password"] = bool(kwargs["queue_password"])
        if "dkim_enabled" in kwargs:
            kwargs["dkim_enabled"] = bool(kwargs["dkim_enabled"])
        if "port" in kwargs:
            kwargs["port"] = int(kwargs["port"])
        if "timeout" in kwargs:
            kwargs["timeout"] = float(kwargs["timeout"])
        return cls(**kwargs)

    def duplicate(self) -> Profile:
        twin = copy.deepcopy(self)
        twin.id = uuid.uuid4().hex
        twin.name = f"{self.name} (copy)"
        twin.builtin = False
        return twin

    def check_tls_files(self) -> None:
        """Raise ``mailcore.errors.TLSFileError`` if a CA file, client certificate or key set
        here can't be used: before anything connects, with the file named (ssl would say only
        "PEM lib"). ``model.errors`` words it."""
        from mailcore.errors import check_tls_files

        if self.is_smtp:
            check_tls_files(self.ca_file, self.client_cert, self.client_key)

    def backend_kwargs(self, password: str | None = None,
                       oauth_token: Any = None) -> dict[str, Any]:
        """Keyword arguments for ``mailcore.get_connection(self.backend_name, **kwargs)``.
        An OAuth2 profile logs in with ``oauth_token`` (a string, or a callable returning a
        fresh access token: ``oauth.TokenSource``), never a password."""
        if self.kind == "smtp":
            login = {"oauth_token": oauth_token} if self.uses_oauth and oauth_token else {}
            if self.uses_oauth:
                password = None
            return {**login,
                "host": self.host,
                "port": int(self.port),
                "username": self.username,
                "password": password or "",
                "use_tls": self.security == "starttls",
                "use_ssl": self.security == "tls",
                "timeout": float(self.timeout) if self.timeout else None,
                "ssl_certfile": self.client_cert or None,
                "ssl_keyfile": self.client_key or None,
                "ssl_cafile": self.ca_file or None,
            }
        if self.kind == "inbox":
            return {
                "host": self.host or "127.0.0.1",
                "port": int(self.port),
                "username": "",
                "password": "",
                "use_tls": False,
                "use_ssl": False,
                "timeout": float(self.timeout or 10),
            }
        if self.kind == "file":
            return {"file_path": self.file_path}
        if self.kind == "queue":
            return {"broker_url": self.broker_url(password), "queue": self.queue_name}
        return {}

    @property
    def backend_name(self) -> str:
        """The mailcore backend of this profile (``BACKENDS``)."""
        return BACKENDS[self.kind]


_LOGIN_FIELDS = ("auth", "oauth_provider", "oauth_issuer", "oauth_client_id", "oauth_scopes",
                 "oauth_auth_url", "oauth_token_url")
_LOGIN_DEFAULTS = {f.name: f.default for f in fields(Profile) if f.name in _LOGIN_FIELDS}
_QUEUE_FIELDS = ("queue_broker_url", "queue_name", "queue_password")
_QUEUE_DEFAULTS = {f.name: f.default for f in fields(Profile) if f.name in _QUEUE_FIELDS}


def split_broker_url(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): what a profile keeps, and what
    goes to the keyring. ``redis://:secret@host:6379/0`` -> (``redis://host:6379/0``,
    ``secret``); a user name stays."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url, None
    if password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    # (not urlunsplit: it drops the "//" of an empty host for a scheme it does not know,
    # redis+socket:///run/redis.sock)
    rest = (f"?{parts.query}" if parts.query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")
    return f"{parts.scheme}://{netloc}{parts.path}{rest}", unquote(password)


def builtin_profiles(paths: AppPaths) -> list[Profile]:
    """The targets that are always there: the local inbox and mailcore's test backends."""
    return [
        Profile("Local test inbox", "inbox", id="builtin-inbox", from_email=DEFAULT_FROM,
                host="127.0.0.1", port=0, security="none", timeout=10, builtin=True),
        Profile("Console", "console", id="builtin-console", from_email=DEFAULT_FROM,
                builtin=True),
        Profile("Files", "file", id="builtin-file", from_email=DEFAULT_FROM,
                file_path=str(paths.file_backend_dir), builtin=True),
        Profile("Memory", "memory", id="builtin-memory", from_email=DEFAULT_FROM, builtin=True),
        Profile("Dummy", "dummy", id="builtin-dummy", from_email=DEFAULT_FROM, builtin=True),
    ]


class ProfileStore:
    """The user's profiles in ``profiles.json`` (config dir), plus the built-in targets.

    Changes take effect in memory at once. ``upsert``, ``delete`` and ``duplicate`` then write
    the file too, unless ``write=False``: the GUI passes that and runs ``save()`` (fsync
    included) on the worker pool, with an error path. The keyring is not touched here.
    """

    VERSION = 1

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one save at a time, each writes the latest state
        self._user: list[Profile] = []
        self._builtin = builtin_profiles(paths)
        # Set when profiles.json could not be read whole: a copy of it is kept beside it
        # (the next save would overwrite it), and the app says so.
        self.problem = ""
        self.load()

    @property
    def path(self) -> Path:
        return self.paths.profiles_file

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> None:
        self.problem = ""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        except OSError as exc:
            raw = None
            self.problem = f"{self.path} can't be read ({exc.strerror})"
        data: Any = {}
        if raw is not None:
            try:
                data = json.loads(raw.decode("utf-8"))
            except ValueError as exc:
                self.problem = f"{self.path} is not valid JSON ({exc})"
            if not self.problem and not (isinstance(data, dict) and
                                         isinstance(data.get("profiles", []), list)):
                self.problem = f"{self.path} does not hold a list of profiles"
                data = {}
        profiles = []
        skipped = 0
        for item in data.get("profiles", []) if isinstance(data, dict) else []:
            try:
                profiles.append(Profile.from_dict(item))
            except (TypeError, ValueError, AttributeError):
                skipped += 1
        if skipped and not self.problem:
            self.problem = f"{skipped} profile(s) in {self.path} could not be read"
        if self.problem and raw is not None:
            kept = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                atomic_write_bytes(kept, raw)
                self.problem += f"; a copy is kept as {kept.name}"
            except OSError:
                pass
        with self._lock:
            self._user = profiles

    def save(self) -> None:
        """Write the profiles as they are now (OSError if the file can't be written). Safe to
        call from several workers: the save that runs last writes the latest state."""
        with self._write_lock:
            with self._lock:
                payload = {"version": self.VERSION,
                           "profiles": [p.to_dict() for p in self._user]}
            atomic_write_json(self.path, payload)

    # -- queries --------------------------------------------------------------------------
    def user_profiles(self) -> list[Profile]:
        with self._lock:
            return list(self._user)

    def all(self) -> list[Profile]:
        """Built-in targets first (the local inbox on top), then the user's profiles."""
        with self._lock:
            return self._builtin[:1] + list(self._user) + self._builtin[1:]

    def get(self, profile_id: str) -> Profile | None:
        for p in self.all():
            if p.id == profile_id:
                return p
        return None

    # -- changes --------------------------------------------------------------------------
    def upsert(self, profile: Profile, *, write: bool = True) -> None:
        """Add ``profile``, or replace the one with its id."""
        if profile.builtin:
            raise ValueError("built-in targets can't be changed")
        with self._lock:
            for i, p in enumerate(self._user):
                if p.id == profile.id:
                    self._user[i] = profile
                    break
            else:
                self._user.append(profile)
        if write:
            self.save()

    def delete(self, profile_id: str, *, write: bool = True) -> None:
        with self._lock:
            self._user = [p for p in self._user if p.id != profile_id]
        if write:
            self.save()

    def duplicate(self, profile_id: str, *, write: bool = True) -> Profile:
        original = self.get(profile_id)
        if original is None:
            raise KeyError(profile_id)
        twin = original.duplicate()
        if twin.kind == "inbox":
            twin.kind = "smtp"
        self.upsert(twin, write=write)
        return twin
