"""Is this mail right? Checks that say what is wrong with a message, before or after sending.

    from mailcore.checks import check_message
    report = check_message(raw_bytes)              # the local checks: clients, lint, dkim
    for finding in report.findings:
        print(finding.severity.label, finding.message, finding.location.describe())

Which checks touch the network:

=========  ==================================================================================
clients    local: the vendored caniemail.com data set (``mailcore/checks/data``)
lint       local
dkim       local with keys you give (``dkim_keys``); DNS only when ``dns=True`` or a resolver
           is given
spam       local: SpamAssassin's spamd on loopback (``spam=`` a client or ``True``)
links      the network: every ``href`` and ``src`` is visited, so only when ``links=True``
=========  ==================================================================================

No check raises for a malformed message; a check that cannot run (spamd not installed) says so
in its result's ``error``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from mailcore.checks.base import (
    CheckResult,
    Finding,
    Location,
    MessageView,
    Part,
    Report,
    Severity,
)

__all__ = [
    "CHECKS",
    "LOCAL_CHECKS",
    "CheckResult",
    "Finding",
    "Location",
    "MessageView",
    "Part",
    "Report",
    "Severity",
    "check_message",
    "run_check",
]

# name -> module (each has ``run(view, **options) -> CheckResult``)
CHECKS = {
    "clients": "mailcore.checks.clients",
    "lint": "mailcore.checks.lint",
    "dkim": "mailcore.checks.dkim",
    "spam": "mailcore.checks.spam",
    "links": "mailcore.checks.links",
}
# what runs when nothing is asked for: nothing here leaves the computer
LOCAL_CHECKS = ("clients", "lint", "dkim")


def run_check(name: str, view: MessageView, **options: Any) -> CheckResult:
    """One check by name; a check that cannot run returns a result with ``error`` set."""
    if name not in CHECKS:
        raise ValueError(f"unknown check {name!r}; the checks are {', '.join(CHECKS)}")
    try:
        module = importlib.import_module(CHECKS[name])
    except ImportError as exc:
        return CheckResult(name, error=f"the {name} check needs {exc.name or exc}: "
                                       "pip install 'mailcore[checks]'")
    return module.run(view, **options)


def check_message(
    message: Any,
    checks: Iterable[str] | None = None,
    *,
    links: bool = False,
    spam: Any = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Run checks on a message (bytes, str, an ``email`` message or a mailcore message).

    ``checks`` names the checks to run (default: the local ones). ``links=True`` adds the link
    check, which visits every URL; ``spam`` adds the spam check (``True`` for the spamd this
    machine runs, or a :class:`mailcore.checks.spam.SpamdClient`). ``options`` passes keyword
    arguments to one check: ``options={"dkim": {"keys": {...}, "dns": True}}``.
    """
    view = MessageView.of(message)
    names = list(checks) if checks is not None else list(LOCAL_CHECKS)
    options = {k: dict(v) for k, v in (options or {}).items()}
    if links and "links" not in names:
        names.append("links")
    if spam not in (None, False):
        if "spam" not in names:
            names.append("spam")
        if spam is not True:
            options.setdefault("spam", {})["client"] = spam
    return Report([run_check(n, view, **options.get(n, {})) for n in names])
