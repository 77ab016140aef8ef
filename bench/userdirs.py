"""A throwaway user for a mailgui started by a bench: HOME and the XDG folders under one
folder, and the null keyring backend, so nothing of the machine's user is read or written."""

from __future__ import annotations

import os
from pathlib import Path


def throwaway_user(home: Path) -> dict[str, str]:
    """The environment variables that put a mailgui's files under ``home`` (made here)."""
    (home / "run").mkdir(parents=True, exist_ok=True)
    os.chmod(home / "run", 0o700)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
