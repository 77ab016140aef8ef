"""Open an .eml file as a draft: headers, text body, HTML alternative, attachments.

Attachments are written to the draft's attachments folder, so the draft refers to files like any
other draft does.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import re
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage as StdEmailMessage
from pathlib import Path

from mailgui.model.draft import AttachmentRef, Draft, safe_filename

__all__ = ["SKIPPED_HEADERS", "draft_from_eml", "header_text", "parse_message", "part_text",
           "unicode_domain"]

# Headers that the composer owns, that mailcore writes anew, that servers add on the way
# (trace and authentication results), or that describe the original message and would be
# false on a new one (a signature over other bytes, the program that wrote it).
SKIPPED_HEADERS = {
    "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "received",
    "return-path", "x-peer", "x-mailfrom", "x-rcptto", "delivered-to",
    "dkim-signature", "domainkey-signature", "arc-seal", "arc-message-signature",
    "arc-authentication-results", "authentication-results", "received-spf", "x-received",
    "x-original-to", "x-spam-status", "x-spam-score", "x-spam-flag", "x-virus-scanned",
    "user-agent", "x-mailer", "x-originating-ip", "x-google-smtp-source",
    "x-gm-message-state", "x-mozilla-status", "x-mozilla-status2", "x-mozilla-keys",
}
# A file that has none of these is not taken for a message.
_MESSAGE_HEADERS = ("from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
                    "content-type", "received", "return-path", "sender", "reply-to")


def parse_message(data: bytes) -> StdEmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def header_text(msg: StdEmailMessage, name: str) -> str:
    """Every ``name`` header of ``msg`` decoded as a reader reads it, joined by ", ".

    The raw value is unfolded and its leading white space dropped before it is decoded: a
    subject folded right after its colon ("Subject:" CRLF " =?utf-8?q?...?=") has no leading
    space (the email package keeps the fold's space, so each round trip added one)."""
    out = []
    for key, raw in msg.raw_items():
        if key.lower() != name.lower():
            continue
        value = _FOLD.sub("", str(raw)).lstrip(" \t")
        out.append(str(email.policy.default.header_factory(name, value)))
    return ", ".join(out)


def unicode_domain(domain: str) -> str:
    """An IDN domain as people write it ("bücher.de", not "xn--bcher-kva.de"); a domain
    that is not valid IDNA is kept as it is."""
    if "xn--" not in domain.lower():
        return domain
    try:
        return domain.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return domain


def _address_text(msg: StdEmailMessage, name: str) -> str:
    """The addresses of every ``name`` header, as the draft's field holds them: display
    names decoded (the white space between two encoded words dropped, as RFC 2047 says: the
    email package's address parser keeps it, so a long name gained a space), IDN domains in
    Unicode. A header without an address ("undisclosed-recipients:;") is kept as text."""
    out = []
    for key, raw in msg.raw_items():
        if key.lower() != name.lower():
            continue
        value = _FOLD.sub("", str(raw)).strip(" \t")
        pairs = [(n, a) for n, a in email.utils.getaddresses([value]) if a]
        if not pairs or "@" not in value:
            if value:
                out.append(str(email.policy.default.header_factory(name, value)))
            continue
        for display, addr in pairs:
            display = str(make_header(decode_header(display))) if display else ""
            local, _at, domain = addr.rpartition("@")
            if not local:
                out.append(addr)
                continue
            try:
                out.append(str(Address(display, local, unicode_domain(domain))))
            except (ValueError, IndexError, TypeError):
                out.append(f"{display} <{addr}>" if display else addr)
    return ", ".join(out)


def _unique(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


def part_text(part: StdEmailMessage) -> str:
    """The text of a part, decoded by its charset; raw UTF-8 (errors replaced) when the email
    package can't (an unknown charset, a broken part)."""
    try:
        return str(part.get_content())
    except (LookupError, ValueError, KeyError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def _leaves(part: StdEmailMessage, skip: tuple[object, ...]) -> list[StdEmailMessage]:
    """Every part that is not a container, in order, nested multiparts included; an attached
    message (message/rfc822) is one part."""
    if any(part is s for s in skip):
        return []
    if part.get_content_maintype() == "multipart":
        out = []
        for child in part.iter_parts():
            out += _leaves(child, skip)
        return out
    return [part]


def draft_from_eml(data: bytes, attachments_dir_for: Path | None = None,
                   draft: Draft | None = None, notes: list[str] | None = None) -> Draft:
    """A new draft with the content of the message in ``data``.

    ``attachments_dir_for`` is the folder where attachments are saved (created when needed).
    What could not be kept as it was is described in ``notes`` (inline images, for one: a
    draft has attachments, not multipart/related). Raises ValueError for a file that is not
    a message.
    """
    msg = parse_message(data)
    if not any(name.lower() in _MESSAGE_HEADERS for name in msg.keys()) or (
            b"\0" in data[:4096]):
        raise ValueError("this file is not an email message (no mail headers at its start)")
    notes = notes if notes is not None else []
    draft = draft or Draft()

    draft.from_email = _address_text(msg, "From")
    draft.to = _address_text(msg, "To")
    draft.cc = _address_text(msg, "Cc")
    draft.bcc = _address_text(msg, "Bcc")  # a saved draft carries it (sent bytes never do)
    draft.reply_to = _address_text(msg, "Reply-To")
    draft.subject = header_text(msg, "Subject")
    draft.headers = []
    for name, raw in msg.raw_items():
        if name.lower() in SKIPPED_HEADERS:
            continue
        value = _FOLD.sub("", str(raw)).lstrip(" \t")
        value = str(email.policy.default.header_factory(name, value))
        draft.headers.append((name, value.replace("\r", " ").replace("\n", " ")))
    body_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    draft.body = part_text(body_part).replace("\r\n", "\n") if body_part is not None else ""
    draft.html = part_text(html_part).replace("\r\n", "\n") if html_part is not None else ""

    draft.attachments = []
    parts = _leaves(msg, (body_part, html_part))
    inline = [p for p in parts if p.get("Content-ID") and p.get_content_maintype() == "image"]
    if inline:
        notes.append(f"{len(inline)} inline image{'s' if len(inline) != 1 else ''} "
                     "became attachment" + ("s" if len(inline) != 1 else "")
                     + " (the HTML still refers to cid: addresses, which mail readers "
                     "won't show)")
    if attachments_dir_for is not None:
        for index, part in enumerate(parts, start=1):
            payload = part.get_payload(decode=True)
            if payload is None:  # an attached message: keep its bytes
                payload = part.as_bytes() if part.is_multipart() else b""
                inner = part.get_payload()
                if isinstance(inner, list) and inner:
                    payload = inner[0].as_bytes()
            name = part.get_filename() or _default_name(part, index)
            target = _write_private(attachments_dir_for, safe_filename(name), payload)
            draft.attachments.append(AttachmentRef(str(target), part.get_content_type()))
    return draft


def _write_private(folder: Path, name: str, payload: bytes) -> Path:
    """Write ``payload`` to a new file in ``folder``, as private as the draft (0600, in a
    folder only its owner can open, 0700): a copy of a mail's attachment is nobody else's."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # (mkdir's mode yields to the umask; an old folder is made so)
    while True:
        target = _unique(folder, name)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # made meanwhile: the next name
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        return target


def _default_name(part: StdEmailMessage, index: int) -> str:
    import mimetypes

    ctype = part.get_content_type()
    ext = ".eml" if ctype == "message/rfc822" else (mimetypes.guess_extension(ctype) or ".bin")
    return f"attachment-{index}{ext}"
