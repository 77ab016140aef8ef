"""SpamAssassin for the spam check's tests: messages, the real ``spamc`` program, our processes.

Everything talks to 127.0.0.1 only; the spamd the tests use is the real Debian one, started by
``mailcore.checks.spam.Spamd`` with local tests only (no DNS, no Razor/Pyzor/DCC, no Bayes).

* ``GTUBE``: SpamAssassin's test string; ``gtube_message()``: a mailcore message carrying it.
* ``clean_message()``: an ordinary text + HTML message built with EmailMultiAlternatives.
* ``rule_description(name)``: a rule's ``describe`` line from the rule files spamd reads.
* ``spamc(port, raw, *flags)``: run the ``spamc`` program against our spamd.
* ``our_spamd_pids()``, ``group_members(pgid)``: the processes of spamds mailcore started, and
  of a process group, to show that none is left behind.
* ``ScriptedSocketServer``: a one-thread TCP server that answers every connection with fixed
  bytes (or says nothing), to stand for something that is not spamd.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import mailcore

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
RULE_DIRS = ("/var/lib/spamassassin", "/usr/share/spamassassin")


def gtube_message() -> mailcore.EmailMessage:
    return mailcore.EmailMessage(
        "Test spam mail (GTUBE)",
        "This is the GTUBE, the Generic Test for Unsolicited Bulk Email.\n\n"
        f"{GTUBE}\n\nYou should send this test mail from an account outside of your network.\n",
        "Sender <sender@example.com>",
        ["Recipient <recipient@example.org>"],
    )


def clean_message() -> mailcore.EmailMultiAlternatives:
    text = (
        "Hello Anna,\n\n"
        "Thank you for the notes from Tuesday's meeting. I have added the budget figures\n"
        "for the second quarter to the shared spreadsheet, and I will bring printed copies\n"
        "on Thursday. Could you check the travel dates before then?\n\n"
        "Best regards,\nBen\n"
    )
    html = (
        "<html><body><p>Hello Anna,</p>"
        "<p>Thank you for the notes from Tuesday's meeting. I have added the budget figures "
        "for the second quarter to the shared spreadsheet, and I will bring printed copies "
        "on Thursday. Could you check the travel dates before then?</p>"
        "<p>Best regards,<br>Ben</p></body></html>"
    )
    message = mailcore.EmailMultiAlternatives(
        "Notes from Tuesday", text, "Ben Miller <ben@example.com>",
        ["Anna Schmidt <anna@example.org>"],
    )
    message.attach_alternative(html, "text/html")
    return message


def rule_description(name: str) -> str | None:
    """The ``describe NAME text`` of a rule in the rule files spamd reads (the updated ones in
    /var/lib/spamassassin first, as spamd does), or None."""
    pattern = re.compile(rf"^\s*describe\s+{re.escape(name)}\s+(.+?)\s*$", re.M)
    for folder in RULE_DIRS:
        for cf in sorted(Path(folder).rglob("*.cf")) if os.path.isdir(folder) else []:
            found = pattern.search(cf.read_text(errors="replace"))
            if found:
                return found.group(1)
    return None


def spamc(port: int, raw: bytes, *flags: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run Debian's ``spamc`` against 127.0.0.1:PORT with ``flags`` (``-c``, ``-R``)."""
    program = shutil.which("spamc")
    assert program, "spamc is not installed (apt install spamc)"
    return subprocess.run(
        [program, "-d", "127.0.0.1", "-p", str(port), *flags],
        input=raw, capture_output=True, timeout=timeout, check=False,
    )


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (process group, state, command line) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[2]), fields[0], cmdline)
    return out


def group_members(pgid: int) -> set[int]:
    """Live (not zombie) processes in a process group."""
    procs = _processes().items()
    return {pid for pid, (group, state, _) in procs if group == pgid and state != "Z"}


def our_spamd_pids() -> set[int]:
    """Live processes of spamds that mailcore started (the work directory ``mailcore-spamd-*``
    is on the parent's command line) and spamd children whose parent's group leader is gone
    (what an unclean stop would leave behind)."""
    procs = _processes()
    ours = set()
    for pid, (group, state, cmdline) in procs.items():
        if state == "Z":
            continue
        if b"mailcore-spamd-" in cmdline:
            ours.add(pid)
        elif cmdline.startswith(b"spamd child"):
            leader = procs.get(group)
            if leader is None or b"mailcore-spamd-" in leader[2]:
                ours.add(pid)
    return ours


class ScriptedSocketServer:
    """Accepts connections on 127.0.0.1 and answers each with ``reply``, then closes it;
    ``reply=None`` says nothing and keeps the connection open until the server is closed."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.5)
                data = b""
                while True:  # until the client shuts its side (spamc and ours do) or pauses
                    try:
                        chunk = conn.recv(65536)
                    except (TimeoutError, OSError):
                        break
                    if not chunk:
                        break
                    data += chunk
                self.received.append(data)
                if self.reply is None:
                    self._stop.wait()  # silent, with the connection open, until the test ends
                    continue
                try:
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def __enter__(self) -> ScriptedSocketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
