"""A keyring backend for tests that make the keyring slow or broken, the way a real one is.

``ControlledKeyring`` is a real ``keyring.backend.KeyringBackend``: set with
``keyring.set_keyring`` it is what ``keyring`` (and so mailgui's ``SecretStore``) talks to. It
keeps passwords in the backend it wraps (the system keyring under scripts/sandbox.sh), and a
test can make an operation wait until it opens a gate (a keyring behind a slow D-Bus or an
unlock prompt) or raise (a backend's own error, or the D-Bus error of a Secret Service that
died). The operations are "get", "set", "delete", and "status": the ``priority`` that mailgui
reads to decide whether the keyring is usable, as it does before every call.
"""

from __future__ import annotations

import threading
from typing import Any

import keyring.errors
from keyring.backend import KeyringBackend

__all__ = ["GATE_TIMEOUT", "ControlledKeyring", "dbus_error"]

GATE_TIMEOUT = 30.0  # seconds: a gate a test forgot to open fails the call, never hangs it


class _Priority:
    """``priority``: on the backend in use (an instance) it is a "status" call that can be
    held or made to fail; on the class (keyring's discovery) a plain number."""

    def __get__(self, backend: ControlledKeyring | None, owner: type | None = None) -> float:
        if backend is not None:
            backend._call("status")  # noqa: SLF001 - its own descriptor
        return 1.0


class ControlledKeyring(KeyringBackend):
    """Passwords go to ``inner``; ``hold`` and ``fail`` say which operations wait or raise."""

    priority = _Priority()  # type: ignore[assignment]

    def __init__(self, inner: KeyringBackend) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[str] = []  # the operations asked for, in order
        self._gates: dict[str, threading.Event] = {}
        self._failures: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    # -- what the test says ---------------------------------------------------------------
    def hold(self, *operations: str) -> threading.Event:
        """Make ``operations`` wait (on the thread that calls them) until the returned event
        is set."""
        gate = threading.Event()
        with self._lock:
            for operation in operations:
                self._gates[operation] = gate
        return gate

    def fail(self, operation: str, exc: BaseException | None) -> None:
        """Make ``operation`` raise ``exc`` from now on (None: work again)."""
        with self._lock:
            if exc is None:
                self._failures.pop(operation, None)
            else:
                self._failures[operation] = exc

    def release(self) -> None:
        """Open every gate (the fixture does this at the end of each test)."""
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.set()

    # -- the backend ------------------------------------------------------------------------
    def _call(self, operation: str) -> None:
        with self._lock:
            self.calls.append(operation)
            gate = self._gates.get(operation)
        if gate is not None and not gate.wait(GATE_TIMEOUT):
            raise keyring.errors.KeyringError(f"the test never opened the gate of {operation}")
        with self._lock:
            exc = self._failures.get(operation)
        if exc is not None:
            raise exc

    def get_password(self, service: str, username: str) -> str | None:
        self._call("get")
        return self.inner.get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._call("set")
        self.inner.set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._call("delete")
        self.inner.delete_password(service, username)

    def get_credential(self, service: str, username: str | None) -> Any:
        self._call("get")
        return self.inner.get_credential(service, username)


# Never a candidate in keyring's own discovery of backends: only a test sets it.
KeyringBackend._classes.discard(ControlledKeyring)  # noqa: SLF001


def dbus_error(name: str = "org.freedesktop.DBus.Error.NoReply",
               text: str = "Did not receive a reply.") -> Exception:
    """What the Secret Service backend raises when the service dies mid-call: jeepney's
    ``DBusErrorResponse`` for an error reply to a Secret Service method call."""
    from jeepney import DBusAddress, new_error, new_method_call
    from jeepney.wrappers import DBusErrorResponse

    call = new_method_call(DBusAddress("/org/freedesktop/secrets",
                                       bus_name="org.freedesktop.secrets",
                                       interface="org.freedesktop.Secret.Service"),
                           "GetSecrets", "ao", ([],))
    return DBusErrorResponse(new_error(call, name, "s", (text,)))
