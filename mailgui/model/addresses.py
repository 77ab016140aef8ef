"""Address lists as typed by a person: split them, check each one, say what is wrong.

The rule of record is mailcore's (``mailcore.message.sanitize_address``, Django's): an address
it refuses is refused here. It is lenient in a few places where a person almost certainly made a
typo ("bob" with no domain, "a b@example.com"), so a few stricter checks come first, each with a
sentence that says what to fix.

An address whose part before the @ is not ASCII (``jörg@example.test``) is good, with a
*warning*: only a server that offers SMTPUTF8 (RFC 6531) takes it, and mailcore refuses to send
it to any other before anything is sent (``AddressCheck.warning``, ``smtputf8_warning``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.headerregistry import parser

from mailcore.message import envelope_address, needs_smtputf8, sanitize_address
from mailcore.utils import split_addresses as _split

__all__ = ["SMTPUTF8_WARNING", "AddressCheck", "address_warning", "check_address",
           "check_addresses", "smtputf8_warning", "split_addresses", "valid_list"]

# What the composer says under a field with such an address (a warning: it can be sent).
SMTPUTF8_WARNING = ("needs a server that offers SMTPUTF8 (letters before the @ that are not "
                    "ASCII); any other server refuses it before anything is sent")


@dataclass(frozen=True)
class AddressCheck:
    """One address of a list: where it is in the text, and what is wrong with it (if anything)."""

    text: str
    start: int
    end: int
    reason: str | None = None
    warning: str | None = None  # it can be sent, but the person should know this

    @property
    def ok(self) -> bool:
        return self.reason is None


def split_addresses(text: str) -> list[tuple[str, int, int]]:
    """Split a list at the commas (and semicolons) that are outside quotes, <> and ().

    Returns ``(address, start, end)`` for each non-empty item, stripped, with its span in
    ``text`` so a view can mark it (``mailcore.utils.split_addresses``, the scanner the
    ``mailcore`` command uses too, with the semicolons and comments a person may type).
    """
    return _split(text, semicolons=True, comments=True)


def _structure_problem(addr: str) -> str | None:
    """Typing mistakes that deserve their own sentence."""
    if addr.count('"') % 2:
        return "a quote (\") is not closed"
    if addr.count("<") != addr.count(">"):
        return "a < has no matching >" if addr.count("<") > addr.count(">") else (
            "a > has no matching <"
        )
    spec = addr
    if "<" in addr:
        spec = addr[addr.rfind("<") + 1 : addr.rfind(">")].strip()
        if not spec:
            return "nothing between < and >"
    elif '"' in addr:
        spec = addr.rsplit('"', 1)[1].strip() or addr
    if "@" not in spec:
        return "no @ (an address looks like name@example.com)"
    if spec.count("@") > 1 and not spec.startswith('"'):
        return "more than one @"
    local, _, domain = spec.rpartition("@")
    if not local:
        return "nothing before the @"
    if not domain:
        return "the domain after @ is missing"
    if any(c.isspace() for c in spec) and not spec.startswith('"'):
        if "<" not in addr:
            return "a space inside the address (put a name before it as Name <name@example.com>)"
        return "a space inside the address"
    if ".." in domain or domain.startswith(".") or domain.endswith("."):
        return f'the domain "{domain}" has an empty part (two dots in a row, or a dot at an end)'
    return None


def check_address(addr: str) -> str | None:
    """None if ``addr`` is one good address, else a short reason a person understands."""
    addr = addr.strip()
    if not addr:
        return "empty"
    problem = _structure_problem(addr)
    if problem:
        return problem
    try:
        sanitize_address(addr, "utf-8")
    except ValueError as exc:
        return _explain_mailcore(addr, str(exc))
    try:
        token, rest = parser.get_mailbox(addr)
    except (HeaderParseError, ValueError, IndexError):
        return "not an address"
    if rest:
        return f'unexpected text after the address: "{rest.strip()}"'
    # (a local part that is not ASCII is fine: it needs SMTPUTF8, a warning)
    defects = [d for d in token.all_defects if not isinstance(d, NonASCIILocalPartDefect)]
    if defects:
        return _explain_defect(str(defects[0]))
    if needs_smtputf8(addr):
        try:
            envelope_address(addr, "utf-8", utf8=True)
        except ValueError as exc:
            return _explain_mailcore(addr, str(exc))
    return None


def address_warning(addr: str) -> str | None:
    """What a person should know about a good address before sending to it, or None: that
    its local part needs a server that offers SMTPUTF8."""
    addr = addr.strip()
    return SMTPUTF8_WARNING if addr and not addr.isascii() and needs_smtputf8(addr) else None


def smtputf8_warning(text: str) -> str:
    """The warning line for an address field as typed ("" when there is nothing to say):
    the good addresses in it that need a server with SMTPUTF8 (a bad one has its own
    sentence). Cheap enough for each keystroke (an ASCII field costs one ``isascii``)."""
    if text.isascii():
        return ""
    needing = [c.text for c in check_addresses(text) if c.warning]  # (good ones only)
    if not needing:
        return ""
    names = ", ".join(f"\u201c{a}\u201d" for a in needing)
    return f"{names}: {SMTPUTF8_WARNING}."


def _explain_defect(text: str) -> str:
    """The email package's parser words its defects in RFC grammar; say it plainly."""
    lowered = text.rstrip(".").lower()
    if "local-part" in lowered:
        return ("the part before the @ holds characters that are only allowed in quotes "
                "(such as two dots in a row, a comma or a bracket)")
    if "domain" in lowered:
        return "the part after the @ is not a domain name (letters, digits, dots and dashes)"
    if "display-name" in lowered or "display name" in lowered:
        return "the name before <...> holds characters that need quotes around the name"
    return lowered


def _explain_mailcore(addr: str, message: str) -> str:
    if "only" in message and "could be parsed" in message:
        return "unexpected text after the address"
    if "newline" in message:
        return "an address can't contain a line break"
    return f"not a valid address ({message})"


def check_addresses(text: str) -> list[AddressCheck]:
    """Every item of a typed list with its span and its problem (``reason`` None when good)."""
    return list(_checked(text))


@functools.lru_cache(maxsize=256)
def _checked(text: str) -> tuple[AddressCheck, ...]:
    # The same texts are checked as they are typed (the fields' live marks) and again at
    # Send, in the turn of the click: parsing an address with the email package costs
    # about 0.5 ms, so Send finds them here. (A pure function of the text.)
    checks = []
    for a, s, e in split_addresses(text):
        reason = check_address(a)
        checks.append(AddressCheck(a, s, e, reason, None if reason else address_warning(a)))
    return tuple(checks)


def valid_list(text: str) -> list[str]:
    """The addresses of ``text``; raises ValueError naming the first bad one and why."""
    out = []
    for check in check_addresses(text):
        if not check.ok:
            raise ValueError(f'"{check.text}": {check.reason}')
        out.append(check.text)
    return out
