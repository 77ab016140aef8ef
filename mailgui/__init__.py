"""mailgui: a desktop email composer for developers and testers, built on mailcore."""

from __future__ import annotations

__all__ = ["APP_NAME", "__version__"]

APP_NAME = "mailgui"


def __getattr__(name: str) -> str:
    # One version for the whole distribution, mailcore's, looked up when asked for: the
    # inbox server process imports mailgui without needing all of mailcore at start-up.
    if name == "__version__":
        from mailcore import __version__

        return __version__
    raise AttributeError(f"module 'mailgui' has no attribute {name!r}")
