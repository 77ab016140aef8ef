"""What SpamAssassin thinks of a message: its score, the threshold, and every rule that fired.

    from mailcore.checks.spam import Spamd, SpamdClient
    with Spamd.start() as spamd:                 # a spamd of our own on 127.0.0.1 (a few s)
        verdict = spamd.client().check(raw_bytes)
    print(verdict.score, verdict.threshold, verdict.is_spam)
    for rule in verdict.rules:
        print(rule.score, rule.name, rule.description)

:class:`SpamdClient` speaks spamd's own protocol (``SPAMC/1.5``, the one the ``spamc`` program
speaks) over a TCP socket: a ``REPORT`` request gives the verdict (``Spam: True ; 1000.0 /
5.0``) and SpamAssassin's report table, which is parsed into :class:`Rule` objects. No
subprocess, no network beyond the host you point it at (loopback by default).

:class:`Spamd` starts Debian's ``spamd`` on a loopback port with its own work directory: local
tests only (``--local``: no DNS blocklists, no Razor, Pyzor or DCC), no Bayes learning, no
per-user configuration, the shipped rules (``sa-update`` is never run). As root it runs the
scanning children as ``nobody``. Startup takes a few seconds (it compiles the rule set), so
start one and reuse it for many messages.

Sizes: ``spamc`` refuses to send a message over 500 KB (its ``-s`` default) and spamd has no
limit of its own, but SpamAssassin only scans the first part of big bodies anyway. The client
sends at most ``max_size`` bytes (default spamc's 500 KB): a bigger message is cut at a line
end and the verdict says so (``truncated``), as does the check's summary and a finding.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailcore.checks.base import CheckResult, Finding, Location, MessageView, Severity

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_PORT",
    "INSTALL_HINT",
    "Rule",
    "SpamVerdict",
    "Spamd",
    "SpamdClient",
    "SpamdError",
    "SpamdTimeoutError",
    "find_spamd",
    "parse_report",
    "run",
]

NAME = "spam"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 783
DEFAULT_MAX_SIZE = 500 * 1024  # spamc's default --max-size (libspamc's 500 KB)
PROTOCOL = "SPAMC/1.5"
WIKI = "https://cwiki.apache.org/confluence/display/SPAMASSASSIN/"
INSTALL_HINT = (
    "SpamAssassin's daemon is not installed: install it with 'apt install spamassassin spamd' "
    "(Debian, Ubuntu) or 'dnf install spamassassin' (Fedora), or start a spamd on "
    "127.0.0.1:783 yourself; the spam check then starts it on loopback when it needs it"
)

# where distributions keep SpamAssassin's site configuration (its .pre files load the plugins)
_SITE_CONFIG_DIRS = ("/etc/spamassassin", "/etc/mail/spamassassin")
# the program is in sbin, which is often not on a normal user's PATH
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# spamd's exit codes in a response status line (sysexits.h, as spamd's %resphash)
_EX_NAMES = {
    0: "EX_OK", 64: "EX_USAGE", 65: "EX_DATAERR", 66: "EX_NOINPUT", 67: "EX_NOUSER",
    68: "EX_NOHOST", 69: "EX_UNAVAILABLE", 70: "EX_SOFTWARE", 71: "EX_OSERR", 72: "EX_OSFILE",
    73: "EX_CANTCREAT", 74: "EX_IOERR", 75: "EX_TEMPFAIL", 76: "EX_PROTOCOL",
    77: "EX_NOPERM", 78: "EX_CONFIG", 79: "EX_TIMEOUT",
}

# What our own spamd reads after the site's .pre files: nothing learnt, nothing looked up.
_IN_USE = "Address already in use"  # spamd's log line when its port is taken

_LOCAL_CF = """\
# Written by mailcore.checks.spam for a spamd of its own on loopback.
# Local tests only (spamd also runs with --local): nothing is looked up on the network,
# nothing is learnt, so the same message always gets the same score.
use_bayes 0
bayes_auto_learn 0
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_dcc 0
"""


class SpamdError(OSError):
    """spamd cannot be reached, did not answer, or answered something that is not its protocol.

    ``str(error)`` is a sentence saying which and what to do.
    """


class SpamdTimeoutError(SpamdError, TimeoutError):
    """spamd did not answer (or did not start) within the time allowed."""


@dataclass(frozen=True)
class Rule:
    """One SpamAssassin rule that fired, as the report table shows it.

    ``score`` has the report's precision (one decimal, ``1000`` for big scores); the verdict's
    total is exact.
    """

    name: str
    score: float
    description: str

    @property
    def reference(self) -> str:
        """The rule's page on SpamAssassin's wiki, for a rule of SpamAssassin's own rule set
        (as installed here); empty for local rules and test rules (``T_``)."""
        if self.name.startswith(("T_", "__")) or not re.fullmatch(r"[A-Z0-9_]+", self.name):
            return ""
        shipped = shipped_rules()
        if shipped and self.name not in shipped:
            return ""  # a site's or user's own rule: the wiki has no page for it
        return WIKI + self.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "description": self.description}


@dataclass(frozen=True)
class SpamVerdict:
    """spamd's answer for one message."""

    score: float
    threshold: float
    is_spam: bool
    rules: tuple[Rule, ...]
    report: str  # the report text as spamd sent it
    size: int = 0  # bytes of the message given
    sent: int = 0  # bytes sent to spamd (less than size when truncated)
    max_size: int = DEFAULT_MAX_SIZE  # the limit the message was held to

    @property
    def truncated(self) -> bool:
        return self.sent < self.size


# the rule sets spamd reads: sa-update's (if it was ever run) and the package's
RULE_DIRS = ("/var/lib/spamassassin", "/usr/share/spamassassin")


@functools.lru_cache(maxsize=1)
def shipped_rules() -> frozenset[str]:
    """Names of the rules SpamAssassin's own rule set defines on this machine (empty when no
    rule directory is found): only those have a page on the wiki."""
    names: set[str] = set()
    pattern = re.compile(r"^\s*(?:describe|score)\s+([A-Z0-9_]+)\b", re.M)
    for folder in RULE_DIRS:
        for cf in Path(folder).rglob("*.cf") if os.path.isdir(folder) else ():
            try:
                names.update(pattern.findall(cf.read_text(errors="replace")))
            except OSError:
                continue
    return frozenset(names)


# -- the report table ------------------------------------------------------------------------

# " 1.0 HTML_MESSAGE           BODY: HTML included in message" ; "1000 GTUBE  BODY: ..."
_RULE_LINE = re.compile(r"^ {0,3}(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_.:-]+)(?:\s+(.*))?$")
_TABLE_RULE = re.compile(r"^-{3,} -{3,} -{3,}")  # "---- ---------------------- -----..."
_SPAM_HEADER = re.compile(
    r"^\s*(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$", re.I
)


def parse_report(report: str) -> tuple[Rule, ...]:
    """The rules in a SpamAssassin report: every line of the table after its ``---- ----``
    rule, a description's continuation lines (indented) joined to it with a space."""
    rules: list[list[Any]] = []
    in_table = False
    for line in report.splitlines():
        if not in_table:
            in_table = bool(_TABLE_RULE.match(line))
            continue
        if not line.strip():
            if rules:
                break  # the blank line after the table
            continue
        match = _RULE_LINE.match(line)
        if match and not line.startswith("    "):
            rules.append([match.group(2), float(match.group(1)), (match.group(3) or "").strip()])
        elif rules and line.startswith(" "):  # a wrapped description or "[URIs: ...]"
            rules[-1][2] = f"{rules[-1][2]} {line.strip()}".strip()
        else:
            break  # the table ended without a blank line
    return tuple(Rule(name, score, desc) for name, score, desc in rules)


def truncate(raw: bytes, max_size: int) -> bytes:
    """At most ``max_size`` bytes of ``raw``, cut after a line end (unless there is none)."""
    if len(raw) <= max_size:
        return raw
    cut = raw.rfind(b"\n", 0, max_size)
    return raw[: cut + 1] if cut > 0 else raw[:max_size]


# -- the client ------------------------------------------------------------------------------


class SpamdClient:
    """A spamd reached over TCP; one connection per request, as spamc does."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        timeout: float = 30.0,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        user: str | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.max_size = int(max_size)
        self.user = user  # the "User:" header (per-user settings); None sends none
        self._version: str | None = None

    def __repr__(self) -> str:
        return f"SpamdClient({self.host!r}, {self.port})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- requests ----------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when a spamd answers PING at this address; never raises."""
        try:
            status, _headers, _body = self._request("PING", None)
        except SpamdError:
            return False
        return status.endswith("PONG")

    def check(self, raw: bytes, *, max_size: int | None = None) -> SpamVerdict:
        """spamd's verdict on a message: score, threshold, the rules that fired, the report.

        At most ``max_size`` bytes (default: the client's) are sent, cut at a line end;
        ``verdict.truncated`` says so. Raises :class:`SpamdError` when spamd cannot be reached
        or answers with an error.
        """
        raw = bytes(raw)
        limit = self.max_size if max_size is None else int(max_size)
        body = truncate(raw, limit)
        _status, headers, payload = self._request("REPORT", body)
        spam = headers.get("spam")
        match = _SPAM_HEADER.match(spam or "")
        if not match:
            raise SpamdError(
                f"spamd at {self.address} answered REPORT without a valid Spam header "
                f"({spam!r}); is this a spamd?"
            )
        report = payload.decode("utf-8", "replace")
        return SpamVerdict(
            score=float(match.group(2)),
            threshold=float(match.group(3)),
            is_spam=match.group(1).lower() in ("true", "yes"),
            rules=parse_report(report),
            report=report,
            size=len(raw),
            sent=len(body),
            max_size=limit,
        )

    def version(self) -> str:
        """SpamAssassin's version as spamd reports it (``"4.0.1"``), from the
        ``X-Spam-Checker-Version`` header of a HEADERS request on a tiny message; ``""`` when
        the site's configuration removes that header. Asked once per client."""
        if self._version is None:
            probe = (
                b"From: version-probe@localhost\r\nTo: version-probe@localhost\r\n"
                b"Subject: version\r\nMessage-ID: <version-probe@localhost>\r\n\r\nversion\r\n"
            )
            _status, _headers, payload = self._request("HEADERS", probe)
            found = re.search(
                rb"^X-Spam-Checker-Version:\s*SpamAssassin\s+(\S+)", payload, re.M | re.I
            )
            self._version = found.group(1).decode("ascii", "replace") if found else ""
        return self._version

    # -- the protocol ------------------------------------------------------------------------

    def _request(self, command: str, body: bytes | None) -> tuple[str, dict[str, str], bytes]:
        head = [f"{command} {PROTOCOL}"]
        if body is not None:
            head.append(f"Content-length: {len(body)}")
        if self.user:
            head.append(f"User: {self.user}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + (body or b"")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError as exc:
            raise SpamdTimeoutError(
                f"cannot connect to spamd at {self.address}: no answer within "
                f"{self.timeout:g} s"
            ) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise SpamdError(
                f"cannot connect to spamd at {self.address}: {reason.lower()}; is spamd "
                f"running there? (without an address, the check starts one of its own on "
                f"loopback)"
            ) from exc
        try:
            with sock:
                sock.sendall(request)
                try:
                    sock.shutdown(socket.SHUT_WR)  # as spamc does: nothing more is coming
                except OSError:
                    pass
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise SpamdTimeoutError(
                f"spamd at {self.address} did not answer {command} within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise SpamdError(
                f"the connection to spamd at {self.address} failed during {command}: "
                f"{(exc.strerror or str(exc)).lower()}"
            ) from exc
        return self._parse_response(command, b"".join(chunks))

    def _parse_response(self, command: str, data: bytes) -> tuple[str, dict[str, str], bytes]:
        if not data:
            raise SpamdError(
                f"spamd at {self.address} closed the connection without answering {command}"
            )
        head, sep, payload = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].strip()
        match = re.match(r"^SPAMD/(\d+\.\d+)\s+(\d+)\s*(.*)$", status)
        if not match:
            raise SpamdError(
                f"{self.address} answered {command} with {status[:80]!r}, which is not "
                "spamd's protocol; is something else listening on that port?"
            )
        code, text = int(match.group(2)), match.group(3).strip()
        if code != 0:
            name = _EX_NAMES.get(code, f"code {code}")
            raise SpamdError(
                f"spamd at {self.address} refused {command}: {text or name} ({name})"
            )
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        length = headers.get("content-length")
        if sep and length is not None and length.isdigit() and len(payload) < int(length):
            raise SpamdError(
                f"spamd at {self.address} ended its answer to {command} after {len(payload)} "
                f"of {length} bytes"
            )
        return text, headers, payload


# -- finding the program and running our own spamd -------------------------------------------


def find_spamd(path: str | None = None) -> str | None:
    """The path of the ``spamd`` program, or None when it is not installed.

    ``path`` is searched instead of ``$PATH`` when given (``os.pathsep``-separated); without
    it, ``$PATH`` and then the sbin directories, where Debian puts spamd.
    """
    if path is not None:
        return shutil.which("spamd", path=path)
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_DIRS])
    return shutil.which("spamd", path=search)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return sock.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a live member. Zombies do not count (the children
    spamd leaves go to init, which reaps them when it gets round to it); where there is no
    /proc to tell them apart, any member counts."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


# every Spamd not yet stopped (strong references: one dropped without stop() is still stopped
# when the interpreter exits)
_RUNNING: set[Spamd] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """Never leave a spamd of ours behind when the interpreter exits."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for spamd in running:
        spamd.stop()


class Spamd:
    """A spamd process of our own, listening on 127.0.0.1 only.

    Use :meth:`start` (it waits until spamd answers PING) and :meth:`stop`, or ``with``. The
    work directory holds the site configuration (the system's ``.pre`` files, which load the
    plugins, and our ``local.cf``), a home for spamd's helpers, the pid file and ``spamd.log``.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        workdir: Path,
        *,
        own_workdir: bool,
        program: str,
    ) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.program = program
        self._own_workdir = own_workdir
        self._lock = threading.Lock()
        self._stopped = False
        self._guard: tuple[subprocess.Popen[bytes], int] | None = None
        with _RUNNING_LOCK:
            _RUNNING.add(self)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Spamd pid={self.process.pid} 127.0.0.1:{self.port} {state}>"

    @property
    def log_path(self) -> Path:
        return self.workdir / "spamd.log"

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        workdir: str | Path | None = None,
        timeout: float = 60.0,
        program: str | None = None,
        max_children: int = 2,
        config: str = "",
    ) -> Spamd:
        """Start spamd on 127.0.0.1 (``port``, or a free one) and wait until it answers PING.

        Raises :class:`SpamdError` when spamd is not installed or exits before answering
        (the sentence quotes its log), :class:`SpamdTimeoutError` after ``timeout`` seconds.
        ``config`` is appended to the ``local.cf`` of this spamd (rules of your own, scores).
        """
        program = program or find_spamd()
        if not program:
            raise SpamdError(INSTALL_HINT)
        own = workdir is None
        root = Path(tempfile.mkdtemp(prefix="mailcore-spamd-")) if own else Path(workdir)
        try:
            cls._prepare(root, config)
        except OSError:
            if own:
                shutil.rmtree(root, ignore_errors=True)
            raise
        attempts = 1 if port is not None else 3  # a free port can be taken before we bind it
        deadline = time.monotonic() + timeout
        last: SpamdError | None = None
        for _ in range(attempts):
            spamd = cls._launch(program, port or _free_port(), root, own, max_children)
            try:
                spamd._wait_ready(deadline)
                return spamd
            except SpamdError as exc:
                spamd.stop(remove=False)
                last = exc
                if isinstance(exc, SpamdTimeoutError) or "already in use" not in str(exc):
                    break
        if own:
            shutil.rmtree(root, ignore_errors=True)
        assert last is not None
        raise last

    @staticmethod
    def _prepare(root: Path, config: str = "") -> None:
        site, home = root / "site", root / "home"
        site.mkdir(parents=True, exist_ok=True)
        home.mkdir(exist_ok=True)
        for folder in _SITE_CONFIG_DIRS:
            if os.path.isdir(folder):
                for pre in sorted(Path(folder).glob("*.pre")):
                    shutil.copyfile(pre, site / pre.name)
                break
        (site / "local.cf").write_text(_LOCAL_CF + (f"\n{config.strip()}\n" if config else ""))
        if os.geteuid() == 0:
            # the scanning children run as nobody: let them into the directory and home
            for folder in (root, site):
                folder.chmod(0o755)
            home.chmod(0o777)

    @classmethod
    def _launch(cls, program: str, port: int, root: Path, own: bool, children: int) -> Spamd:
        args = [
            program,
            "--local",
            "--nouser-config",
            f"--siteconfigpath={root / 'site'}",
            f"--helper-home-dir={root / 'home'}",
            f"--pidfile={root / 'spamd.pid'}",
            f"--listen=127.0.0.1:{port}",
            f"--max-children={max(1, children)}",
            "--min-children=1",
            "--syslog=stderr",
        ]
        if os.geteuid() == 0:
            args.append("--username=nobody")  # spamd will not scan as root
        env = dict(os.environ, HOME=str(root / "home"), LANG="C", LC_ALL="C")
        with open(root / "spamd.log", "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - the spamd program, fixed arguments
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=env,
                start_new_session=True,  # its own process group: stop() reaps the children
            )
        spamd = cls(process, port, root, own_workdir=own, program=program)
        spamd._guard = _start_guard(process.pid, root if own else None)
        return spamd

    def _wait_ready(self, deadline: float) -> None:
        client = SpamdClient(DEFAULT_HOST, self.port, timeout=2.0)
        delay = 0.05
        while True:
            if self.process.poll() is not None:
                raise SpamdError(
                    f"spamd exited with status {self.process.returncode} before it answered "
                    f"on 127.0.0.1:{self.port}: {self._log_tail()}"
                )
            if client.ping():
                return
            if _IN_USE in self._log_tail(1):  # spamd would retry for 10 s: do not wait
                raise SpamdError(
                    f"spamd could not listen on 127.0.0.1:{self.port}: the address is already "
                    "in use by another program; choose another port, or none for a free one"
                )
            if time.monotonic() >= deadline:
                raise SpamdTimeoutError(
                    f"spamd did not answer on 127.0.0.1:{self.port} in time: {self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " / ".join(tail) or "(nothing in its log)"

    # -- using and stopping it ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._stopped and self.process.poll() is None

    def client(self, timeout: float = 30.0, **options: Any) -> SpamdClient:
        return SpamdClient(DEFAULT_HOST, self.port, timeout, **options)

    def stop(self, timeout: float = 10.0, *, remove: bool = True) -> None:
        """Terminate spamd and its children and wait for them; remove the work directory if
        :meth:`start` made it. Safe to call twice."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._terminate(timeout)
                self._release_guard()
            with _RUNNING_LOCK:
                _RUNNING.discard(self)
            if remove and self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _terminate(self, timeout: float) -> None:
        process = self.process
        if process.poll() is None:
            process.terminate()  # spamd's parent kills its children on SIGTERM
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # The parent sends its children SIGINT and exits without waiting for them: give them
        # a moment, then kill whatever is left in the process group (ours: start_new_session).
        end = time.monotonic() + 3.0
        while _group_alive(process.pid):
            if time.monotonic() >= end:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return
            time.sleep(0.02)

    def _release_guard(self) -> None:
        if self._guard is None:
            return
        guard, fd = self._guard
        self._guard = None
        try:
            os.write(fd, b"stopped")  # spamd is gone: the guard exits without a signal
        except OSError:
            pass
        os.close(fd)
        try:
            guard.wait(5)
        except subprocess.TimeoutExpired:
            guard.kill()
            guard.wait()

    def __enter__(self) -> Spamd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# A spamd outlives the process that started it if that process is killed (SIGKILL, a crash)
# before stop() or atexit can run. So each spamd has a guard: a small Python process that
# waits on a pipe only we hold; when the pipe closes with nothing written, we are gone, and
# the guard ends spamd's process group (and removes the work directory we made for it).
_GUARD = """
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
pgid, workdir = int(sys.argv[1]), sys.argv[2]
if sys.stdin.buffer.read():
    sys.exit(0)
for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        break
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
if workdir:
    time.sleep(0.2)
    shutil.rmtree(workdir, ignore_errors=True)
"""


def _start_guard(pgid: int, workdir: Path | None) -> tuple[subprocess.Popen[bytes], int] | None:
    """Start the guard of the spamd whose process group is ``pgid`` (None if it can't run:
    spamd is then stopped by stop() and atexit only, as before)."""
    read, write = os.pipe()
    try:
        guard = subprocess.Popen(  # noqa: S603 - our interpreter, our fixed program
            [sys.executable, "-I", "-c", _GUARD, str(pgid), str(workdir or "")],
            stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in our terminal's group: Ctrl+C is ours to handle
        )
    except OSError:
        os.close(write)
        return None
    finally:
        os.close(read)
    return guard, write


# -- the check -------------------------------------------------------------------------------


def run(
    view: MessageView,
    *,
    client: SpamdClient | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    search_path: str | None = None,
    max_size: int | None = None,
    timeout: float = 60.0,
) -> CheckResult:
    """Score the message with SpamAssassin.

    With no ``client``: the spamd answering on ``host:port`` (127.0.0.1:783), else a spamd of
    our own started for this call (and stopped), else a result whose ``error`` says how to
    install it. ``search_path`` replaces ``$PATH`` when looking for the program.
    """
    own: Spamd | None = None
    try:
        if client is None:
            probe = SpamdClient(host, port, timeout=5.0)
            if probe.ping():
                client = probe
            else:
                program = find_spamd(search_path)
                if not program:
                    return CheckResult(NAME, error=INSTALL_HINT)
                own = Spamd.start(program=program, timeout=timeout)
                client = own.client()
        verdict = client.check(view.raw, max_size=max_size)
        try:
            version = client.version()
        except SpamdError:
            version = ""
    except SpamdError as exc:
        return CheckResult(NAME, error=f"SpamAssassin could not score the message: {exc}")
    finally:
        if own is not None:
            own.stop()
    return _result(verdict, version, client.address)


def _result(verdict: SpamVerdict, version: str, address: str) -> CheckResult:
    findings: list[Finding] = []
    location = Location(part=None)
    if verdict.is_spam:
        relation = "over" if verdict.score > verdict.threshold else "at"
        findings.append(Finding(
            check=NAME,
            code="spam.is-spam",
            severity=Severity.ERROR,
            message=(
                f"SpamAssassin scores this {verdict.score:.1f}, {relation} the "
                f"{verdict.threshold:.1f} threshold: it would be filed as spam"
            ),
            fix="Change what the highest-scoring rules below match, then check again.",
            location=location,
            reference="https://spamassassin.apache.org/full/4.0.x/doc/Mail_SpamAssassin_Conf.html",
            data={"score": verdict.score, "threshold": verdict.threshold},
        ))
    if verdict.truncated:
        findings.append(Finding(
            check=NAME,
            code="spam.truncated",
            severity=Severity.INFO,
            message=(
                f"The message is {verdict.size} bytes; SpamAssassin scored its first "
                f"{verdict.sent} (spamc sends nothing over {verdict.max_size} bytes, so many "
                "servers do not scan mail this big at all)"
            ),
            location=location,
            reference="https://spamassassin.apache.org/full/4.0.x/doc/spamc.html",
            data={"size": verdict.size, "sent": verdict.sent, "max_size": verdict.max_size},
        ))
    for rule in sorted(verdict.rules, key=lambda r: -abs(r.score)):
        if rule.score == 0:
            continue  # informational rules: in the summary, they do not change the verdict
        positive = rule.score > 0
        severity = Severity.WARNING if positive and verdict.is_spam else Severity.INFO
        findings.append(Finding(
            check=NAME,
            code="spam.rule",
            severity=severity,
            message=(
                f"SpamAssassin rule {rule.name} fired ({rule.score:+.1f} points): "
                f"{rule.description}"
            ),
            fix=(
                f"Change the part of the message that {rule.name} matches (its description "
                "says what it looks for), or leave it if the rest scores low enough."
                if positive else ""
            ),
            location=location,
            reference=rule.reference,
            data=rule.to_json(),
        ))
    summary = {
        "score": verdict.score,
        "threshold": verdict.threshold,
        "is_spam": verdict.is_spam,
        "rules": [r.to_json() for r in verdict.rules],
        "version": version,
        "spamd": address,
        "size": verdict.size,
        "sent": verdict.sent,
        "truncated": verdict.truncated,
        "max_size": verdict.max_size,
    }
    return CheckResult(NAME, findings=findings, summary=summary)
