"""A private Postfix on 127.0.0.1 for the SMTPUTF8 tests: its own configuration, queue, data
directory, log and Maildirs, all in one temporary directory; never the system's Postfix.

    with Postfix(smtputf8=True) as mx:
        ...send to mx.host, mx.port...
        raw = mx.wait_delivered("jörg@example.test")[0]   # the bytes in jörg's Maildir

The instance is Debian's Postfix (``apt-get install postfix``; policy-rc.d keeps the system's
from starting) run from a configuration directory of its own: ``postfix -c DIR check``
creates the queue's subdirectories, then ``master -c DIR -d`` runs in the foreground as our
child, so stopping it (SIGTERM to that one process, which stops its own children) and reaping
it are ours. One ``smtpd`` listens on a free port of 127.0.0.1; the domains of ``mailboxes``
(``jörg@example.test`` and ``ann@example.test`` unless told otherwise) are virtual mailbox
domains, each mailbox a Maildir under ``mail/<domain>/<local part>/``, written as the
unprivileged ``nobody``. No DNS, no TLS, no relay: mail for any other domain is refused.

The directory is under the system temporary directory with mode 0755, not under pytest's
``tmp_path`` (whose parents are 0700): Postfix's daemons run as the ``postfix`` user and
``nobody`` and must reach it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["POSTFIX", "MASTER", "Postfix", "PostfixError", "free_port"]

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
MASTER = "/usr/lib/postfix/sbin/master"
DOMAIN = "example.test"
MAILBOXES = ("jörg@example.test", "ann@example.test")
QUEUE_DIRS = ("incoming", "active", "deferred", "hold", "maildrop", "corrupt")

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixError(RuntimeError):
    """The private Postfix could not be set up or started (the text says why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _installed() -> str | None:
    """Why Postfix can't run here, or None."""
    if not Path(POSTFIX).exists() or not Path(MASTER).exists():
        return ("Postfix is not installed: apt-get install -y --no-install-recommends postfix "
                "(answer debconf 'No configuration'; see scripts/bootstrap.sh)")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "there is no 'postfix' user (the postfix package creates it)"
    if os.geteuid() != 0:
        return "a private Postfix needs root (its master starts daemons as 'postfix')"
    return None


class Postfix:
    """One private Postfix instance (see the module's text). ``smtputf8`` is its
    ``smtputf8_enable``; ``extra`` more main.cf lines (``{"message_size_limit": "20000"}``)."""

    def __init__(self, *, smtputf8: bool = True, mailboxes: tuple[str, ...] = MAILBOXES,
                 extra: dict[str, str] | None = None) -> None:
        self.smtputf8 = smtputf8
        self.mailboxes = tuple(mailboxes)
        self.extra = dict(extra or {})
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- paths ------------------------------------------------------------------------------
    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise PostfixError("the instance is not started")
        return self.root.joinpath(*parts)

    @property
    def config_dir(self) -> Path:
        return self._path("conf")

    @property
    def queue_dir(self) -> Path:
        return self._path("queue")

    @property
    def log_path(self) -> Path:
        return self._path("maillog")

    def maildir(self, address: str) -> Path:
        local, _, domain = address.rpartition("@")
        return self._path("mail", domain, local)

    # -- life -------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> Postfix:
        problem = _installed()
        if problem is not None:
            raise PostfixError(problem)
        self.root = Path(tempfile.mkdtemp(prefix="mailcore-postfix-"))
        try:
            self._configure()
            self._run(POSTFIX, "-c", str(self.config_dir), "check")
            env = {**os.environ, "MAIL_CONFIG": str(self.config_dir)}
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
                [MASTER, "-c", str(self.config_dir), "-d"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )
            self._wait_listening(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _configure(self) -> None:
        root = self.root
        assert root is not None
        root.chmod(0o755)
        for name in ("conf", "queue", "data", "mail"):
            (root / name).mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        nobody = pwd.getpwnam("nobody")
        os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
        self.port = free_port()
        mailboxes = "".join(f"{a} {a.rpartition('@')[2]}/{a.rpartition('@')[0]}/\n"
                            for a in self.mailboxes)
        (root / "conf" / "vmailbox").write_text(mailboxes, encoding="utf-8")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(root / "queue"),
            "data_directory": str(root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.example.test",
            "mydomain": DOMAIN,
            "myorigin": DOMAIN,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "",
            "virtual_mailbox_domains": ", ".join(sorted({a.rpartition("@")[2]
                                                         for a in self.mailboxes})),
            "virtual_mailbox_base": str(root / "mail"),
            "virtual_mailbox_maps": f"texthash:{root / 'conf' / 'vmailbox'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "smtputf8_enable": "yes" if self.smtputf8 else "no",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "smtpd_peername_lookup": "no",
            "maillog_file": str(root / "maillog"),
            "maillog_file_prefixes": str(root),
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "syslog_name": "postfix-mailcore-test",
            "smtpd_banner": "$myhostname ESMTP mailcore test Postfix",
            **self.extra,
        }
        (root / "conf" / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in settings.items()), encoding="utf-8")
        (root / "conf" / "master.cf").write_text(_MASTER_CF.format(port=self.port),
                                                 encoding="ascii")

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False,  # noqa: S603
                              env={**os.environ, "MAIL_CONFIG": str(self.config_dir)})
        if done.returncode != 0:
            raise PostfixError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).decode(errors='replace')}"
                               f"{self.log()}")

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostfixError(f"Postfix's master exited ({self.process.returncode}): "
                                   f"{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    (self.host, self.port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
            time.sleep(0.05)
        raise PostfixError(f"Postfix did not answer on {self.host}:{self.port}: {self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the master (and so its daemons), reap it and remove the directory."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # master's SIGTERM: it stops its children, then itself
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)  # its own session (start_new_session)
                proc.wait(5)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ----------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, PostfixError):
            return ""

    def queued(self) -> list[Path]:
        """The queue files: messages Postfix has accepted and not yet delivered."""
        return [p for name in QUEUE_DIRS if (self.queue_dir / name).is_dir()
                for p in (self.queue_dir / name).rglob("*") if p.is_file()]

    def delivered(self, address: str) -> list[bytes]:
        """The messages in the Maildir of ``address`` (new and cur), oldest first."""
        box = self.maildir(address)
        files = [p for sub in ("new", "cur") if (box / sub).is_dir() for p in (box / sub).iterdir()]
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.stat().st_mtime_ns)]

    def wait_delivered(self, address: str, count: int = 1, timeout: float = 20.0, *,
                       containing: bytes = b"") -> list[bytes]:
        """Wait until ``count`` messages (holding ``containing``, a Message-ID say) are in the
        Maildir of ``address`` (Postfix delivers after its 250) and return them; PostfixError
        with the log if they never come."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.delivered(address) if containing in m]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise PostfixError(f"{len(found)} of {count} messages reached {address}: "
                                   f"{self.log()}")
            time.sleep(0.05)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait until the queue is empty (everything delivered, bounced or refused)."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise PostfixError(f"the queue still holds {self.queued()}: {self.log()}")
            time.sleep(0.05)

    def wait_log(self, needle: str, timeout: float = 20.0) -> list[str]:
        """Wait until a line of the log holds ``needle`` (postlogd writes a little after the
        daemon said it) and return the log's lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log().splitlines()
            if any(needle in line for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise PostfixError(f"no log line holds {needle!r}: {self.log()}")
            time.sleep(0.05)

    def log_lines(self, word: str) -> list[str]:
        """The log's lines from the daemon ``word`` (``smtpd``, ``virtual``, ``qmgr``...)."""
        return [line for line in self.log().splitlines() if f"/{word}[" in line]
