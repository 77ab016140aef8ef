"""Dummy email backend that does nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailcore.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Iterable[Any]) -> int:
        return len(list(email_messages))
