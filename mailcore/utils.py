"""Small helpers shared by the library (Django's ``django.core.mail.utils`` and
the parts of ``django.utils.encoding`` that mail needs)."""

from __future__ import annotations

import functools
import socket
from typing import Any

__all__ = ["CachedDnsName", "DNS_NAME", "force_bytes", "force_str", "punycode",
           "split_addresses"]


@functools.lru_cache(maxsize=4096)
def punycode(domain: str) -> str:
    """Return the Punycode of the given domain if it's non-ASCII (cached: the
    idna codec is slow and mail repeats domains)."""
    return domain.encode("idna").decode("ascii")


def force_str(s: Any, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Return a str for ``s``: bytes are decoded, anything else (a lazy
    translation, a number) is turned into text with ``str()``."""
    if isinstance(s, str):
        return s
    if isinstance(s, bytes):
        return str(s, encoding, errors)
    return str(s)


def force_bytes(s: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Return bytes for ``s``: text is encoded, anything else goes through ``str()``."""
    if isinstance(s, bytes):
        if encoding == "utf-8":
            return s
        return s.decode("utf-8", errors).encode(encoding, errors)
    if isinstance(s, memoryview):
        return bytes(s)
    return str(s).encode(encoding, errors)


class CachedDnsName:
    """This machine's fully qualified name, looked up once and lazily:
    ``socket.getfqdn()`` can take seconds."""

    def __str__(self) -> str:
        return self.get_fqdn()

    def get_fqdn(self) -> str:
        if not hasattr(self, "_fqdn"):
            self._fqdn = punycode(socket.getfqdn())
        return self._fqdn


DNS_NAME = CachedDnsName()


def split_addresses(text: str, *, semicolons: bool = False,
                    comments: bool = False) -> list[tuple[str, int, int]]:
    """Split a typed list of addresses at the commas outside quotes and ``<...>``.

    Returns ``(address, start, end)`` for each item that is not blank, stripped, with its
    span in ``text`` (so a view can mark it). A backslash escapes the next character. With
    ``semicolons``, a ";" separates too (as Outlook writes lists); with ``comments``, commas
    inside ``(...)`` (RFC 5322 comments: ``a@x (Doe, Jane)``) do not split. An unclosed
    quote, bracket or parenthesis keeps the rest of the text as one item (which the address
    checks then refuse), never drops it.
    """
    separators = ",;" if semicolons else ","
    items: list[tuple[str, int, int]] = []
    angle = paren = 0
    quoted = escaped = False
    start = 0

    def flush(end: int) -> None:
        raw = text[start:end]
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            items.append((stripped, start + lead, start + lead + len(stripped)))

    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif comments and ch == "(":
            paren += 1
        elif comments and ch == ")":
            paren = max(0, paren - 1)
        elif ch in separators and not angle and not paren:
            flush(i)
            start = i + 1
    flush(len(text))
    return items
