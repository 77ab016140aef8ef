"""What a transcript (sending, a connection test) adds at its end to explain itself."""

from __future__ import annotations

from mailcore.smtp import REDACTED

__all__ = ["unanswered_note"]


def unanswered_note(transcript: list[str], timed_out: bool) -> str:
    """For a failed send whose conversation ends with a line of the client's: a note that
    says what that line was and that it got no answer. A login's last line is its secret,
    hidden ("C: ********"), which otherwise ends the transcript unexplained. "" when the
    server had the last word."""
    said = [line for line in transcript if line.startswith(("C: ", "S: "))]
    if not said or not said[-1].startswith("C: "):
        return ""
    line = said[-1][3:]
    verb = line.split()[0].upper() if line.split() else ""
    if REDACTED in line:
        what = ("the login (AUTH, its credentials hidden here as ********)" if verb == "AUTH"
                else "a step of the login (the user name or password, hidden here as "
                "********)")
    elif verb:
        what = f"the {verb} command"
    else:
        what = "an empty line"
    why = ("the server stayed silent until the timeout" if timed_out
           else "the connection ended first")
    return f"* no answer to the last line sent, {what}: {why}"
