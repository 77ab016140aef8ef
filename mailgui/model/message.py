"""Draft + profile -> ``mailcore.EmailMultiAlternatives``: ONE function, used by the source
preview and by sending, so the preview shows the bytes that go out."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass

import mailcore
from mailcore.message import HEADER_NAME, STRUCTURE_HEADERS
from mailgui.model.addresses import check_address, check_addresses, valid_list
from mailgui.model.draft import Draft, unsendable_problem
from mailgui.model.profiles import DEFAULT_FROM, Profile

__all__ = [
    "Problem",
    "boundary_seed",
    "build_message",
    "character_problems",
    "check_header",
    "draft_problems",
    "default_from",
    "effective_from",
    "from_problem",
    "line_end_change",
]



@dataclass(frozen=True)
class Problem:
    field: str  # "from", "to", "cc", "bcc", "reply_to", "headers", "recipients"
    message: str


ONE_SENDER = "one sender address only (put the others in Reply-To or Cc)"
MAX_WORD = 900  # a header line may hold 998 characters; a longer word can't be folded


def default_from(profile: Profile | None) -> str:
    """The sender when the From field is empty: the profile's default From; for an SMTP
    server without one, its login name when that is an address (the test targets use a
    placeholder sender, which would be wrong on a real server); else "" (From is needed)."""
    if profile is not None and profile.from_email:
        return profile.from_email
    if profile is None or profile.kind != "smtp":
        return DEFAULT_FROM
    login = profile.username.strip()
    return login if "@" in login and check_address(login) is None else ""


def effective_from(draft: Draft, profile: Profile | None) -> str:
    return draft.from_email.strip() or default_from(profile)


def from_problem(draft: Draft, profile: Profile | None) -> str | None:
    """Why the sender can't be used, or None. From holds exactly one address."""
    sender = effective_from(draft, profile)
    if not sender:
        name = f"\u201c{profile.name}\u201d " if profile is not None else ""
        return (f"enter the sender's address (the profile {name}has no default From)")
    checks = check_addresses(sender)
    if len(checks) > 1:
        return ONE_SENDER
    return check_address(sender)


def check_header(name: str, value: str) -> str | None:
    """None if ``name: value`` can be an extra header, else why not."""
    if not name:
        return "the header has no name"
    if not HEADER_NAME.fullmatch(name):
        return f'"{name}" is not a header name (letters, digits and dashes, no spaces or colon)'
    reason = unsendable_problem(value)
    if reason:
        return f"the value of {name} {reason}"
    if name.lower() in STRUCTURE_HEADERS:
        return (f"{name} is written by mailgui from the message's parts (the HTML tab and "
                "the attachments set it)")
    if any(len(word) > MAX_WORD for word in value.split()):
        return (f"the value of {name} has a word longer than {MAX_WORD} characters, more "
                "than a mail header line can hold")
    return None


# The draft's one-line fields: (attribute, Problem.field, label)
ONE_LINE_FIELDS = (("from_email", "from", "From"), ("to", "to", "To"), ("cc", "cc", "Cc"),
                   ("bcc", "bcc", "Bcc"), ("reply_to", "reply_to", "Reply-To"),
                   ("subject", "subject", "Subject"))


def character_problems(draft: Draft) -> list[Problem]:
    """Line breaks and control characters in the subject and the address fields (pasted
    text has its line breaks made spaces; these came in another way: an opened file, a
    restored draft, a drop)."""
    problems = []
    for attribute, field, label in ONE_LINE_FIELDS:
        reason = unsendable_problem(getattr(draft, attribute))
        if reason:
            problems.append(Problem(field, f"{label} {reason}."))
    return problems


def draft_problems(draft: Draft, profile: Profile | None = None) -> list[Problem]:
    """What stops the draft from being sent, each as a sentence (cheap: no file I/O)."""
    problems = character_problems(draft)
    flawed = {p.field for p in problems}  # their address checks would only repeat it
    reason = from_problem(draft, profile) if "from" not in flawed else None
    if reason:
        problems.append(Problem("from", f"From: {reason}"))
    labels = {"to": "To", "cc": "Cc", "bcc": "Bcc", "reply_to": "Reply-To"}
    recipients = 0
    for name, label in labels.items():
        if name in flawed:
            continue
        for check in check_addresses(getattr(draft, name)):
            if check.ok:
                recipients += name != "reply_to"
            else:
                problems.append(Problem(name, f'{label}: "{check.text}" - {check.reason}'))
    if not recipients and not any(p.field in labels for p in problems):
        problems.append(Problem("to", "Add at least one recipient in To, Cc or Bcc."))
    for name, value in draft.headers:
        reason = check_header(name.strip(), value)
        if reason:
            problems.append(Problem("headers", f"Header: {reason}"))
    return problems


def boundary_seed(message_id: str) -> int:
    """The ``boundary_seed`` of a draft's message: fixed by its Message-ID, so every
    serialisation of the same draft (preview, save, send) has the same multipart boundaries."""
    return int.from_bytes(hashlib.sha256(message_id.encode("utf-8")).digest()[:8], "big")


def _valid_list(text: str, label: str) -> list[str]:
    """``valid_list`` with the field named in its ValueError ("To: ...")."""
    try:
        return valid_list(text)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc


def build_message(draft: Draft, profile: Profile | None = None) -> mailcore.EmailMultiAlternatives:
    """The message mailcore will write. Raises ValueError (naming the bad address or header),
    ``mailcore.BadHeaderError`` and OSError (an attachment that can't be opened).

    Message-ID, Date (as headers) and the multipart boundaries (``boundary_seed``) are pinned
    by the draft, so the same draft always gives the same bytes: the source preview is
    byte for byte what is sent. Attachments are added with ``attach_file``: binary files over
    1 MiB stay references (``mailcore.FileContent``) that are streamed when the message is
    written; smaller ones are read at once, as Django does.
    """
    for problem in character_problems(draft):
        raise mailcore.BadHeaderError(problem.message)
    headers: dict[str, str] = {}
    for name, value in draft.headers:
        name = name.strip()
        if not name and not value:
            continue
        reason = check_header(name, value)
        if reason:
            raise mailcore.BadHeaderError(reason)
        headers[name] = value
    if draft.message_id and not any(k.lower() == "message-id" for k in headers):
        headers["Message-ID"] = draft.message_id
    if draft.date and not any(k.lower() == "date" for k in headers):
        headers["Date"] = draft.date
    reason = from_problem(draft, profile)
    if reason:
        raise ValueError(f"From: {reason}")
    message = mailcore.EmailMultiAlternatives(
        subject=draft.subject,
        body=draft.body,
        from_email=valid_list(effective_from(draft, profile))[0],
        to=_valid_list(draft.to, "To"),
        cc=_valid_list(draft.cc, "Cc"),
        bcc=_valid_list(draft.bcc, "Bcc"),
        reply_to=_valid_list(draft.reply_to, "Reply-To"),
        headers=headers,
    )
    message.boundary_seed = boundary_seed(draft.message_id or draft.id)
    if draft.html.strip():
        message.attach_alternative(draft.html, "text/html")
    for attachment in draft.attachments:
        message.attach_file(attachment.path, attachment.mimetype or None)
    return message


LINE_END_READ_LIMIT = 64 * 1000 * 1000  # text files larger than this are not looked into


def line_end_change(path: str, mimetype: str = "") -> int:
    """How many bytes a text attachment gains on the wire because its line ends become CRLF
    (0: none change). A text/* file (by ``mimetype``, else by its name, as ``attach_file``
    decides) that is UTF-8 is sent as text, and mail writes text with CRLF line ends, so each
    bare LF (or CR) arrives as CRLF; other files go as base64, byte for byte. Reads the file:
    call it on a worker. Raises OSError."""
    guessed = mimetype or mimetypes.guess_type(os.path.basename(path))[0] or ""
    if not guessed.startswith("text/") or os.path.getsize(path) > LINE_END_READ_LIMIT:
        return 0
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return 0  # sent as application/octet-stream, unchanged
    crlf = data.count(b"\r\n")
    return (data.count(b"\n") - crlf) + (data.count(b"\r") - crlf)
