"""mailgui: a desktop email composer for developers and testers, built on mailcore."""

__version__ = "0.1.0"
APP_NAME = "mailgui"
