"""Is this mail right, as the window asks it: which checks run, their settings, the local
checks on raw bytes, a compact badge, and the ``<id>.checks.json`` the inbox keeps.

Plain Python, no widgets (the model's wall). The checks themselves are ``mailcore.checks``;
this module only chooses, runs and summarises them:

- ``CheckSettings``: the DKIM public keys the user pasted (DNS name -> TXT record; public, so
  they live in the settings file) and whether DKIM keys may be looked up in DNS (off by
  default: nothing leaves the computer unless the user asks).
- ``run_local(raw, settings)``: the local checks (client support, lint, DKIM) on the bytes.
- ``Badge``/``badge(report)``: "⚠ 3" and a tooltip for a row of the inbox.
- ``check_stored(folder, msg_id, settings)``: what the inbox server's checker thread does for
  each received message: read the .eml, run the local checks, write ``<id>.checks.json``.

The network checks (links, spam score) are not run here: the window runs them on the worker
when the user presses their buttons (``mailgui.controllers.checks``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailcore.checks import (
    LOCAL_CHECKS,
    CheckResult,
    MessageView,
    Report,
    Severity,
    run_check,
)
from mailgui.model.paths import atomic_write_json, read_json

__all__ = [
    "CHECK_TITLES",
    "CHECKS_FORMAT",
    "LOCAL",
    "NET_CHECKS",
    "NOT_VERIFIED",
    "PENDING",
    "Badge",
    "CheckSettings",
    "SpamService",
    "StoredChecks",
    "badge",
    "check_stored",
    "checks_path",
    "clients_score",
    "dkim_short_reason",
    "dkim_verdict",
    "check_key_lines",
    "key_lines",
    "load_checks",
    "load_net_checks",
    "net_checks_path",
    "parse_key_lines",
    "part_lines",
    "run_local",
    "save_checks",
    "save_net_checks",
    "section_numbers",
    "spam_score",
    "summary_line",
]

LOCAL = tuple(LOCAL_CHECKS)  # ("clients", "lint", "dkim"): nothing of these leaves the computer
CHECKS_FORMAT = 1
CHECK_TITLES = {
    "clients": "Client support",
    "lint": "Deliverability",
    "dkim": "DKIM",
    "spam": "Spam score",
    "links": "Links",
}
SETTINGS_KEYS = ("checks_dkim_keys", "checks_dkim_dns")


# -- settings --------------------------------------------------------------------------------

@dataclass
class CheckSettings:
    """What the checks are told. ``dkim_keys``: DNS name (``sel._domainkey.example.com``) ->
    the TXT record (``v=DKIM1; k=rsa; p=...``), for domains not published yet; ``dkim_dns``:
    look keys up in DNS (the network) when none was pasted."""

    dkim_keys: dict[str, str] = field(default_factory=dict)
    dkim_dns: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CheckSettings:
        """From the app's settings dict (``checks_dkim_keys``, ``checks_dkim_dns``); anything
        of the wrong shape is ignored."""
        keys = settings.get("checks_dkim_keys")
        clean = ({str(k).strip().lower().rstrip("."): str(v).strip() for k, v in keys.items()
                  if str(k).strip() and str(v).strip()} if isinstance(keys, dict) else {})
        return cls(clean, settings.get("checks_dkim_dns") is True)

    def to_settings(self) -> dict[str, Any]:
        return {"checks_dkim_keys": dict(self.dkim_keys), "checks_dkim_dns": self.dkim_dns}

    def to_json(self) -> dict[str, Any]:
        return {"dkim_keys": dict(self.dkim_keys), "dkim_dns": self.dkim_dns}

    @classmethod
    def from_json(cls, data: Any) -> CheckSettings:
        if not isinstance(data, dict):
            return cls()
        return cls.from_settings({"checks_dkim_keys": data.get("dkim_keys"),
                                  "checks_dkim_dns": data.get("dkim_dns")})

    def fingerprint(self) -> str:
        """Changes whenever the settings do (a stored result made with others is stale)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def options(self, signer: Any = None) -> dict[str, dict[str, Any]]:
        """Keyword arguments for each check (``check_message(..., options=...)``)."""
        dkim: dict[str, Any] = {"keys": dict(self.dkim_keys) or None, "dns": self.dkim_dns}
        if signer is not None:
            dkim["signer"] = signer
        return {"dkim": dkim}


_KEY_LINE = re.compile(r"^([^\s=]+)\s*=?\s*(.*)$")


def parse_key_lines(text: str) -> dict[str, str]:
    """Pasted keys, one a line: ``NAME TXT`` or ``NAME = TXT`` (as a zone file or a DNS
    panel shows them: ``sel._domainkey.example.com. IN TXT "v=DKIM1; ..."`` works too)."""
    keys: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        name, rest = match.groups()
        rest = rest.strip()
        for word in ("IN", "TXT"):
            if rest.upper().startswith(word + " "):
                rest = rest[len(word):].strip()
        # a zone file splits long records into quoted strings: join them
        if '"' in rest:
            rest = "".join(rest.split('"')[1::2])
        name = name.strip().lower().rstrip(".")
        if name and rest:
            keys[name] = rest.strip()
    return keys


def _record_problem(record: str) -> str:
    """Why ``record`` is not a DKIM key record (``v=DKIM1; k=rsa; p=<base64>``), or ""."""
    tags: dict[str, str] = {}
    for bit in record.split(";"):
        if not bit.strip():
            continue
        if "=" not in bit:
            return f"“{bit.strip()[:40]}” is not a tag=value pair"
        name, value = bit.split("=", 1)
        tags.setdefault(name.strip().lower(), "".join(value.split()))
    if "v" in tags and tags["v"] != "DKIM1":
        return f"its v= is “{tags['v'][:20]}”, a DKIM key record says v=DKIM1"
    if "p" not in tags:
        return "the record has no p= (the public key)"
    if not tags["p"]:
        return "its p= is empty (a revoked key verifies nothing)"
    try:
        base64.b64decode(tags["p"], validate=True)
    except (binascii.Error, ValueError):
        return "its p= is not valid base64 (copy the whole key, without line breaks)"
    return ""


def check_key_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """The pasted keys (as ``parse_key_lines``) and a sentence for each line that is not a
    key, naming its line: a name with ``._domainkey.`` and a record whose ``p=`` is base64.
    Nothing is dropped silently: a line in the problems is not in the keys."""
    keys: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        parsed = parse_key_lines(stripped)
        if not parsed:
            problems.append(f"Line {number}: no DNS name and record (write "
                            "“sel._domainkey.example.com v=DKIM1; k=rsa; p=…”).")
            continue
        ((name, record),) = parsed.items()
        if "._domainkey." not in f".{name}":
            problems.append(f"Line {number}: “{name[:60]}” is not a DKIM key name "
                            "(selector._domainkey.domain).")
            continue
        problem = _record_problem(record)
        if problem:
            problems.append(f"Line {number} ({name[:60]}): {problem}.")
            continue
        keys[name] = record
    return keys, problems


def key_lines(keys: Mapping[str, str]) -> str:
    return "\n".join(f"{name} {record}" for name, record in sorted(keys.items()))


# -- running ---------------------------------------------------------------------------------

def _safe_run(name: str, view: MessageView, options: Mapping[str, Any]) -> CheckResult:
    """One check; a check that raises (it must not) becomes a result with its error."""
    try:
        return run_check(name, view, **dict(options))
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return CheckResult(name, error=f"the {name} check failed on this message "
                                       f"({type(exc).__name__}: {exc})")


def run_local(raw: bytes | MessageView, settings: CheckSettings | None = None, *,
              signer: Any = None, checks: Iterable[str] = LOCAL,
              between: Any = None) -> Report:
    """The local checks on the message's bytes. ``signer``: the DKIM signer of the profile
    (the composer's check: the DKIM check then says what the signature will be).
    ``between()``: called before each check (the inbox's checker waits there while mail
    arrives). Never raises for a malformed message."""
    settings = settings or CheckSettings()
    options = settings.options(signer)
    view = raw if isinstance(raw, MessageView) else MessageView(bytes(raw))
    results = []
    for name in checks:
        if between is not None:
            between()
        results.append(_safe_run(name, view, options.get(name, {})))
    return Report(results)


def part_lines(raw: bytes | MessageView) -> dict[str, int]:
    """Section number -> the 1-based line of the raw message where that part's headers
    begin (to go from a finding to the source)."""
    view = raw if isinstance(raw, MessageView) else MessageView(bytes(raw))
    try:
        return {p.section: p.start_line for p in view.parts}
    except Exception:  # noqa: BLE001 - a broken tree: no lines
        return {}


def section_numbers(depths: list[int]) -> list[str]:
    """The IMAP section number of each part of a MIME tree flattened depth first with depths
    (as the inbox's parts list holds it): "" for a multipart root, "1", "2.1", ...; a message
    that is one part is "1"."""
    out: list[str] = []
    counters: list[int] = []
    prefixes: list[str] = []
    for index, depth in enumerate(depths):
        if depth == 0:
            leaf = index + 1 >= len(depths) or depths[index + 1] <= 0
            out.append("1" if leaf else "")
            counters, prefixes = [0], [""]
            continue
        while len(counters) > depth:
            counters.pop()
            prefixes.pop()
        while len(counters) < depth:  # a jump in depth (a broken list): treat as a child
            counters.append(0)
            prefixes.append(prefixes[-1] if prefixes else "")
        counters[-1] += 1
        section = f"{prefixes[-1]}.{counters[-1]}" if prefixes[-1] else str(counters[-1])
        out.append(section)
        counters.append(0)
        prefixes.append(section)
    return out


# -- summaries -------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def clients_score(report: Report) -> float | None:
    """The share of the HTML's features the clients support, in per cent (None: no HTML, or
    the check did not run)."""
    result = report.result("clients")
    if result is None or result.error or result.summary.get("html_parts") == 0:
        return None
    for key in ("supported", "score"):
        value = _number(result.summary.get(key))
        if value is not None:
            return value * 100 if 0 < value <= 1 and key == "score" else value
    return None


def spam_score(report: Report) -> tuple[float, float | None, bool] | None:
    """(score, threshold, is spam) from the spam check, or None."""
    result = report.result("spam")
    if result is None or result.error:
        return None
    score = _number(result.summary.get("score"))
    if score is None:
        return None
    threshold = _number(result.summary.get("threshold"))
    spam = result.summary.get("is_spam")
    is_spam = bool(spam) if isinstance(spam, bool) else (threshold is not None
                                                          and score >= threshold)
    return score, threshold, is_spam


NOT_VERIFIED = "not verified"


def dkim_short_reason(reason: str) -> str:
    """A few words for the summary line: "no key; DNS lookups are off"."""
    if "DNS lookups are off" in reason:
        return "no key; DNS lookups are off"
    if "timed out" in reason or "no DNS server answered" in reason:
        return "the key's DNS lookup failed"
    return reason.split(";")[0][:60]


def dkim_verdict(report: Report) -> tuple[str, str]:
    """("pass" | "fail" | "not verified" | "invalid" | "none" | "", reason): the DKIM check's
    verdict on the message ("" when it did not run; the reason then says why). "fail" only
    when a signature was checked and did not match (dkimpy's ``fail``); a signature whose key
    is not at hand (``temperror``: no key pasted and DNS off, a lookup timed out) is "not
    verified"; a broken signature or key record (``permerror``) is "invalid"."""
    result = report.result("dkim")
    if result is None:
        return "", ""
    if result.error:
        return "", result.error
    summary = result.summary
    verdicts = [v for v in summary.get("verdicts") or [] if isinstance(v, dict)]
    results = [str(v.get("result", "")).lower() for v in verdicts]
    overall = str(summary.get("verdict") or summary.get("result") or "").lower()
    if not overall:
        if all(r in ("none", "") for r in results):  # no signature (or no verdict at all)
            overall = "none"
        elif "pass" in results:
            overall = "pass"
        elif "fail" in results:
            overall = "fail"
        elif "temperror" in results:
            overall = NOT_VERIFIED
        else:
            overall = "invalid"
    raw_result = {NOT_VERIFIED: "temperror", "invalid": "permerror"}.get(overall, overall)
    reasons = [str(v.get("reason") or "") for v in verdicts
               if str(v.get("result", "")).lower() == raw_result and v.get("reason")]
    reason = str(summary.get("reason") or "") or "; ".join(reasons)
    if not reason:
        domains = [str(v.get("domain")) for v in verdicts if v.get("domain")]
        if overall == "none":
            reason = "the message has no DKIM signature"
        elif domains:
            reason = f"signed by {', '.join(domains)}"
        else:
            worst = next((f for f in result.findings if f.severity >= Severity.WARNING), None)
            reason = worst.message if worst else ""
    return overall, reason


def summary_line(report: Report) -> str:
    """One line: client support, spam score, DKIM, counts by severity."""
    bits = []
    score = clients_score(report)
    if score is not None:
        bits.append(f"Clients: {score:.0f} % supported")
    spam = spam_score(report)
    if spam is not None:
        value, threshold, is_spam = spam
        limit = f" / {threshold:g}" if threshold is not None else ""
        bits.append(f"Spam: {value:g}{limit} ({'spam' if is_spam else 'not spam'})")
    verdict, reason = dkim_verdict(report)
    if verdict in (NOT_VERIFIED, "invalid") and reason:
        bits.append(f"DKIM: {verdict} ({dkim_short_reason(reason)})")
    elif verdict:
        bits.append(f"DKIM: {verdict}")
    counts = report.counts()
    shown = [f"{n} {label}{'s' if n != 1 and label != 'info' else ''}"
             for label, n in reversed(counts.items()) if n]
    bits.append(", ".join(shown) if shown else "no findings")
    return " \u00b7 ".join(bits)


@dataclass(frozen=True)
class Badge:
    """What a row of the inbox shows: "✓", "⚠ 3", "✖ 2"; the tooltip says more."""

    text: str
    tooltip: str
    worst: str  # "error", "warning", "info", "" (clean), "pending"
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "tooltip": self.tooltip, "worst": self.worst,
                "count": self.count}

    @classmethod
    def from_json(cls, data: Any) -> Badge | None:
        if not isinstance(data, dict) or "text" not in data:
            return None
        return cls(str(data["text"]), str(data.get("tooltip", "")), str(data.get("worst", "")),
                   int(data.get("count") or 0))


PENDING = Badge("\u2026", "Checking this message\u2026", "pending")
MARKS = {"error": "\u2716", "warning": "\u26a0", "info": "\u2139"}


def badge(report: Report) -> Badge:
    counts = report.counts()
    worst = report.worst
    serious = counts["error"] + counts["warning"]
    failed = [r for r in report.results if r.error]
    if worst is None and failed and len(failed) == len(report.results):
        text, label, count = "?", "unknown", 0  # no check could run: nothing is known
    elif worst is None:
        text, label, count = "\u2713", "", 0
    elif worst == Severity.INFO:
        text, label, count = f"{MARKS['info']} {counts['info']}", "info", counts["info"]
    else:
        text, label, count = f"{MARKS[worst.label]} {serious}", worst.label, serious
    score = spam_score(report)
    support = clients_score(report)
    if score is not None and text not in ("?",):  # the spam score once asked for, else the
        limit = f"/{score[1]:g}" if score[1] is not None else ""  # client support of the HTML
        text = f"{score[0]:g}{limit} {text}"  # the score first, then the count
    elif support is not None and text not in ("?",):
        text = f"{support:.0f}% {text}"
    tip = [summary_line(report)]
    verdict, reason = dkim_verdict(report)
    if verdict:
        tip.append(f"DKIM {verdict}" + (f": {reason}" if reason else ""))
    errors = [f"{CHECK_TITLES.get(r.check, r.check)}: {r.error}" for r in failed]
    tip.extend(errors)
    return Badge(text, "\n".join(tip), label, count)


# -- stored results (the inbox) --------------------------------------------------------------

def checks_path(folder: Path, msg_id: str) -> Path:
    return folder / f"{Path(msg_id).name}.checks.json"


@dataclass
class StoredChecks:
    """A received message's checks as the inbox server wrote them."""

    report: Report
    badge: Badge
    settings: str  # the fingerprint of the settings it was checked with
    part_lines: dict[str, int] = field(default_factory=dict)


def save_checks(folder: Path, msg_id: str, report: Report, settings: CheckSettings,
                lines: dict[str, int] | None = None) -> Path:
    path = checks_path(folder, msg_id)
    atomic_write_json(path, {
        "format": CHECKS_FORMAT, "id": msg_id, "settings": settings.fingerprint(),
        "badge": badge(report).to_json(), "part_lines": lines or {},
        "report": report.to_json(),
    }, compact=True)
    return path


def load_checks(folder: Path, msg_id: str, *, badge_only: bool = False) -> StoredChecks | None:
    """The stored checks of a message, or None (not checked yet, or a file from another
    version)."""
    data = read_json(checks_path(folder, msg_id))
    if not isinstance(data, dict) or data.get("format") != CHECKS_FORMAT:
        return None
    stored_badge = Badge.from_json(data.get("badge"))
    if stored_badge is None:
        return None
    try:
        report = Report() if badge_only else Report.from_json(data.get("report") or {})
    except (TypeError, ValueError, AttributeError):
        return None
    lines = data.get("part_lines")
    return StoredChecks(report, stored_badge, str(data.get("settings", "")),
                        {str(k): int(v) for k, v in lines.items()
                         if isinstance(v, int)} if isinstance(lines, dict) else {})


NET_CHECKS = ("links", "spam")  # asked for in the window; the GUI keeps their results


def net_checks_path(folder: Path, msg_id: str) -> Path:
    """``<id>.netchecks.json``: the links and spam results the window got for a received
    message. The GUI owns it (the inbox process writes ``.checks.json``, never this); the
    store deletes it with the message."""
    return folder / f"{Path(msg_id).name}.netchecks.json"


def save_net_checks(folder: Path, msg_id: str, results: Iterable[CheckResult], *,
                    alive: Callable[[], bool] | None = None) -> bool:
    """Write the network checks of a message (on the worker's write lane); False, and
    nothing written, when the message is gone (deleted meanwhile). ``alive`` says whether
    it is still in the inbox (during a burst a message is in the journal before it has an
    .eml); without it, its .eml is looked for."""
    kept = [r for r in results if r.check in NET_CHECKS]

    def present() -> bool:
        return alive() if alive is not None else (folder / f"{Path(msg_id).name}.eml").exists()

    if not present():
        return False
    atomic_write_json(net_checks_path(folder, msg_id), {
        "format": CHECKS_FORMAT, "id": msg_id, "results": [r.to_json() for r in kept],
    }, compact=True)
    if not present():  # deleted while written
        with contextlib.suppress(FileNotFoundError):
            net_checks_path(folder, msg_id).unlink()
        return False
    return True


def load_net_checks(folder: Path, msg_id: str) -> list[CheckResult]:
    """The stored network checks of a message ([] when none, or from another version)."""
    data = read_json(net_checks_path(folder, msg_id))
    if not isinstance(data, dict) or data.get("format") != CHECKS_FORMAT:
        return []
    try:
        return [CheckResult.from_json(r) for r in data.get("results") or []
                if isinstance(r, dict) and r.get("check") in NET_CHECKS]
    except (TypeError, ValueError, AttributeError):
        return []


def check_stored(folder: Path, msg_id: str, settings: CheckSettings | None = None, *,
                 between: Any = None) -> Report | None:
    """Run the local checks on a stored message and write its ``<id>.checks.json``; None
    when the message is gone (deleted meanwhile)."""
    settings = settings or CheckSettings()
    try:
        raw = (folder / f"{Path(msg_id).name}.eml").read_bytes()
    except FileNotFoundError:
        return None
    view = MessageView(raw)
    report = run_local(view, settings, between=between)
    if not (folder / f"{Path(msg_id).name}.eml").exists():
        return None  # deleted while it was checked: leave nothing behind
    save_checks(folder, msg_id, report, settings, part_lines(view))
    return report


# -- the spam check's daemon ------------------------------------------------------------------

class SpamService:
    """SpamAssassin's spamd for this app, started on loopback the first time a score is asked
    for (blocking: call ``client()`` on a worker), stopped by ``stop()``. Thread-safe."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir
        self._lock = threading.Lock()
        self._spamd: Any = None

    def client(self) -> Any:
        """A ``SpamdClient`` for the running spamd; raises ``RuntimeError`` with the install
        hint when spamd is not installed, ImportError when the check module is missing."""
        from mailcore.checks import spam

        with self._lock:
            if self._spamd is None:
                if spam.find_spamd() is None:
                    raise RuntimeError(f"SpamAssassin is not installed \u2014 {spam.INSTALL_HINT}")
                if self.workdir is not None:
                    self.workdir.mkdir(parents=True, exist_ok=True)
                self._spamd = spam.Spamd.start(workdir=self.workdir)
            return self._spamd.client()

    @property
    def running(self) -> bool:
        return self._spamd is not None

    def stop(self) -> None:
        with self._lock:
            spamd, self._spamd = self._spamd, None
        if spamd is not None:
            with contextlib.suppress(Exception):
                spamd.stop()


def spam_result(view: MessageView, service: SpamService,
                stage: Any = None) -> CheckResult:
    """The spam check with the app's spamd; a result with ``error`` when it can't run.
    ``stage(text)``: told "Starting SpamAssassin…" (when spamd is not running yet) and
    "Asking SpamAssassin…" (worker side)."""
    try:
        if stage is not None and not service.running:
            stage("Starting SpamAssassin\u2026")
        client = service.client()
        if stage is not None:
            stage("Asking SpamAssassin\u2026")
    except ImportError as exc:
        return CheckResult("spam", error=f"the spam check needs {exc.name or exc}")
    except (RuntimeError, OSError) as exc:
        return CheckResult("spam", error=str(exc))
    return _safe_run("spam", view, {"client": client})
