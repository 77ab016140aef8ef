"""What every check shares: findings, results, and one parsed view of the message.

A check is a function ``run(view, **options) -> CheckResult``. It reads the message through a
:class:`MessageView` (parsed once, whatever number of checks run) and says what is wrong as
:class:`Finding` objects: a severity, a sentence, how to fix it, where in the message, and the
reference the finding relies on. Nothing here imports Qt, touches the network, or raises for a
malformed message: a message that cannot be parsed is itself a finding.
"""

from __future__ import annotations

import email
import email.policy
import enum
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any


class Severity(enum.IntEnum):
    """How much a finding matters; ordered, so ``max()`` gives the worst."""

    INFO = 0  # worth knowing, nothing to fix
    WARNING = 1  # some recipients or filters will treat the message worse
    ERROR = 2  # the message is broken, will be refused, or fails verification

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Location:
    """Where a finding is.

    ``part`` is the MIME section number as IMAP writes it (``"1"``, ``"2.1"``; ``None`` for the
    message as a whole, ``"0"`` for the top-level headers); ``line`` is 1-based in the part's
    decoded text (for HTML, the line of the HTML source); ``element`` names what is at fault: an
    HTML tag (``<img src="logo.png">``), a CSS declaration (``display: flex``), a header name
    or a URL.
    """

    part: str | None = None
    line: int | None = None
    element: str | None = None

    def describe(self) -> str:
        bits = []
        if self.part == "0":
            bits.append("headers")
        elif self.part:
            bits.append(f"part {self.part}")
        if self.line:
            bits.append(f"line {self.line}")
        if self.element:
            bits.append(self.element)
        return ", ".join(bits)

    def to_json(self) -> dict[str, Any]:
        return {"part": self.part, "line": self.line, "element": self.element}


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about a message."""

    check: str  # which check: "clients", "links", "spam", "dkim", "lint"
    code: str  # stable identifier, e.g. "lint.no-text-alternative"; tests and filters use it
    severity: Severity
    message: str  # one sentence a tester understands
    fix: str = ""  # how to fix it, a sentence (empty when there is nothing to do)
    location: Location = field(default_factory=Location)
    reference: str = ""  # URL of the rule, data set entry or RFC the finding relies on
    data: Mapping[str, Any] = field(default_factory=dict)  # check-specific details

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "code": self.code,
            "severity": self.severity.label,
            "message": self.message,
            "fix": self.fix,
            "location": self.location.to_json(),
            "reference": self.reference,
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_json` (an unknown severity reads as INFO)."""
        loc = data.get("location") or {}
        try:
            severity = Severity[str(data.get("severity")).upper()]
        except KeyError:
            severity = Severity.INFO
        return cls(
            check=str(data.get("check", "")), code=str(data.get("code", "")),
            severity=severity, message=str(data.get("message", "")),
            fix=str(data.get("fix") or ""),
            location=Location(loc.get("part"), loc.get("line"), loc.get("element")),
            reference=str(data.get("reference") or ""), data=dict(data.get("data") or {}),
        )


@dataclass
class CheckResult:
    """What one check found, plus its own summary (a score, per-client numbers, ...).

    ``error`` is set when the check could not run at all (spamd missing, a parser missing); the
    sentence says why and how to get it. ``findings`` is then empty.
    """

    check: str
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "error": self.error,
            "summary": self.summary,
            "findings": [f.to_json() for f in self.findings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        """The inverse of :meth:`to_json`."""
        return cls(str(data.get("check", "")),
                   [Finding.from_json(f) for f in data.get("findings") or []],
                   dict(data.get("summary") or {}), str(data.get("error") or ""))


@dataclass
class Report:
    """Every check's result for one message."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    def counts(self) -> dict[str, int]:
        out = {s.label: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.label] += 1
        return out

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def result(self, check: str) -> CheckResult | None:
        return next((r for r in self.results if r.check == check), None)

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(), "results": [r.to_json() for r in self.results]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """The inverse of :meth:`to_json` (what ``mailcore check --json`` printed, or a
        stored report)."""
        return cls([CheckResult.from_json(r) for r in data.get("results") or []
                    if isinstance(r, dict)])


@dataclass
class Part:
    """One leaf of the MIME tree."""

    section: str  # IMAP section number: "1", "2.1"; "1" for a single-part message
    message: Message  # the email package's part (headers, payload)
    start_line: int  # 1-based line of the raw message where this part's headers begin

    @property
    def content_type(self) -> str:
        return self.message.get_content_type()

    @property
    def is_attachment(self) -> bool:
        disposition = (self.message.get_content_disposition() or "").lower()
        return disposition == "attachment" or (
            disposition == "inline" and bool(self.message.get_filename())
        )

    @property
    def transfer_encoding(self) -> str:
        return str(self.message.get("Content-Transfer-Encoding", "7bit")).strip().lower()

    @functools.cached_property
    def raw_body(self) -> bytes:
        """The body as it is on the wire (still base64 or quoted-printable)."""
        payload = self.message.get_payload(decode=False)
        if isinstance(payload, str):
            return payload.encode("utf-8", "surrogateescape")
        return b""

    @functools.cached_property
    def content(self) -> bytes:
        """The body decoded from its transfer encoding."""
        data = self.message.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""

    @functools.cached_property
    def text(self) -> str:
        """The body as text (for text/* parts), decoded with its charset, never raising."""
        charset = self.message.get_content_charset() or "us-ascii"
        try:
            return self.content.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")


class MessageView:
    """A message parsed once for every check: its raw bytes, headers and MIME leaves."""

    def __init__(self, raw: bytes) -> None:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        self.raw = bytes(raw)
        self.message: EmailMessage = email.message_from_bytes(
            self.raw, policy=email.policy.default
        )  # type: ignore[assignment]
        self._cache: dict[str, Any] = {}

    @classmethod
    def of(cls, message: Any) -> MessageView:
        """A view of bytes, a str, an ``email`` message or a mailcore/Django message."""
        if isinstance(message, MessageView):
            return message
        if isinstance(message, (bytes, bytearray, memoryview, str)):
            return cls(bytes(message) if not isinstance(message, str) else message.encode())
        if hasattr(message, "message") and callable(message.message):  # a mailcore message
            from mailcore.wire import serialize

            return cls(serialize(message, linesep="\r\n").getvalue())
        if hasattr(message, "getvalue") and hasattr(message, "pieces"):  # wire.Serialized
            return cls(message.getvalue())
        if isinstance(message, Message):
            return cls(message.as_bytes(policy=email.policy.SMTP))
        raise TypeError(f"cannot check a {type(message).__name__}; give bytes or a message")

    # -- headers -----------------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """A header's decoded value, or None; never raises for a malformed header."""
        try:
            value = self.message.get(name)
        except Exception:  # noqa: BLE001 - the email package raises many types for bad input
            return self.raw_header(name)
        return None if value is None else str(value)

    def raw_header(self, name: str) -> str | None:
        """A header's value as written (unfolded, not decoded)."""
        for key, value in self.message.raw_items():
            if key.lower() == name.lower():
                return "".join(str(value).splitlines()).strip()
        return None

    def header_names(self) -> list[str]:
        return [k for k, _ in self.message.raw_items()]

    # -- parts -------------------------------------------------------------------------------

    @functools.cached_property
    def parts(self) -> list[Part]:
        """Every leaf part, with its section number and the raw line where its headers begin
        (found from the boundary lines, so a finding can point into the source)."""
        leaves: list[Part] = []
        lines = [line.rstrip(b"\r") for line in self.raw.split(b"\n")]

        def walk(node: Message, prefix: str, first: int, last: int) -> None:
            # first/last: 0-based line range of this node (headers included)
            if not node.is_multipart():
                leaves.append(Part(prefix or "1", node, first + 1))
                return
            children = node.get_payload()
            boundary = (node.get_boundary() or "").encode("utf-8", "surrogateescape")
            starts: list[int] = []
            end = last
            if boundary:
                delimiter, close = b"--" + boundary, b"--" + boundary + b"--"
                for i in range(first, last):
                    stripped = lines[i].rstrip(b" \t")
                    if stripped == close:
                        end = i
                        break
                    if stripped == delimiter:
                        starts.append(i + 1)
            for i, child in enumerate(children, 1):  # type: ignore[arg-type]
                lo = starts[i - 1] if i <= len(starts) else first
                hi = starts[i] - 1 if i < len(starts) else end
                walk(child, f"{prefix}.{i}" if prefix else str(i), lo, hi)

        walk(self.message, "", 0, len(lines))
        return leaves

    def body_parts(self, content_type: str) -> list[Part]:
        """Parts of this type that are the message's body (not attachments)."""
        return [p for p in self.parts if p.content_type == content_type and not p.is_attachment]

    @property
    def html_parts(self) -> list[Part]:
        return self.body_parts("text/html")

    @property
    def text_parts(self) -> list[Part]:
        return self.body_parts("text/plain")

    def part(self, section: str) -> Part | None:
        return next((p for p in self.parts if p.section == section), None)

    def cached(self, key: str, make: Any) -> Any:
        """Share expensive derived data (a parsed HTML tree) between checks."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def html_tree(self, part: Part) -> Any:
        """The part's HTML parsed by lxml (elements keep ``sourceline``), or None if empty."""
        from mailcore.checks import html

        return self.cached(f"html:{part.section}", lambda: html.parse(part.text))

    def iter_html(self) -> Iterator[tuple[Part, Any]]:
        for part in self.html_parts:
            tree = self.html_tree(part)
            if tree is not None:
                yield part, tree


# -- domains ------------------------------------------------------------------------------------

# second-level labels under which an organisational domain has three labels (co.uk); a small
# list, not the Public Suffix List: close enough to tell alignment apart from a typo
_TWO_LABEL_SUFFIXES = frozenset({
    "co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go", "gob", "nic", "ltd", "plc",
})


def organizational_domain(domain: str) -> str:
    """The registered domain of ``domain`` (``shop.example.co.uk`` -> ``example.co.uk``), by
    the short suffix list above rather than the Public Suffix List."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and labels[-2] in _TWO_LABEL_SUFFIXES and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(from_domain: str, signing_domain: str) -> bool:
    """DMARC's relaxed alignment (RFC 7489 3.1.1): the From domain and the DKIM ``d=`` domain
    have the same organizational domain (a parent, a child or a sibling subdomain counts; a
    public suffix such as ``co.uk`` as ``d=`` does not)."""
    a = from_domain.lower().rstrip(".")
    b = signing_domain.lower().rstrip(".")
    return a == b or organizational_domain(a) == organizational_domain(b)
