"""Small helpers shared by the library (Django's ``django.core.mail.utils`` and
the parts of ``django.utils.encoding`` that mail needs)."""

from __future__ import annotations

import functools
import socket
from typing import Any

__all__ = ["CachedDnsName", "DNS_NAME", "force_bytes", "force_str", "punycode"]


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
