"""mailgui: a desktop email composer for developers and testers, built on mailcore."""

from mailcore import __version__  # one version for the whole distribution

__all__ = ["APP_NAME", "__version__"]

APP_NAME = "mailgui"
