"""SMTP sinks on 127.0.0.1 for the benchmarks: Postfix's ``smtp-sink`` and an
aiosmtpd sink, each in a process of its own, stopped on exit.

Run as a script (``python bench/sinks.py aiosmtpd PORT``) this module *is* the
aiosmtpd sink process: it accepts every message, throws the bytes away, and
advertises PIPELINING (aiosmtpd never does by itself) and no SIZE limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_tool(name: str) -> str | None:
    """Postfix's test tools live in /usr/sbin, which is not on a user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def ehlo_lines(port: int, timeout: float = 5.0) -> list[str]:
    """What the server answers to EHLO (used to show what it advertises)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO bench.example\r\n")
        lines = []
        while True:
            line = f.readline().decode("ascii", "replace").rstrip("\r\n")
            lines.append(line)
            if not line or line[3:4] != "-":
                break
        s.sendall(b"QUIT\r\n")
        f.readline()
    return lines


class Sink:
    """A sink server process. ``with Sink.smtp_sink() as sink: sink.port``."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict | None = None) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.advertised: list[str] = []

    @classmethod
    def smtp_sink(cls) -> Sink | None:
        tool = find_tool("smtp-sink")
        if tool is None:
            return None
        port = free_port()
        # -u is required when running as root (it drops to that user after
        # binding); the last argument is the listen backlog. No -c: that only
        # prints running counters. PIPELINING is advertised by default (-p
        # turns it off).
        argv = [tool]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"{HOST}:{port}", "256"]
        return cls("smtp-sink", argv, port)

    @classmethod
    def aiosmtpd(cls) -> Sink:
        port = free_port()
        argv = [sys.executable, str(HERE / "sinks.py"), "aiosmtpd", str(port)]
        return cls("aiosmtpd", argv, port)

    def start(self, timeout: float = 15.0) -> Sink:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,  # Ctrl+C in the terminal is ours to handle, not the sink's
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited at start: {err.strip()}")
            try:
                self.advertised = ehlo_lines(self.port, timeout=2.0)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    where = f"{HOST}:{self.port}"
                    raise RuntimeError(f"{self.name} did not answer on {where}") from None
                time.sleep(0.05)

    def cpu_seconds(self) -> float | None:
        """CPU time the sink process has used so far (user + system), from /proc."""
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    @property
    def pipelining(self) -> bool:
        return any(line[4:].upper().startswith("PIPELINING") for line in self.advertised)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # The sink runs in a session of its own: end that process group (by id).
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the aiosmtpd sink process ------------------------------------------------------------


def _serve_aiosmtpd(port: int) -> None:
    import asyncio
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.CRITICAL)

    class DiscardHandler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
            # The 5-argument hook replaces aiosmtpd's own bookkeeping: set the
            # host name, or MAIL gets "503 send HELO first".
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            envelope.content = envelope.original_content = b""
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(DiscardHandler(), data_size_limit=None, hostname="aiosmtpd-sink"),
            HOST,
            port,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "aiosmtpd":
        _serve_aiosmtpd(int(sys.argv[2]))
    else:
        sys.exit("usage: sinks.py aiosmtpd PORT")
