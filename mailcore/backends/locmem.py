"""Backend for test environments: messages are kept in ``mailcore.outbox``."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import mailcore as mail
from mailcore.backends.base import BaseEmailBackend
from mailcore.message import EmailAttachment, FileContent


class EmailBackend(BaseEmailBackend):
    """An email backend for use during test sessions.

    The test connection stores email messages in a dummy outbox, rather than
    sending them out on the wire. The outbox is ``mailcore.outbox``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(mail, "outbox"):
            mail.outbox = []

    def send_messages(self, messages: Iterable[Any]) -> int:
        """Redirect messages to the dummy outbox"""
        msg_count = 0
        for message in messages:  # .message() triggers header validation
            message.message()
            kept = copy.deepcopy(message)
            _read_file_contents(kept)
            mail.outbox.append(kept)
            msg_count += 1
        return msg_count


def _read_file_contents(message: Any) -> None:
    """The outbox holds what was sent: attachments streamed from disk become bytes, as
    Django's would be, and later changes to the files don't show."""
    attachments = getattr(message, "attachments", None)
    if not isinstance(attachments, list):
        return
    for index, attachment in enumerate(attachments):
        if isinstance(attachment, EmailAttachment) and isinstance(attachment.content, FileContent):
            attachments[index] = attachment._replace(content=attachment.content.read_bytes())
