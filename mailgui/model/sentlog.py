"""The Sent log: one JSON object a line in ``sent.jsonl`` in the data dir.

When the file grows past ``SentLog.MAX_BYTES`` it is renamed ``sent.1.jsonl`` (replacing the
previous one) and a new file is started, so neither the disk nor the start of the app grows
without end.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SentEntry", "SentLog"]


@dataclass
class SentEntry:
    profile: str
    subject: str
    recipients: list[str]
    message_id: str
    result: str  # "sent", "partly refused", "failed", "cancelled"
    detail: str = ""  # the server's answer or the error sentence
    size: int = 0
    time: float = field(default_factory=time.time)
    transcript: list[str] = field(default_factory=list)
    date: str = ""  # the Date header of the message that was sent (or tried)

    @property
    def ok(self) -> bool:
        return self.result in ("sent", "partly refused")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentEntry:
        return cls(
            profile=str(data.get("profile", "")),
            subject=str(data.get("subject", "")),
            recipients=[str(r) for r in data.get("recipients") or []],
            message_id=str(data.get("message_id", "")),
            result=str(data.get("result", "")),
            detail=str(data.get("detail", "")),
            size=int(data.get("size") or 0),
            time=float(data.get("time") or 0.0),
            transcript=[str(t) for t in data.get("transcript") or []],
            date=str(data.get("date", "")),
        )


class SentLog:
    MAX_TRANSCRIPT_LINES = 400
    MAX_BYTES = 32 * 1024 * 1024  # then the file is rotated (one older file is kept)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @property
    def rotated_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.1{self.path.suffix}")

    def append(self, entry: SentEntry) -> None:
        data = asdict(entry)
        data["transcript"] = data["transcript"][: self.MAX_TRANSCRIPT_LINES]
        line = json.dumps(data, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                too_big = self.path.stat().st_size + len(line) > self.MAX_BYTES
            except FileNotFoundError:
                too_big = False
            if too_big:
                os.replace(self.path, self.rotated_path)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    @staticmethod
    def _parse(lines: object) -> list[SentEntry]:
        out = []
        for line in lines:  # type: ignore[attr-defined]
            try:
                out.append(SentEntry.from_dict(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                continue
        return out

    def entries(self) -> list[SentEntry]:
        """Oldest first; a damaged line is skipped, not fatal."""
        with self._lock:
            try:
                lines = self.path.read_text("utf-8", errors="replace").splitlines()
            except OSError:
                return []
        return self._parse(lines)

    def tail(self, limit: int) -> tuple[list[SentEntry], int]:
        """The newest ``limit`` entries (oldest first) and the number of lines in the log.
        Only those are parsed; a damaged line is skipped."""
        last: collections.deque[str] = collections.deque(maxlen=max(0, limit))
        total = 0
        with self._lock:
            try:
                with self.path.open(encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if line.strip():
                            total += 1
                            last.append(line)
            except OSError:
                return [], 0
        return self._parse(last), total
