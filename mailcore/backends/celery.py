"""Queued email backend: messages go to Celery workers (Redis broker) that deliver them.

``EMAIL_BACKEND = "mailcore.backends.celery.EmailBackend"`` (in Django's settings too) and
``mailcore worker`` (or ``celery -A mailcore.queue worker``) on as many machines as needed. See
:mod:`mailcore.queue` for what happens to each message and the ``EMAIL_QUEUE_*`` settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailcore.backends.base import BaseEmailBackend
from mailcore.conf import ImproperlyConfigured

__all__ = ["EmailBackend"]

# What a producer in a Django project may set in Django's settings (the workers, which run
# outside Django, read the same names from mailcore.settings or MAILCORE_* variables).
_DJANGO_SETTINGS = {
    "EMAIL_QUEUE_BROKER_URL": "broker_url",
    "EMAIL_QUEUE_STATE_URL": "state_url",
    "EMAIL_QUEUE_NAME": "name",
    "EMAIL_QUEUE_SPOOL_DIR": "spool_dir",
    "EMAIL_QUEUE_SPOOL_THRESHOLD": "spool_threshold",
    "EMAIL_QUEUE_BATCH_SIZE": "batch_size",
    "EMAIL_QUEUE_RATE_LIMIT": "rate_limits",
    "EMAIL_QUEUE_VISIBILITY_TIMEOUT": "visibility_timeout",
}


def _django_settings() -> dict[str, Any]:
    """The EMAIL_QUEUE_* settings of a configured Django project that uses this backend as
    its EMAIL_BACKEND (nothing when Django is not loaded or not configured)."""
    import sys

    if "django.conf" not in sys.modules:
        return {}
    from django.conf import settings as django_settings

    if not django_settings.configured:
        return {}
    return {field: getattr(django_settings, name) for name, field in _DJANGO_SETTINGS.items()
            if getattr(django_settings, name, None) is not None}


class EmailBackend(BaseEmailBackend):
    """Queue each message for the workers instead of sending it.

    ``send_messages()`` serialises each message once (the bytes the SMTP backend would send,
    with the envelope and the Message-ID), keeps it in its pending record in Redis and
    enqueues one task per ``EMAIL_QUEUE_BATCH_SIZE`` messages (their Message-IDs); it returns
    the number queued, and ``last_message_ids`` holds their Message-IDs. A message that can't be
    sent (an invalid address, an attachment that can't be read) raises before anything of the
    call is queued, as the SMTP backend raises before anything is sent; a broker that can't be
    reached raises, or with ``fail_silently`` makes it return 0.

    The workers sign with DKIM (their ``EMAIL_DKIM``, or ``"dkim"`` in
    ``EMAIL_QUEUE_DELIVERY_OPTIONS``): a ``dkim=`` given here is refused, as it would be
    ignored. ``broker_url=``, ``queue=`` and any other :class:`mailcore.queue.QueueConfig`
    field override the ``EMAIL_QUEUE_*`` settings for this backend.
    """

    def __init__(self, fail_silently: bool = False, dkim: Any = None, *,
                 broker_url: str | None = None, queue: str | None = None,
                 **kwargs: Any) -> None:
        if dkim is not None:
            raise ImproperlyConfigured(
                "the queued backend does not sign: the workers do (EMAIL_DKIM on the workers, "
                "or 'dkim' in EMAIL_QUEUE_DELIVERY_OPTIONS)")
        self.fail_silently = fail_silently
        self.dkim = None
        from mailcore.queue import QueueConfig

        overrides = _django_settings()
        overrides.update({k: v for k, v in kwargs.items()
                          if k in QueueConfig.__dataclass_fields__})
        if broker_url:
            overrides["broker_url"] = broker_url
        if queue:
            overrides["name"] = queue
        self.config = QueueConfig.from_settings(**overrides)
        self.last_message_ids: list[str] = []

    def __repr__(self) -> str:
        return f"<mailcore.backends.celery.EmailBackend {self.config!r}>"

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Queue the messages; return how many were queued."""
        if not email_messages:
            return 0
        from mailcore.queue import enqueue

        self.last_message_ids = []
        try:
            self.last_message_ids = enqueue(email_messages, self.config)
        except (ValueError, TypeError, ImproperlyConfigured, FileNotFoundError):
            raise  # the message or the settings: never silent about those
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        return len(self.last_message_ids)
