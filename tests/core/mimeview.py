"""What a mail reader sees of a message, for comparing two implementations."""

from __future__ import annotations

import email
import email.policy
import re

VOLATILE = re.compile(rb"===============\d+==(?:\.\d+)?")


def normalise(raw: bytes) -> bytes:
    """The raw bytes with boundaries, Date and Message-ID made constant."""
    raw = VOLATILE.sub(b"BOUNDARY", raw)
    raw = re.sub(rb"(?m)^Date: .*(\r?\n[ \t].*)*", b"Date: DATE", raw)
    raw = re.sub(rb"(?m)^Message-ID: .*(\r?\n[ \t].*)*", b"Message-ID: ID", raw)
    return raw


def reader_view(raw: bytes) -> list:
    """Decoded headers, MIME tree, filenames and decoded payloads."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return _part(msg)


def _part(part) -> list:
    headers = []
    for name, value in part.items():
        if name.lower() in ("date", "message-id"):
            continue
        text = str(value)
        if name.lower() == "content-type":
            text = VOLATILE.sub(b"BOUNDARY", text.encode()).decode()
        headers.append((name.lower(), " ".join(text.split())))
    node = [part.get_content_type(), part.get_filename(), part.get_content_disposition(), headers]
    if part.is_multipart():
        node.append([_part(p) for p in part.iter_parts()])
    elif part.get_content_type() == "message/rfc822":
        node.append([_part(p) for p in part.get_payload()])
    else:
        node.append(part.get_payload(decode=True))
    return node
