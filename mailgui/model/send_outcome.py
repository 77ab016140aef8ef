"""What the window shows after a send: a ``SendOutcome`` turned into the banner (severity, title,
sentence, optional hint, details and their label, action), the status-bar line and the result
line of the Transcript pane.

Plain Python, no Qt: the send controller applies a ``Presentation``; the tests read it
without a QApplication.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mailgui.model.sending import SendOutcome
from mailgui.model.source import human_size

__all__ = [
    "CANCELLED",
    "NO_PASSWORD",
    "Banner",
    "BannerAction",
    "Presentation",
    "from_server",
    "present",
]


class BannerAction(enum.Enum):
    """The banner's button; the value is its text."""

    NONE = ""
    OPEN_FOLDER = "Open folder"  # the file backend's output folder
    TRANSCRIPT = "Transcript"  # the Transcript pane


@dataclass(frozen=True)
class Banner:
    severity: str  # "info", "success", "warning" or "error"
    sentence: str
    title: str = ""  # before the sentence: "Not sent."
    hint: str = ""  # after it: what to do next
    details: str = ""  # behind the details button: the server's reply, the Message-ID
    details_label: str = "Server reply"
    action: BannerAction = BannerAction.NONE

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.title, self.sentence, self.hint) if part)


@dataclass(frozen=True)
class Presentation:
    banner: Banner
    status: str = ""  # the status-bar line ("" leaves the status bar alone)
    status_ms: int = 5000
    result: str = ""  # the Transcript pane's result line ("" leaves it alone)
    ok: bool | None = None  # the result line's colour: success, failure, or neutral
    folder: str = ""  # where the file backend wrote (the "Open folder" action)


CANCELLED = Presentation(Banner("warning", "Sending was cancelled. Your draft is unchanged."),
                         status="Cancelled.", result="Cancelled.")
NO_PASSWORD = Presentation(Banner("warning", "Not sent: no password was given."),
                           status="Not sent.")


def from_server(reply: str) -> bool:
    """True if ``reply`` is an SMTP answer ("535 5.7.8 ...") rather than a local error."""
    return bool(re.match(r"\d{3}\b", reply)) or ": " in reply and bool(
        re.search(r": \d{3}\b", reply))


def _result_line(outcome: SendOutcome) -> str:
    reply = outcome.reply
    size = f" \u00b7 {human_size(outcome.size)}" if outcome.size else ""
    mark = "\u2714" if outcome.ok else "\u2716"
    line = f"{mark} {outcome.sentence}{size} \u00b7 {outcome.seconds:.2f} s"
    if reply:
        line += f"\n{'Server' if from_server(reply) else 'Details'}: {reply}"
    return line


def _sent_banner(outcome: SendOutcome) -> tuple[Banner, str]:
    details = outcome.reply
    if outcome.refused:
        details = "\n".join(f"{a}: {r}" for a, r in outcome.refused.items()) + (
            f"\n{outcome.reply}" if outcome.reply else "")
    if outcome.message_id:
        # under Details: a long Message-ID in the sentence widened the whole pane
        details = f"Message-ID: {outcome.message_id}" + (f"\n{details}" if details else "")
    sentence, action, folder = outcome.sentence, BannerAction.NONE, ""
    if outcome.written_file:
        folder = str(outcome.written_file).rsplit("/", 1)[0]
        sentence += f" Written to {outcome.written_file}."
        action = BannerAction.OPEN_FOLDER
    severity = "warning" if outcome.refused else "success"
    return Banner(severity, sentence, details=details, details_label="Details",
                  action=action), folder


def present(outcome: SendOutcome) -> Presentation:
    """The banner, status line and result line for a send that ended (sent, failed, or
    cancelled). A send waiting for a password is not an end: it is never presented."""
    result, ok = _result_line(outcome), outcome.ok
    if outcome.ok:
        banner, folder = _sent_banner(outcome)
        return Presentation(banner, outcome.sentence, 8000, result, ok, folder)
    if outcome.cancelled:
        return Presentation(Banner("warning", outcome.sentence), "Cancelled.", 5000, result, ok)
    banner = Banner("error", outcome.sentence, title="Not sent.", details=outcome.reply,
                    details_label="Server reply" if from_server(outcome.reply) else "Details",
                    action=BannerAction.TRANSCRIPT)
    return Presentation(banner, "Not sent.", 8000, result, ok)
