"""DKIM: sign what goes out, verify what comes in (RFC 6376), with dkimpy and dnspython.

    from mailcore.checks.dkim import DKIMSigner, generate_key, public_record, verify
    key = generate_key()                                  # PEM, keep it secret
    print(dns_name("s1", "example.com"), public_record(key))  # the TXT record to publish
    signer = DKIMSigner("example.com", "s1", key)
    signed = signer.sign(raw_bytes)
    verify(signed, keys={"s1._domainkey.example.com": public_record(key)})  # no DNS

Sending signs through the backends: ``mailcore.get_connection(dkim=signer)`` (or a dict
``{"domain": ..., "selector": ..., "key_file": ...}``, or the ``EMAIL_DKIM`` setting).

Signing a mailcore message streams: :meth:`DKIMSigner.sign_serialized` reads the message's
chunks once to hash the canonical body (RFC 6376 3.4.3/3.4.4, here, a window at a time), has
dkimpy sign the header fields and that body hash, and returns the same chunks with the
signature in front. A big attachment is never held in memory whole; its file is read (and
base64-encoded) twice, once for the hash and once for the send. A file that changes between
the two passes breaks the signature (a file that changes size fails the send, as without DKIM).

Verification touches the network only when asked: keys come from ``keys=`` (DNS name -> the
TXT record's text) first, then from DNS if ``dns=True`` (the system resolver), ``dns=`` a
``dns.resolver.Resolver`` or ``nameserver=(host, port)``. Nothing here raises for a malformed
message: each DKIM-Signature gets a :class:`Verdict` with a reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dkim
import dkim.crypto
import dkim.util
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError

from mailcore.checks.base import (
    CheckResult,
    Finding,
    Location,
    MessageView,
    Severity,
    aligned,
)

__all__ = [
    "DEFAULT_HEADERS",
    "DKIMSigner",
    "Verdict",
    "dns_name",
    "generate_key",
    "public_record",
    "run",
    "verify",
]

NAME = "dkim"
RFC6376 = "https://www.rfc-editor.org/rfc/rfc6376"
RFC7489_ALIGNMENT = "https://www.rfc-editor.org/rfc/rfc7489#section-3.1.1"
RFC8301 = "https://www.rfc-editor.org/rfc/rfc8301#section-3.2"
RFC6376_LENGTH = "https://www.rfc-editor.org/rfc/rfc6376#section-8.2"

# What is signed by default, when present (RFC 6376 5.4.1's list, and the List-* fields of
# RFC 2369/8058). From is signed once more than it appears ("oversigned"), so that a second
# From can't be added without breaking the signature.
DEFAULT_HEADERS: tuple[str, ...] = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "in-reply-to", "references",
    "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc",
    "resent-message-id",
    "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe",
    "list-post", "list-owner", "list-archive",
)
_OVERSIGNED = ("from",)
_NEVER_SIGNED = frozenset(x.decode() for x in dkim.DKIM.SHOULD_NOT)
_CANONICALIZATIONS = ("relaxed", "simple")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# The body hash reads the message this many bytes at a time at most (the canonical form is
# computed a window at a time, so what a send holds for the hash is this much, not the message).
HASH_WINDOW = 64 * 1024


# -- keys --------------------------------------------------------------------------------------


def generate_key(bits: int = 2048) -> bytes:
    """A new RSA private key, PEM (PKCS#8, unencrypted): keep it like a password.

    Uses the ``cryptography`` package when it is installed, else the ``openssl`` command.
    Keys under 1024 bits are refused (receivers ignore their signatures, RFC 8301)."""
    if not isinstance(bits, int) or bits < 1024:
        raise ValueError(f"a DKIM key has at least 1024 bits (2048 recommended), not {bits}: "
                         "receivers ignore signatures made with smaller keys (RFC 8301)")
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        return _openssl_key(bits)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _openssl_key(bits: int) -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("generating a DKIM key needs the cryptography package "
                           "(pip install cryptography) or the openssl command")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "key.pem")
        command = [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                   f"rsa_keygen_bits:{bits}", "-out", path]
        subprocess.run(command, check=True, capture_output=True, timeout=300)  # noqa: S603
        with open(path, "rb") as f:
            return f.read()


def _parse_private_key(private_key: bytes | str) -> dict[str, int]:
    """dkimpy's parse of a PEM RSA private key (PKCS#1 or PKCS#8); ValueError saying why not."""
    if isinstance(private_key, str):
        private_key = private_key.encode("ascii", "replace")
    if not isinstance(private_key, (bytes, bytearray)):
        raise TypeError(f"a DKIM private key is PEM bytes or text, not a "
                        f"{type(private_key).__name__}")
    pem = bytes(private_key).replace(b"\r\n", b"\n").strip() + b"\n"
    if b"ENCRYPTED" in pem:
        raise ValueError("the DKIM private key is encrypted (a passphrase): export it "
                         "without one (openssl pkey -in key.pem -out plain.pem)")
    try:
        return dkim.crypto.parse_pem_private_key(pem)
    except (dkim.crypto.UnparsableKeyError, binascii.Error, ValueError, IndexError) as exc:
        raise ValueError("the DKIM private key is not a PEM RSA private key (PKCS#1 "
                         f"'BEGIN RSA PRIVATE KEY' or PKCS#8 'BEGIN PRIVATE KEY'): {exc}"
                         ) from None


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


_RSA_ALGORITHM = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + _der(0x05, b""))


def public_record(private_key: bytes | str) -> str:
    """The TXT record to publish at :func:`dns_name`: ``"v=DKIM1; k=rsa; p=MIIB..."`` (the
    public half of ``private_key`` as a SubjectPublicKeyInfo, base64)."""
    key = _parse_private_key(private_key)
    rsa_public = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + rsa_public))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode("ascii")


def key_bits(private_key: bytes | str) -> int:
    """The size of an RSA private key's modulus in bits."""
    return _parse_private_key(private_key)["modulus"].bit_length()


def _ascii_domain(domain: str, what: str) -> str:
    if not isinstance(domain, str):
        raise TypeError(f"the DKIM {what} is a text, not a {type(domain).__name__}")
    text = domain.strip().rstrip(".")
    try:
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise ValueError(f"the DKIM {what} {domain!r} is not a domain name") from None
    labels = text.split(".")
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError(f"the DKIM {what} {domain!r} is not a domain name (letters, digits, "
                         "hyphens and underscores, labels separated by dots)")
    return text.lower()


def dns_name(selector: str, domain: str) -> str:
    """Where the key of ``selector`` at ``domain`` is published: ``"s1._domainkey.example.com"``."""
    return f"{_ascii_domain(selector, 'selector')}._domainkey.{_ascii_domain(domain, 'domain')}"


# -- the body hash, streamed -------------------------------------------------------------------

_TRAILING_WSP = re.compile(rb"[ \t]+\n")
_WSP = re.compile(rb"[ \t]+")


class BodyHash:
    """SHA-256 of a body's canonical form (RFC 6376 3.4.3 simple, 3.4.4 relaxed), fed in
    pieces of any size. Lines may end in CRLF or LF (LF counts as CRLF, as dkimpy reads it).
    Holds at most one window (:data:`HASH_WINDOW`) and one unfinished line."""

    def __init__(self, relaxed: bool) -> None:
        self.relaxed = relaxed
        self._hash = hashlib.sha256()
        self._tail = b""  # the unfinished last line
        self._blank = 0  # empty lines withheld: dropped if nothing follows them
        self._any = False  # a non-empty line was hashed

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), HASH_WINDOW):
            block = self._tail + bytes(view[start:start + HASH_WINDOW])
            cut = block.rfind(b"\n") + 1
            self._tail = block[cut:]
            if cut:
                self._lines(block[:cut] if cut != len(block) else block)

    def _lines(self, block: bytes) -> None:
        # LF-terminated lines (a CR before the LF belongs to the line end)
        block = block.replace(b"\r\n", b"\n")
        if self.relaxed:
            block = _WSP.sub(b" ", _TRAILING_WSP.sub(b"\n", block))
        content = block.rstrip(b"\n")
        if not content:
            self._blank += len(block)
            return
        if self._blank:
            self._hash.update(b"\r\n" * self._blank)
        self._hash.update(content.replace(b"\n", b"\r\n") + b"\r\n")
        self._any = True
        self._blank = len(block) - len(content) - 1

    def digest(self) -> bytes:
        tail = self._tail
        if tail:  # a last line without its line end: dkimpy's reading (the end is added)
            if self.relaxed:
                tail = _WSP.sub(b" ", tail)
            self._hash.update(b"\r\n" * self._blank + tail + b"\r\n")
        elif not self._any and not self.relaxed:
            self._hash.update(b"\r\n")  # simple: an empty body is one CRLF
        return self._hash.digest()


class _Split:
    """Chunks in, the header block (up to and without the empty line) and the body out."""

    def __init__(self, body: BodyHash) -> None:
        self.body = body
        self.head = b""
        self.done = False

    def feed(self, chunk: bytes) -> None:
        if self.done:
            self.body.update(chunk)
            return
        data = self.head + bytes(chunk)
        if data.startswith((b"\r\n", b"\n")):  # no header at all
            end, start = 0, 2 if data.startswith(b"\r\n") else 1
        else:
            crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
            if crlf < 0 and lf < 0:
                if len(data) > 64 * HASH_WINDOW:
                    raise ValueError("the message has no end to its header (no empty line in "
                                     "its first 64 MiB)")
                self.head = data
                return
            if lf < 0 or 0 <= crlf < lf:
                end, start = crlf + 2, crlf + 4
            else:
                end, start = lf + 1, lf + 2
        self.head, self.done = data[:end], True
        self.body.update(data[start:])


# -- signing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DKIMSigner:
    """Signs messages as ``domain`` with the key published under ``selector``.

    ``headers``: the header fields to sign, in order (default: :data:`DEFAULT_HEADERS` that
    the message has, From once more); ``canonicalize``: (header, body) algorithms, each
    ``"relaxed"`` or ``"simple"``. The key is never shown in ``repr()``.
    """

    domain: str
    selector: str
    private_key: bytes = field(repr=False)
    headers: tuple[str, ...] | None = None
    canonicalize: tuple[str, str] = ("relaxed", "relaxed")

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", _ascii_domain(self.domain, "domain"))
        object.__setattr__(self, "selector", _ascii_domain(self.selector, "selector"))
        key = self.private_key
        if isinstance(key, str):
            key = key.encode("ascii", "replace")
        _parse_private_key(key)  # fails now, with a sentence, not at the first send
        object.__setattr__(self, "private_key", bytes(key))
        canon = tuple(str(c).lower() for c in self.canonicalize)
        if len(canon) != 2 or any(c not in _CANONICALIZATIONS for c in canon):
            raise ValueError(f"canonicalize is (header, body), each 'relaxed' or 'simple', not "
                             f"{self.canonicalize!r}")
        object.__setattr__(self, "canonicalize", canon)
        if self.headers is not None:
            if isinstance(self.headers, str):
                raise TypeError("headers is a tuple of header names, not one text")
            names = tuple(str(h).strip().lower() for h in self.headers)
            bad = [h for h in names if not _HEADER_NAME.fullmatch(h)]
            if bad:
                raise ValueError(f"not a header name: {bad[0]!r}")
            if "from" not in names:
                raise ValueError("DKIM signs From always (RFC 6376 5.4): add 'from' to headers")
            never = [h for h in names if h in _NEVER_SIGNED]
            if never:
                raise ValueError(f"{never[0]} changes in transit and must not be signed "
                                 "(RFC 6376 5.4.1)")
            object.__setattr__(self, "headers", names)

    @classmethod
    def from_settings(cls, value: Any) -> DKIMSigner | None:
        """A signer from what a setting or ``get_connection(dkim=...)`` holds: a DKIMSigner,
        None, a dict with ``domain``, ``selector`` and ``private_key`` (PEM bytes or text) or
        ``key_file`` (a path; an unreadable file raises its OSError), optional ``headers`` and
        ``canonicalize``; or that dict as JSON text (for a ``MAILCORE_EMAIL_DKIM`` variable)."""
        if value is None or isinstance(value, DKIMSigner):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("a DKIM setting given as text is a JSON object: "
                                 '{"domain": ..., "selector": ..., "key_file": ...}') from None
        if not isinstance(value, Mapping):
            raise TypeError("dkim is a DKIMSigner, a dict with domain, selector and "
                            f"private_key or key_file, or None; not a {type(value).__name__}")
        options = dict(value)
        unknown = set(options) - {"domain", "selector", "private_key", "key_file", "headers",
                                  "canonicalize"}
        if unknown:
            raise ValueError(f"unknown DKIM option {sorted(unknown)[0]!r} (domain, selector, "
                             "private_key or key_file, headers, canonicalize)")
        missing = [k for k in ("domain", "selector") if not options.get(k)]
        if missing:
            raise ValueError(f"the DKIM setting needs {' and '.join(missing)}")
        key_file = options.pop("key_file", None)
        if options.get("private_key") is None:
            if not key_file:
                raise ValueError("the DKIM setting needs private_key or key_file")
            with open(os.fspath(key_file), "rb") as f:
                options["private_key"] = f.read()
        elif key_file:
            raise ValueError("give the DKIM private_key or key_file, not both")
        if options.get("headers") is not None:
            options["headers"] = tuple(options["headers"])
        if options.get("canonicalize") is not None:
            canon = options["canonicalize"]
            options["canonicalize"] = tuple(canon.split("/") if isinstance(canon, str)
                                            else canon)
        return cls(**{k: v for k, v in options.items() if v is not None})

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public_record(self) -> str:
        return public_record(self.private_key)

    # -- the signature -----------------------------------------------------------------------

    def signature(self, raw: bytes) -> bytes:
        """The ``DKIM-Signature: ...`` header field for ``raw`` (CRLF or LF line ends), CRLF-
        ended; raises ValueError for a message that can't be signed (no From)."""
        return self._signature_of([bytes(raw)])

    def sign(self, raw: bytes) -> bytes:
        """``raw`` with its signature in front (the signature's line ends are the message's)."""
        raw = bytes(raw)
        header = self.signature(raw)
        first = raw.find(b"\n")
        if first > 0 and raw[first - 1:first] != b"\r":
            header = header.replace(b"\r\n", b"\n")
        return header + raw

    def sign_serialized(self, data: Any) -> Any:
        """A ``mailcore.wire.Serialized`` signed: the same pieces (files are read again as it
        is sent) with the signature in front, in the message's own line ends. Reads the
        message once, a chunk at a time, to hash its body."""
        from mailcore.wire import Serialized

        header = self._signature_of(data.chunks())
        if data.linesep == "\n":
            header = header.replace(b"\r\n", b"\n")
        value = header.decode("ascii").partition(":")[2].strip()
        return Serialized([header, *data.pieces], [("DKIM-Signature", value), *data.headers],
                          data.linesep, data.charset)

    def _signature_of(self, chunks: Iterable[bytes]) -> bytes:
        body = BodyHash(relaxed=self.canonicalize[1] == "relaxed")
        split = _Split(body)
        for chunk in chunks:
            split.feed(chunk)
        if not split.done:  # a message that is all header
            split.head, split.done = split.head.rstrip(b"\r\n") + b"\r\n", True
        return self._sign_head(split.head, base64.b64encode(body.digest()))

    def _sign_head(self, head: bytes, bodyhash: bytes) -> bytes:
        """dkimpy signs the header fields and the body hash (what its sign() does, with the
        body hashed by :class:`BodyHash` instead of from one bytes object)."""
        head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            signer = dkim.DKIM(head + b"\r\n", linesep=b"\r\n")
        except dkim.MessageFormatError as exc:
            raise ValueError(f"the message's header can't be signed: {exc}") from None
        present = [name.decode("ascii").lower() for name, _value in signer.headers]
        if "from" not in present:
            raise ValueError("the message has no From header: DKIM signs From, so there is "
                             "nothing to sign")
        if self.headers is not None:
            include = list(self.headers)
        else:
            include = [h for h in present if h in DEFAULT_HEADERS]
            include += [h for h in _OVERSIGNED if h in include]
        names = [h.encode("ascii") for h in include]
        canon = CanonicalizationPolicy.from_c_value("/".join(self.canonicalize).encode())
        domain = self.domain.encode("ascii")
        pk = dkim.crypto.parse_pem_private_key(
            self.private_key.replace(b"\r\n", b"\n").strip() + b"\n")
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", canon.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector.encode("ascii")),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(names)),
            (b"bh", bodyhash),
            (b"b", b"0" * 60),  # folds b= onto its own line, as dkimpy's sign() does
        ]
        signer.signature_algorithm = b"rsa-sha256"
        signer.hasher = dkim.crypto.HASH_ALGORITHMS[b"rsa-sha256"]
        try:
            value = signer.gen_header(fields, names, canon, b"DKIM-Signature", pk)
        except dkim.DKIMException as exc:
            raise ValueError(f"DKIM signing failed: {exc}") from None
        return b"DKIM-Signature: " + value


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What one DKIM-Signature is worth.

    ``result``: ``"pass"``, ``"fail"`` (the message changed since it was signed, or another
    key signed it), ``"none"`` (not signed), ``"temperror"`` (no key at hand: DNS off, a
    timeout) or ``"permerror"`` (a broken signature or key record, no key published);
    ``reason`` says why in a sentence. The rest describe the signature when it could be read.
    """

    result: str
    domain: str
    selector: str
    reason: str
    key_bits: int | None = None
    length: int | None = None  # the l= tag: only this many body bytes are signed
    algorithm: str = ""
    canonicalize: str = ""
    headers: tuple[str, ...] = ()

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}" if self.domain else ""

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "domain": self.domain, "selector": self.selector,
                "reason": self.reason, "key_bits": self.key_bits, "length": self.length,
                "algorithm": self.algorithm, "canonicalize": self.canonicalize,
                "headers": list(self.headers)}


def _record_text(value: str | bytes) -> bytes:
    """A TXT record as pasted: plain text, or zone-file strings (``"v=DKIM1; " "p=MIIB"``)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if text.startswith('"'):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
        if parts:
            text = "".join(parts)
    return text.encode("ascii", "replace")


class _Keys:
    """Key records by DNS name: pasted ones first, then DNS if allowed."""

    def __init__(self, keys: Mapping[str, str] | None, dns: Any, nameserver: Any,
                 timeout: float) -> None:
        self.keys = {str(k).strip().lower().rstrip("."): v for k, v in (keys or {}).items()}
        self.timeout = timeout
        self.resolver: Any = None
        if nameserver is not None:
            import dns.resolver

            host, port = nameserver
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [str(host)]
            resolver.port = int(port)
            self.resolver = resolver
        elif dns is True:
            import dns.resolver

            self.resolver = dns.resolver.Resolver()
        elif dns not in (False, None):
            self.resolver = dns  # a dns.resolver.Resolver of the caller's

    def lookup(self, name: str) -> tuple[bytes | None, str, str]:
        """(record, "", "") or (None, result, reason)."""
        key = name.lower().rstrip(".")
        if key in self.keys:
            return _record_text(self.keys[key]), "", ""
        if self.resolver is None:
            return None, "temperror", f"no key for {key} (DNS lookups are off)"
        import dns.exception
        import dns.resolver

        try:
            answer = self.resolver.resolve(key + ".", "TXT", lifetime=self.timeout)
        except dns.resolver.NXDOMAIN:
            return None, "permerror", f"no key is published at {key} (the name does not exist)"
        except dns.resolver.NoAnswer:
            return None, "permerror", f"no key is published at {key} (no TXT record there)"
        except dns.exception.Timeout:
            return None, "temperror", (f"the DNS lookup of {key} timed out after "
                                       f"{self.timeout:g} s")
        except dns.resolver.NoNameservers:
            return None, "temperror", f"no DNS server answered the lookup of {key}"
        except dns.exception.DNSException as exc:
            return None, "temperror", f"the DNS lookup of {key} failed: {exc}"
        records = [b"".join(r.strings) for r in answer]
        keyed = [r for r in records if b"p=" in r]
        if not keyed:
            return None, "permerror", f"the TXT record at {key} holds no DKIM key (no p= tag)"
        return keyed[0], "", ""


def _text(value: bytes | None) -> str:
    return value.decode("ascii", "replace") if value else ""


MAX_SIGNATURES = 10  # signatures verified per message; real mail carries one to three


def verify(
    raw: bytes,
    *,
    keys: Mapping[str, str] | None = None,
    dns: Any = False,
    nameserver: tuple[str, int] | None = None,
    timeout: float = 5.0,
) -> list[Verdict]:
    """One :class:`Verdict` per DKIM-Signature of ``raw``, top first; a single ``"none"``
    verdict when there is none. Looks keys up in ``keys`` (DNS name -> TXT record text), then
    in DNS only if ``dns`` is True or a resolver, or ``nameserver=(host, port)`` is given."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    try:
        message = dkim.DKIM(raw, minkey=0, timeout=timeout)
    except dkim.MessageFormatError as exc:
        return [Verdict("permerror", "", "", f"the message's header can't be read: {exc}")]
    count = sum(1 for name, _ in message.headers if name.lower() == b"dkim-signature")
    if not count:
        return [Verdict("none", "", "", "the message is not signed")]
    lookup = _Keys(keys, dns, nameserver, timeout)
    verdicts = [_verify_one(message, index, lookup) for index in range(min(count, MAX_SIGNATURES))]
    if count > MAX_SIGNATURES:  # a hostile message must not hold the checker for minutes
        verdicts.append(Verdict("permerror", "", "", f"{count - MAX_SIGNATURES} more "
                                f"DKIM-Signature headers were not verified (at most "
                                f"{MAX_SIGNATURES} are)"))
    return verdicts


def _verify_one(message: dkim.DKIM, index: int, keys: _Keys) -> Verdict:
    try:
        sig, include, sigheaders = message.verify_headerprep(index)
    except dkim.DKIMException as exc:
        return Verdict("permerror", "", "", f"DKIM-Signature {index + 1} is malformed: {exc}")
    domain, selector = _text(sig.get(b"d")).lower(), _text(sig.get(b"s")).lower()
    details: dict[str, Any] = {
        "algorithm": _text(sig.get(b"a")),
        "canonicalize": _text(sig.get(b"c")) or "simple/simple",
        "headers": tuple(_text(h) for h in include),
    }
    if b"l" in sig:
        try:
            details["length"] = int(sig[b"l"])
        except ValueError:
            return Verdict("permerror", domain, selector, f"its l= tag {_text(sig[b'l'])!r} "
                           "is not a number", **details)
    name = f"{selector}._domainkey.{domain}"
    record, result, reason = keys.lookup(name)
    if record is None:
        return Verdict(result, domain, selector, reason, **details)
    try:
        pk, bits, ktag, seqtlsrpt = dkim.evaluate_pk(name.encode(), record)
    except (dkim.DKIMException, binascii.Error, ValueError, IndexError) as exc:
        return Verdict("permerror", domain, selector, f"the key record at {name} is not "
                       f"usable: {exc}", **details)
    details["key_bits"] = bits
    message.pk, message.keysize, message.ktag, message.seqtlsrpt = pk, bits, ktag, seqtlsrpt
    try:
        canon = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
        hasher = dkim.crypto.HASH_ALGORITHMS[sig[b"a"]]
    except (InvalidCanonicalizationPolicyError, KeyError):
        return Verdict("permerror", domain, selector, "its algorithm (a=) or canonicalization "
                       "(c=) is not one DKIM knows", **details)
    body = canon.canonicalize_body(message.body)
    if "length" in details:
        body = body[:details["length"]]
    try:
        expected = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]))
    except (binascii.Error, ValueError):
        return Verdict("permerror", domain, selector, "its body hash (bh=) is not base64",
                       **details)
    if hasher(body).digest() != expected:
        return Verdict("fail", domain, selector, "the body hash does not match: the body was "
                       "changed after it was signed", **details)
    try:
        ok = message.verify_sig_process(sig, include, sigheaders[index], None)
    except dkim.DKIMException as exc:
        return Verdict("permerror", domain, selector, f"the signature can't be checked: {exc}",
                       **details)
    if not ok:
        signed = ", ".join(dict.fromkeys(details["headers"]))
        return Verdict("fail", domain, selector, "the signature does not match the signed "
                       f"header fields: one of them ({signed}) was changed after signing, or "
                       f"the key at {name} is not the one that signed", **details)
    if bits is not None and bits < 1024 and ktag == b"rsa":
        return Verdict("fail", domain, selector, f"the signature is right but its key has only "
                       f"{bits} bits: receivers treat RSA keys under 1024 bits as no signature "
                       "(RFC 8301)", **details)
    return Verdict("pass", domain, selector, f"the signature matches the key at {name}",
                   **details)


# -- the check ---------------------------------------------------------------------------------


def _from_domain(view: MessageView) -> str:
    value = view.header("From") or ""
    try:
        from email.utils import getaddresses

        addresses = [a for _n, a in getaddresses([value]) if "@" in a]
    except Exception:  # noqa: BLE001 - a malformed From is the lint's finding, not ours
        addresses = []
    return addresses[0].rpartition("@")[2].strip().lower().rstrip(".") if addresses else ""


def _finding(code: str, severity: Severity, message: str, fix: str = "", *,
             reference: str = RFC6376, element: str | None = "DKIM-Signature",
             data: Mapping[str, Any] | None = None) -> Finding:
    return Finding(NAME, f"dkim.{code}", severity, message, fix,
                   Location(part="0", element=element), reference, dict(data or {}))


def run(
    view: MessageView,
    *,
    keys: Mapping[str, str] | None = None,
    dns: Any = False,
    nameserver: tuple[str, int] | None = None,
    signer: DKIMSigner | None = None,
    timeout: float = 5.0,
    **_options: Any,
) -> CheckResult:
    """Verify the message's DKIM signatures (or, with ``signer``, sign it first, as the
    composer's draft is not signed yet, and verify with the signer's own key: what the
    receiver would see once the key is published)."""
    try:
        view = MessageView.of(view)
        return _run(view, keys, dns, nameserver, signer, timeout)
    except Exception as exc:  # noqa: BLE001 - a check never raises; it says why it could not run
        return CheckResult(NAME, error=f"the DKIM check could not run: {exc}")


def _run(view: MessageView, keys: Mapping[str, str] | None, dns: Any, nameserver: Any,
         signer: DKIMSigner | None, timeout: float) -> CheckResult:
    raw = view.raw
    findings: list[Finding] = []
    keys = dict(keys or {})
    own_key = False  # verified with the signer's own key: says nothing of what is published
    if signer is not None:
        signer = DKIMSigner.from_settings(signer)
        assert signer is not None
        try:
            raw = signer.sign(raw)
        except ValueError as exc:
            findings.append(_finding("sign-failed", Severity.ERROR, f"The message can't be "
                                     f"signed: {exc}.", "Give the message a From header.",
                                     element=None))
            return CheckResult(NAME, findings, {"verdicts": [], "signed_here": True})
        # A pasted record, or DNS when lookups are on, says whether receivers will verify it;
        # otherwise the signer's own key shows the signature itself is sound.
        if signer.dns_name not in keys and not (dns or nameserver is not None):
            keys[signer.dns_name] = signer.public_record
            own_key = True
    verdicts = verify(raw, keys=keys, dns=dns, nameserver=nameserver, timeout=timeout)
    from_domain = _from_domain(view)
    for v in verdicts:
        findings.extend(_verdict_findings(v, own_key=own_key))
    findings.extend(_alignment_findings(verdicts, from_domain))
    if signer is not None:
        findings.extend(_publication_findings(signer, verdicts, own_key))
    summary = {"verdicts": [v.to_json() for v in verdicts], "from_domain": from_domain,
               "signed_here": signer is not None}
    if signer is not None:
        summary["dns_name"] = signer.dns_name
        summary["public_record"] = signer.public_record
    return CheckResult(NAME, findings, summary)


def _publication_findings(signer: DKIMSigner, verdicts: list[Verdict],
                          own_key: bool) -> list[Finding]:
    """What the composer's check says of the record receivers will look up."""
    name, record = signer.dns_name, signer.public_record
    publish = f"Publish a TXT record at {name} with the value {record}"
    if own_key:
        return [_finding(
            "record-not-checked", Severity.INFO, f"Signed with the profile's key; whether "
            f"{name} is published with that key was not checked (DNS lookups are off).",
            f"{publish}, then check again with DNS lookups on.",
            data={"dns_name": name, "public_record": record})]
    mine = next((v for v in verdicts if v.dns_name == name), None)
    if mine is None or mine.result == "pass":
        return []
    return [_finding(
        "record-not-published", Severity.ERROR, f"Receivers can't verify this signature: the "
        f"record at {name} is missing or is not the profile's key ({mine.reason}).",
        f"{publish} (or sign with the key whose record is published).",
        data={"dns_name": name, "public_record": record})]


def _alignment_findings(verdicts: list[Verdict], from_domain: str) -> list[Finding]:
    """One finding for the message when no signature's domain aligns with From: DMARC
    counts DKIM for the sender if any one signature aligns (and passes, which the verdicts
    themselves report), so a second signature by a mailing service is no fault."""
    domains = list(dict.fromkeys(v.domain for v in verdicts if v.domain))
    if not from_domain or not domains or any(aligned(from_domain, d) for d in domains):
        return []
    listed = ", ".join(domains)
    return [_finding(
        "not-aligned", Severity.WARNING, f"The From domain {from_domain} is not the signing "
        f"domain ({listed}): for DMARC no signature counts for the sender.",
        f"Sign with d={from_domain} (or a parent domain of it), or send from an address at "
        f"{domains[0]}.", reference=RFC7489_ALIGNMENT, element="From",
        data={"from_domain": from_domain, "dkim_domains": domains})]


def _verdict_findings(v: Verdict, *, own_key: bool = False) -> list[Finding]:
    data = v.to_json()
    out: list[Finding] = []
    weak = v.key_bits is not None and v.key_bits < 1024 and v.algorithm.startswith("rsa")
    if v.result == "none":
        out.append(_finding(
            # informational: most mail a test inbox catches is unsigned, and SPF (which no
            # local check can see) may vouch for it; a signature that fails is the error
            "not-signed", Severity.INFO, "The message is not signed with DKIM: receivers "
            "can't tell it is from your domain (Gmail and Yahoo require DKIM or SPF, and both "
            "for bulk senders).", "Sign it: give the SMTP profile a DKIM domain, "
            "selector and key (get_connection(dkim=...), --dkim-key) and publish the key's "
            "TXT record.", element=None, data=data))
        return out
    if weak:
        out.append(_finding(
            "weak-key", Severity.ERROR, f"The key of {v.dns_name} has only {v.key_bits} bits: "
            "receivers ignore DKIM signatures made with RSA keys under 1024 bits.",
            "Generate a 2048-bit key, publish its record under a new selector and sign with "
            "it.", reference=RFC8301, data=data))
    elif v.result == "pass":
        out.append(_finding(
            "pass", Severity.INFO, f"The DKIM signature of {v.domain} verifies "
            f"{'with the profile’s own key' if own_key else f'({v.reason})'}.",
            data=data))
    elif v.result == "fail":
        out.append(_finding(
            "fail", Severity.ERROR, f"The DKIM signature of {v.domain or 'an unknown domain'} "
            f"fails: {v.reason}.", "Sign the message as the last step before sending, and "
            "check that the published record is the one of the signing key.", data=data))
    elif v.result == "temperror":
        out.append(_finding(
            "no-key", Severity.WARNING, f"The DKIM signature of {v.domain} can't be checked: "
            f"{v.reason}.", "Paste the public key record for this selector (keys=, "
            "--dkim-record) or allow DNS lookups (dns=True, --dns).", data=data))
    else:
        out.append(_finding(
            "permerror", Severity.ERROR, f"The DKIM signature of {v.domain or 'an unknown domain'}"
            f" is unusable: {v.reason}.", "Publish the key record at the selector's DNS name "
            "and sign with a well-formed signature.", data=data))
    if v.key_bits == 1024 and v.algorithm.startswith("rsa"):
        out.append(_finding(
            "short-key", Severity.WARNING, f"The key of {v.dns_name} has 1024 bits, the "
            "smallest receivers accept.", "Move to a 2048-bit key under a new selector.",
            reference=RFC8301, data=data))
    if v.algorithm == "rsa-sha1":
        out.append(_finding(
            "sha1", Severity.WARNING, "The signature uses rsa-sha1, which receivers no "
            "longer accept as valid.", "Sign with rsa-sha256.", reference=RFC8301, data=data))
    if v.length is not None:
        out.append(_finding(
            "length-tag", Severity.WARNING, f"The signature covers only the first {v.length} "
            "bytes of the body (l= tag): anyone can append content that still verifies.",
            "Sign without a body length limit.", reference=RFC6376_LENGTH, data=data))
    return out
