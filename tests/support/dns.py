"""A real DNS server on 127.0.0.1 for the tests: Debian's dnsmasq serving TXT records.

    with DNSServer({"s1._domainkey.example.com": "v=DKIM1; k=rsa; p=MIIB..."}) as dns:
        dns.address          # ("127.0.0.1", port)
        dns.resolver()       # a dnspython Resolver that asks only this server

dnsmasq facts this relies on (dnsmasq 2.90):

* ``--txt-record=NAME,TEXT[,TEXT...]``: each comma-separated TEXT is one character-string of
  the same TXT record (at most 255 bytes each), so a long DKIM record (a 2048-bit key is about
  400 characters) is given as several, which resolvers join. The text is taken literally
  (quotes would be kept: none are used here), so a text may not hold a comma.
* ``--local=/example.com/``: names under the domain that have no record are answered
  NXDOMAIN (without it, with ``--no-resolv`` and no upstream, they are REFUSED).
* ``--no-daemon`` keeps it in the foreground (it logs to stderr); SIGTERM stops it.
* The port is chosen free just before the start; a start that loses the race (another process
  took the port) is retried on another.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
LOCALHOST = "127.0.0.1"


def txt_strings(text: str, size: int = 255) -> list[str]:
    """A TXT record's text cut into character-strings of at most ``size`` bytes."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


class DNSServer:
    """dnsmasq on 127.0.0.1 answering ``records`` (name -> TXT text, or a list of texts for
    several records at one name); every other name under the records' parent domains is
    NXDOMAIN. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self, records: Mapping[str, str | list[str]], *,
                 log: Path | None = None) -> None:
        self.records = {name.lower().rstrip("."): value for name, value in records.items()}
        self.log = log
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return LOCALHOST, self.port

    def _arguments(self, port: int) -> list[str]:
        args = [DNSMASQ, "--no-daemon", f"--port={port}", f"--listen-address={LOCALHOST}",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
                "--log-queries"]
        domains = set()
        for name, value in self.records.items():
            for text in [value] if isinstance(value, str) else value:
                if "," in text:
                    raise ValueError(f"a TXT text for dnsmasq can't hold a comma: {text!r}")
                args.append("--txt-record=" + ",".join([name, *txt_strings(text)]))
            labels = name.split(".")
            domains.add(".".join(labels[-2:]))
        args += [f"--local=/{domain}/" for domain in sorted(domains)]
        return args

    def start(self, attempts: int = 5) -> DNSServer:
        if not Path(DNSMASQ).exists():
            raise RuntimeError("dnsmasq is not installed: apt-get install dnsmasq-base")
        last = ""
        for _ in range(attempts):
            port = _free_udp_port()
            # a file, not a pipe: --log-queries would fill a pipe no one reads
            stderr: Any = self.log.open("ab") if self.log is not None else tempfile.TemporaryFile()
            with stderr:
                process = subprocess.Popen(self._arguments(port), stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=stderr)
                if self._wait_ready(process, port):
                    self._process, self.port = process, port
                    return self
                process.kill()
                process.wait(timeout=10)
                stderr.seek(0)
                last = stderr.read()[-2000:].decode("utf-8", "replace").strip()
        raise RuntimeError(f"dnsmasq did not start on 127.0.0.1: {last}")

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """Ready when it answers a query (any answer); False if it exited."""
        import dns.exception
        import dns.message
        import dns.query

        query = dns.message.make_query("ready.invalid.", "TXT")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                dns.query.udp(query, LOCALHOST, port=port, timeout=0.5)
                return True
            except (dns.exception.Timeout, OSError):
                continue
        return False

    def resolver(self, timeout: float = 5.0) -> Any:
        """A dnspython resolver that asks this server only."""
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [LOCALHOST]
        resolver.port = self.port
        resolver.lifetime = timeout
        return resolver

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
