"""Email backend that writes messages to the console instead of sending them."""

from __future__ import annotations

import codecs
import sys
import threading
from collections.abc import Sequence
from typing import Any

from mailcore.backends.base import BaseEmailBackend
from mailcore.message import message_needs_smtputf8
from mailcore.wire import serialize


class EmailBackend(BaseEmailBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.stream = kwargs.pop("stream", sys.stdout)
        self._lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def write_message(self, message: Any) -> None:
        # no server to ask: an address only SMTPUTF8 carries is written as UTF-8 (RFC 6532)
        data = self.dkim_sign(serialize(message, linesep="\n",
                                        utf8=message_needs_smtputf8(message)))
        decoder = codecs.getincrementaldecoder(data.charset)()
        for chunk in data.chunks():
            self.stream.write(decoder.decode(chunk))
        self.stream.write(decoder.decode(b"", final=True) + "\n")
        self.stream.write("-" * 79)
        self.stream.write("\n")

    def send_messages(self, email_messages: Sequence[Any]) -> int | None:
        """Write all messages to the stream in a thread-safe way."""
        if not email_messages:
            return None
        msg_count = 0
        with self._lock:
            try:
                stream_created = self.open()
                for message in email_messages:
                    self.write_message(message)
                    self.stream.flush()  # flush after each message
                    msg_count += 1
                if stream_created:
                    self.close()
            except Exception:
                if not self.fail_silently:
                    raise
        return msg_count
