"""Passwords, in the OS keyring only (through ``keyring``), never in a file.

If no usable keyring exists (``keyring.errors.NoKeyringError``, the ``fail``/``null`` backend,
or a backend that keeps secrets in a plain file such as those of ``keyrings.alt``), the app says
so and asks for the password when it needs it. Nothing falls back to a file silently.

Every call here may block (D-Bus, an unlock prompt): run them on the worker pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keyring
import keyring.errors

__all__ = ["SERVICE", "KeyringFailed", "KeyringStatus", "KeyringUnavailable", "SecretStore"]

SERVICE = "mailgui"


class KeyringUnavailable(RuntimeError):
    """No secure keyring: the password must be typed in."""


class KeyringFailed(RuntimeError):
    """The keyring raised something unexpected (a D-Bus error, a backend's bug): its text
    is a sentence for the person, the original exception is the ``__cause__``."""


@dataclass(frozen=True)
class KeyringStatus:
    usable: bool
    backend: str
    reason: str = ""

    @property
    def sentence(self) -> str:
        if self.usable:
            return f"Passwords are kept in the system keyring ({self.backend})."
        return (
            f"No secure system keyring is available ({self.reason}). "
            "mailgui will ask for the password each time it is needed and never writes it "
            "to a file."
        )


def _backend_name(backend: Any) -> str:
    name = getattr(backend, "name", None) or type(backend).__name__
    return str(name)


def _unusable_reason(backend: Any) -> str | None:
    """Why ``backend`` is not a keyring to keep a password in, or None if it is fine."""
    module = type(backend).__module__
    if module.startswith("keyring.backends.fail"):
        return "no keyring backend was found"
    if module.startswith("keyring.backends.null"):
        return "the keyring is switched off (null backend)"
    if module.startswith("keyrings.alt") or "plaintext" in type(backend).__name__.lower():
        return f"the only keyring backend, {_backend_name(backend)}, stores passwords in a file"
    if module.startswith("keyring.backends.chainer"):
        inner = [b for b in getattr(backend, "backends", []) if _unusable_reason(b) is None]
        if not inner:
            return "no keyring backend was found"
    try:
        priority = backend.priority
    except Exception:  # noqa: BLE001 - a backend's priority check may raise anything
        return "the keyring backend is not usable here"
    if isinstance(priority, int | float) and priority <= 0:
        return f"{_backend_name(backend)} is not usable here"
    return None


class SecretStore:
    """Get, set and delete profile passwords under service ``SERVICE`` and the profile id."""

    def __init__(self, service: str = SERVICE, backend: Any = None) -> None:
        self.service = service
        self._backend = backend

    @property
    def backend(self) -> Any:
        return self._backend if self._backend is not None else keyring.get_keyring()

    def status(self) -> KeyringStatus:
        try:
            backend = self.backend
        except Exception as exc:  # noqa: BLE001 - keyring's discovery may raise anything
            return KeyringStatus(False, "none", f"the keyring could not be loaded: {exc}")
        reason = _unusable_reason(backend)
        return KeyringStatus(reason is None, _backend_name(backend), reason or "")

    def _checked(self) -> Any:
        status = self.status()
        if not status.usable:
            raise KeyringUnavailable(status.reason)
        return self.backend

    def get(self, profile_id: str) -> str | None:
        """The stored password, or None. KeyringUnavailable if there is no usable keyring."""
        backend = self._checked()
        try:
            return backend.get_password(self.service, profile_id)
        except keyring.errors.NoKeyringError as exc:
            raise KeyringUnavailable(str(exc)) from exc
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"the keyring refused: {exc}") from exc

    def set(self, profile_id: str, password: str) -> None:
        backend = self._checked()
        try:
            backend.set_password(self.service, profile_id, password)
        except keyring.errors.NoKeyringError as exc:
            raise KeyringUnavailable(str(exc)) from exc
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"the keyring refused: {exc}") from exc

    def delete(self, profile_id: str) -> None:
        backend = self._checked()
        try:
            backend.delete_password(self.service, profile_id)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"the keyring refused: {exc}") from exc
