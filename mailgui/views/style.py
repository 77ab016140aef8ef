"""Colours and the small style sheets of the window, in one place.

Views apply them; controllers name a state ("ok", "error", a banner severity), never a colour.
Plain strings (Qt colour names and style-sheet snippets), so this module imports no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BANNERS",
    "BannerColours",
    "DROP_TARGET",
    "ERROR",
    "FIELD_PROBLEM",
    "FIELD_UNDERLINE",
    "HIGHLIGHT",
    "IMAGE_PLACEHOLDER",
    "MUTED",
    "OK",
    "banner_sheet",
    "highlight",
    "muted_label",
    "notice_bar",
    "problem_label",
    "result_label",
    "warning_label",
]

OK = "#1e6b34"  # green: sent, connected
ERROR = "#9b1c1c"  # red: not sent, not connected, no keyring
FIELD_PROBLEM = "#b71c1c"  # a problem under a field, in a table row, in a pane
FIELD_UNDERLINE = "#c62828"  # the wavy line under a bad address
DROP_TARGET = "#2f6fb5"  # the dashed frame while files are dragged over the attachments
IMAGE_PLACEHOLDER = "#d9dde3"  # a blocked remote image in the HTML preview
PREVIEW_FRAME = "#e6e8eb"  # around a phone- or tablet-wide browser-engine preview
MUTED = "palette(placeholder-text)"  # hints and notes


@dataclass(frozen=True)
class BannerColours:
    background: str
    text: str
    border: str


BANNERS = {
    "info": BannerColours("#e8f1fb", "#1d4f91", "#9bbde6"),
    "success": BannerColours("#e7f5ea", OK, "#97cfa6"),
    "warning": BannerColours("#fff6e0", "#7a5200", "#e8c66f"),
    "error": BannerColours("#fdecea", ERROR, "#eba3a3"),
}

# The syntax highlighting of MIME sources and SMTP transcripts: role -> colour.
HIGHLIGHT = {
    "header-name": "#1d4f91",
    "header-value": "#24292f",
    "header-important": "#6a1b9a",  # Subject, From, To, Cc
    "boundary": "#8a5a00",
    "folded": "#5f6b7a",
    "folded-background": "#eef1f5",
    "client": "#1d4f91",  # C: lines
    "server-ok": OK,  # S: 2xx and 3xx lines
    "server-error": "#b3261e",  # S: 4xx and 5xx lines
    "note": "#6b7280",  # * lines
}


def highlight(role: str) -> str:
    return HIGHLIGHT[role]


def banner_sheet(severity: str) -> str:
    """The style sheet of a MessageBanner of ``severity`` (info, success, warning, error)."""
    c = BANNERS.get(severity, BANNERS["info"])
    return (f"MessageBanner {{ background: {c.background}; border: 1px solid {c.border}; "
            f"border-radius: 4px; }}"
            f" QLabel {{ color: {c.text}; background: transparent; border: none; }}")


def notice_bar(severity: str) -> tuple[str, str, str]:
    """(background, border, text) of a small notice strip, in a banner's colours."""
    c = BANNERS[severity]
    return c.background, c.border, c.text


def result_label(ok: bool | None) -> str:
    """A result line: green when it worked, red when it did not, plain when neither."""
    if ok is None:
        return ""
    return f"color: {OK if ok else ERROR};"


def warning_label(warn: bool) -> str:
    """A line that must be read (no keyring), or a plain one."""
    return f"color: {ERROR}; font-weight: 600;" if warn else ""


def problem_label() -> str:
    return f"color: {FIELD_PROBLEM};"


def muted_label(extra: str = "") -> str:
    return f"color: {MUTED};{(' ' + extra) if extra else ''}"
