"""A real ``redis-server`` on 127.0.0.1 for the tests (Debian's ``redis-server`` package).

Each ``RedisServer`` has its own folder (config, data, log), its own free port, and never
touches the system's instance. ``appendonly=True`` keeps every write in an AOF (synced every
second, and in full when Redis stops on SIGTERM), so :meth:`RedisServer.restart` loses
nothing; without it there is no persistence at all (``save ""``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import LOCALHOST, free_port

__all__ = ["REDIS_SERVER", "RedisServer"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """``redis-server`` with its own config in ``directory``; a context manager."""

    def __init__(self, directory: str | Path, *, appendonly: bool = False,
                 port: int | None = None, password: str | None = None,
                 unix_socket: bool = False) -> None:
        self.directory = Path(directory)
        # also listening on a Unix socket in ``directory`` (socket_url)
        self.socket_path = self.directory / "redis.sock" if unix_socket else None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.password = password  # requirepass: clients must AUTH
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config_file = self.directory / "redis.conf"
        self.log_file = self.directory / "redis.log"

    @property
    def url(self) -> str:
        """The URL without the password (see ``password``)."""
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def socket_url(self) -> str:
        """The Unix socket as Celery (kombu) writes it: ``redis+socket:///path``."""
        assert self.socket_path is not None, "started without unix_socket=True"
        return f"redis+socket://{self.socket_path}"

    @property
    def url_with_password(self) -> str:
        from urllib.parse import quote

        if not self.password:
            return self.url
        return f"redis://:{quote(self.password, safe='')}@{LOCALHOST}:{self.port}/0"

    def _write_config(self) -> None:
        lines = [
            f"bind {LOCALHOST}",
            f"port {self.port}",
            f"dir {self.directory}",
            f"logfile {self.log_file}",
            "daemonize no",
            "protected-mode yes",
            'save ""',
            "databases 4",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        if self.socket_path is not None:
            lines += [f"unixsocket {self.socket_path}", "unixsocketperm 700"]
        if self.appendonly:
            lines += ["appendonly yes", "appendfsync everysec", "aof-use-rdb-preamble no"]
        else:
            lines += ["appendonly no"]
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.process is not None:
            raise RuntimeError("redis-server already running")
        self._write_config()
        self.process = subprocess.Popen([REDIS_SERVER, str(self.config_file)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log_file.read_text() if self.log_file.exists() else ""
                self.process = None
                raise RuntimeError(f"redis-server exited: {err} {log[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1) as sock:
                if self.password:
                    sock.sendall(b"AUTH " + self.password.encode() + b"\r\n")
                    if not sock.recv(64).startswith(b"+OK"):
                        return False
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis syncs its AOF and exits); SIGKILL if it does not. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port and data."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self):  # -> redis.Redis
        import redis

        return redis.Redis.from_url(self.url_with_password)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
