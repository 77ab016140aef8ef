"""``mailcore check``: say what is wrong with a message file.

    mailcore check message.eml                 the local checks (clients, lint, dkim)
    mailcore check --json message.eml          the same as JSON
    mailcore check --spam message.eml          also SpamAssassin (spamd on loopback)
    mailcore check --links message.eml         also visit every link and image (the network)
    mailcore check --dns message.eml           look DKIM keys up in DNS
    mailcore check --dkim-record 's1._domainkey.example.com=v=DKIM1; p=...' message.eml
    mailcore check - < message.eml             read standard input

Exit codes: 0 no finding at or above ``--fail-on`` (default: warning); 1 findings; 2 usage
error, an unreadable file, or a check you asked for that cannot run here (spamd not installed).
Nothing leaves the computer unless ``--links``, ``--dns`` or ``--nameserver`` is given
(``--spam`` talks to a spamd on this machine, started for the run when none is listening).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from mailcore.checks import CHECKS, LOCAL_CHECKS, MessageView, Report, Severity, run_check

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    stderr: TextIO | None = None

    def error(self, message: str) -> Any:  # type: ignore[override]
        (self.stderr or sys.stderr).write(f"mailcore check: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {port!r}") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {number}")
    return host, number


def _dkim_record(text: str) -> tuple[str, str]:
    example = "e.g. 's1._domainkey.example.com=v=DKIM1; k=rsa; p=MIIB...'"
    name, sep, record = text.partition("=")
    if not sep or "._domainkey." not in name or "p=" not in record:
        raise argparse.ArgumentTypeError(f"give NAME=RECORD, {example}")
    tags = dict(t.strip().partition("=")[::2] for t in record.split(";") if "=" in t)
    key = "".join(tags.get("p", "").split())
    try:
        if not key or len(base64.b64decode(key, validate=True)) < 64:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the p= of the record for {name.strip()} is not a base64 public key; paste the "
            f"whole TXT record, {example}"
        ) from None
    return name.strip().lower().rstrip("."), record.strip()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mailcore check",
        description="Check messages: client support of their HTML and CSS, a deliverability "
        "lint and DKIM (local), and on request SpamAssassin and the links.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="a message (.eml); - reads stdin")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument(
        "--checks",
        metavar="NAMES",
        help=f"comma-separated checks to run (default {','.join(LOCAL_CHECKS)}; "
        f"all: {','.join(CHECKS)})",
    )
    p.add_argument("--links", action="store_true",
                   help="visit every http(s) link and image (uses the network)")
    p.add_argument("--single-use", action="store_true",
                   help="with --links, also visit links that look single-use (unsubscribe, "
                   "confirm, tokens)")
    p.add_argument("--private", action="store_true",
                   help="with --links, also visit hosts on private networks (10/8, 192.168/16, "
                   "169.254/16 ...)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="per-link timeout for --links (default 10)")
    p.add_argument("--spam", action="store_true",
                   help="score with SpamAssassin (the spamd on 127.0.0.1:783, or one started "
                   "for this run)")
    p.add_argument("--spamd", metavar="HOST:PORT", type=lambda t: _host_port(t, 783),
                   help="the spamd to ask (implies --spam)")
    p.add_argument("--dns", action="store_true",
                   help="look DKIM keys up in DNS (the system's resolver)")
    p.add_argument("--nameserver", metavar="HOST[:PORT]", type=lambda t: _host_port(t, 53),
                   help="look DKIM keys up with this DNS server (implies --dns)")
    p.add_argument("--dkim-record", action="append", type=_dkim_record, default=[],
                   metavar="NAME=RECORD", help="a DKIM public key not published yet "
                   "(repeatable)")
    p.add_argument("--families", metavar="NAMES",
                   help="client families to score, comma-separated (gmail,outlook,apple-mail; "
                   "default all)")
    bulk = p.add_mutually_exclusive_group()
    bulk.add_argument("--bulk", dest="bulk", action="store_const", const=True, default=None,
                      help="lint the message as bulk mail (List-Unsubscribe expected)")
    bulk.add_argument("--not-bulk", dest="bulk", action="store_const", const=False,
                      help="lint it as a personal message (default: guessed)")
    p.add_argument("--fail-on", choices=[s.label for s in Severity], default="warning",
                   help="the lowest severity that makes the exit code 1 (default warning)")
    return p


def _options(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, Any]]]:
    if args.checks:
        names = [n.strip() for n in args.checks.split(",") if n.strip()]
        if not names:
            raise _Usage(f"--checks names no check; the checks are {', '.join(CHECKS)}")
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise _Usage(f"unknown check {unknown[0]!r}; the checks are {', '.join(CHECKS)}")
    else:
        names = list(LOCAL_CHECKS)
    options: dict[str, dict[str, Any]] = {n: {} for n in CHECKS}
    if args.links and "links" not in names:
        names.append("links")
    if "links" in names:
        options["links"].update(timeout=args.timeout, include_single_use=args.single_use,
                                allow_private=args.private)
    if args.spam or args.spamd:
        if "spam" not in names:
            names.append("spam")
        if args.spamd:
            from mailcore.checks.spam import SpamdClient

            options["spam"]["client"] = SpamdClient(*args.spamd)
    if args.families:
        options["clients"]["families"] = [f.strip() for f in args.families.split(",")
                                          if f.strip()]
    if args.bulk is not None:
        options["lint"]["bulk"] = args.bulk
    dkim = options["dkim"]
    if args.dkim_record:
        dkim["keys"] = dict(args.dkim_record)
    if args.dns or args.nameserver:
        dkim["dns"] = True
        if args.nameserver:
            dkim["nameserver"] = args.nameserver
    return names, options


class _Usage(Exception):
    pass


def _read(name: str, stdin: TextIO) -> bytes:
    if name == "-":
        buffer = getattr(stdin, "buffer", None)
        return buffer.read() if buffer is not None else stdin.read().encode()
    path = Path(name)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise _Usage(f"{name} is a folder, not a message file") from None
    except FileNotFoundError:
        raise _Usage(f"{name}: no such file") from None
    except OSError as exc:
        raise _Usage(f"cannot read {name}: {exc.strerror or exc}") from None


_LOG_SEPARATOR = b"-" * 79  # what the file backend writes after each message, as Django's


def _split_log(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """A file backend's ``.log`` holds messages each followed by a line of 79 dashes: checked
    one by one (``name#2`` for the second), without the separator that is no part of them."""
    lines = data.split(b"\n")
    if not any(line.rstrip(b"\r") == _LOG_SEPARATOR for line in lines):
        return [(name, data)]
    out: list[bytes] = []
    current: list[bytes] = []
    for line in lines:
        if line.rstrip(b"\r") == _LOG_SEPARATOR:
            # the backend writes "\n" + dashes after the message's own last line end
            if current and current[-1] == b"":
                current.pop()
            out.append(b"\n".join(current) + b"\n")
            current = []
        else:
            current.append(line)
    rest = b"\n".join(current).strip()
    if rest:
        out.append(rest + b"\n")
    if len(out) == 1:
        return [(name, out[0])]
    return [(f"{name}#{i}", message) for i, message in enumerate(out, 1)]


# -- text output ------------------------------------------------------------------------------

def _pct(value: Any) -> str:
    return f"{value:.0f} %" if isinstance(value, (int, float)) else "?"


def _clients_line(summary: dict[str, Any]) -> str:
    if summary.get("html_parts") == 0:
        return "no HTML part"
    families = summary.get("families") or summary.get("clients_by_family") or []
    worst = ", ".join(
        f"{f.get('name') or f.get('family')} {_pct(f.get('supported'))}"
        for f in families[:4] if isinstance(f, dict)
    )
    head = f"{_pct(summary.get('supported'))} supported"
    return f"{head}; least: {worst}" if worst else head


def _spam_line(summary: dict[str, Any]) -> str:
    if "score" not in summary:
        return ""
    verdict = "spam" if summary.get("is_spam") else "not spam"
    return f"score {summary['score']} / {summary.get('threshold')}: {verdict}"


def _dkim_line(summary: dict[str, Any]) -> str:
    verdicts = summary.get("verdicts") or []
    bits = [
        f"{v.get('result')}" + (f" ({v.get('domain')})" if v.get("domain") else "")
        for v in verdicts if isinstance(v, dict)
    ]
    return ", ".join(bits)


def _links_line(summary: dict[str, Any]) -> str:
    if "visited" not in summary:
        return ""
    text = f"{summary['visited']} of {summary.get('total', '?')} visited, " \
           f"{summary.get('failed', 0)} failed"
    skipped = len(summary.get("skipped_single_use") or [])
    return text + (f", {skipped} single-use skipped" if skipped else "")


SUMMARY_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "clients": _clients_line,
    "spam": _spam_line,
    "dkim": _dkim_line,
    "links": _links_line,
}


def format_report(name: str, report: Report, out: TextIO) -> None:
    counts = report.counts()
    total = sum(counts.values())
    unable = [r.check for r in report.results if r.error]
    head = ", ".join(f"{n} {label}" for label, n in reversed(counts.items()) if n) or (
        "no findings" if not unable else "no findings from the checks that ran")
    out.write(f"{name}: {head}\n")
    for result in report.results:
        if result.error:
            out.write(f"  {result.check}: could not run: {result.error}\n")
            continue
        line = ""
        try:
            line = SUMMARY_LINES.get(result.check, lambda s: "")(result.summary)
        except (TypeError, ValueError, KeyError, AttributeError):  # a summary of another shape
            line = ""
        if line:
            out.write(f"  {result.check}: {line}\n")
    if not total:
        return
    order = sorted(report.findings, key=lambda f: -f.severity)
    for f in order:
        where = f.location.describe()
        out.write(f"  {f.severity.label.upper():7} {f.code}: {f.message}")
        out.write(f" [{where}]\n" if where else "\n")
        if f.fix:
            out.write(f"          fix: {f.fix}\n")
        if f.reference:
            out.write(f"          see: {f.reference}\n")


def run(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    parser.stderr = stderr
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    fail_on = Severity[args.fail_on.upper()]
    try:
        names, options = _options(args)
        messages = [(name, _read(name, stdin)) for name in args.files]
    except _Usage as exc:
        stderr.write(f"mailcore check: {exc}\n")
        return EXIT_USAGE
    except ImportError as exc:
        stderr.write(f"mailcore check: {exc}: pip install 'mailcore[checks]'\n")
        return EXIT_USAGE
    code = EXIT_CLEAN
    reports = []
    each = [piece for file, data in messages for piece in _split_log(file, data)]
    for name, raw in each:
        view = MessageView(raw)
        report = Report([run_check(n, view, **options.get(n, {})) for n in names])
        reports.append((name, report))
        if any(f.severity >= fail_on for f in report.findings):
            code = max(code, EXIT_FINDINGS)
        unable = [r for r in report.results if r.error]
        if unable:
            for r in unable:
                stderr.write(f"mailcore check: {name}: the {r.check} check could not run: "
                             f"{r.error}\n")
            code = EXIT_USAGE
    try:
        if args.json:
            data: Any = [{"file": name, **report.to_json()} for name, report in reports]
            json.dump(data[0] if len(data) == 1 else data, stdout, indent=2,
                      ensure_ascii=False)
            stdout.write("\n")
        else:
            for name, report in reports:
                format_report(name, report, stdout)
        stdout.flush()
    except BrokenPipeError:  # "| head": the reader had what it wanted
        from mailcore.cli import _silence

        _silence(stdout)
    return code


def main() -> None:
    sys.exit(run())
