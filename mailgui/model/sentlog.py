"""The Sent log: one JSON object a line in ``sent.jsonl`` in the data dir."""

from __future__ import annotations

import json
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

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entry: SentEntry) -> None:
        data = asdict(entry)
        data["transcript"] = data["transcript"][: self.MAX_TRANSCRIPT_LINES]
        line = json.dumps(data, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    def entries(self) -> list[SentEntry]:
        """Oldest first; a damaged line is skipped, not fatal."""
        out = []
        with self._lock:
            try:
                lines = self.path.read_text("utf-8").splitlines()
            except OSError:
                return []
        for line in lines:
            try:
                out.append(SentEntry.from_dict(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                continue
        return out
