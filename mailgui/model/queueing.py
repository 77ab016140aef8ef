"""Delivering through the queue (mailcore's Celery backend): plain Python, run by a worker.

A queue profile puts messages in its broker's queue; the workers (``mailcore worker``) deliver
them with their own SMTP settings. ``queue_backend`` and ``queued`` are the profile's row of
``sending.DELIVERIES`` (the backend, and what is said after it); ``push_copies`` queues N
copies of a draft, each with its own Message-ID, in one call; ``read_queue`` and
``retry_dead`` are what the Queue panel shows and does. The broker's password comes from the
keyring (``sending.resolve_password``), into the URL given to the backend only: a URL shown
is ``mailcore.queue.redact_url``'s.

Every function here talks to Redis and may block: run them on the worker pool.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mailgui.model.draft import Draft, new_message_id
from mailgui.model.profiles import Profile

__all__ = [
    "DeadMessage",
    "QueueReading",
    "QueueUnreachable",
    "push_copies",
    "queue_backend",
    "queue_config",
    "queued",
    "read_queue",
    "retry_dead",
    "shown_url",
]

WHERE = "to the queue (its workers deliver it)"  # "Sent {WHERE} for 2 recipients."
MOST_COPIES = 100_000


class QueueUnreachable(OSError):
    """The broker (Redis) could not be used; nothing was queued. Its text is the sentence
    (the URL redacted); its ``strerror`` the clause the app's error sentences take ("Could not
    talk to the server: ..."). An OSError without an errno: mailcore's ``classify`` says a
    connection failed, never which one by its words."""

    def __init__(self, clause: str) -> None:
        super().__init__(None, clause)

    def __str__(self) -> str:
        clause = str(self.strerror)
        return f"{clause[:1].upper()}{clause[1:]}. Nothing was queued; your draft is unchanged."


def shown_url(profile: Profile) -> str:
    from mailcore.queue import redact_url

    return redact_url(profile.queue_broker_url) or "(no broker URL)"


def _unreachable(profile: Profile, exc: BaseException) -> QueueUnreachable:
    why = type(exc).__name__
    seen: BaseException | None = exc
    for _ in range(6):  # the OSError under redis's error says it best
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            why = seen.strerror
            break
        seen = seen.__cause__ or seen.__context__
    return QueueUnreachable(
        f"the queue\u2019s broker at {shown_url(profile)} can\u2019t be reached ({why})")


def _check_reachable(profile: Profile, password: str | None) -> None:
    """A quick PING (one try, a 3-second connect timeout), so that a broker that is not there
    is said at once: mailcore's own client rides out a Redis restart for about 35 seconds."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from mailcore.queue import redis_py_url

    client = redis.Redis.from_url(redis_py_url(profile.broker_url(password)),
                                  socket_connect_timeout=3,
                                  socket_timeout=5, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise _unreachable(profile, exc) from exc
    finally:
        client.close()


def _backend_class() -> type:
    import redis

    from mailcore.backends.celery import EmailBackend

    class QueueBackend(EmailBackend):
        """The Celery backend, its broker's failures said as a sentence."""

        profile: Profile
        password: str | None

        def send_messages(self, email_messages: Any) -> int:
            _check_reachable(self.profile, self.password)
            try:
                return super().send_messages(email_messages)
            except (redis.RedisError, OSError) as exc:
                raise _unreachable(self.profile, exc) from exc

    return QueueBackend


def _backend(profile: Profile, password: str) -> Any:
    if not profile.queue_broker_url:
        raise ValueError(f"The profile {profile.name} has no broker URL.")
    backend = _backend_class()(**profile.backend_kwargs(password))
    backend.profile = profile
    backend.password = password
    return backend


def queue_backend(send: Any, password: str) -> Any:
    """``sending.DELIVERIES``' maker for a queue profile: the backend that queues the
    message (``password``: the broker's, from the keyring)."""
    send.note("info", f"queue {send.profile.queue_name!r} at {shown_url(send.profile)}")
    return _backend(send.profile, password)


def queued(send: Any, backend: Any) -> None:
    """``sending.DELIVERIES``' after-hook: the Message-ID the queue holds it under."""
    ids = getattr(backend, "last_message_ids", None) or []
    if ids:
        send.outcome.message_id = ids[0]
        send.outcome.reply = "queued"
        send.note("info", f"queued as {ids[0]}")


def queue_config(profile: Profile, password: str | None) -> Any:
    """The :class:`mailcore.queue.QueueConfig` of a queue profile (the rest of the settings
    as mailcore's)."""
    from mailcore.queue import QueueConfig

    return QueueConfig.from_settings(broker_url=profile.broker_url(password),
                                     name=profile.queue_name)


@dataclass(frozen=True)
class DeadMessage:
    message_id: str
    reply: str  # the server's reply (or what happened), on one line
    recipients: tuple[str, ...]
    attempts: int
    failed_at: float


@dataclass(frozen=True)
class QueueReading:
    """The counts of a queue and its dead letters, at one moment."""

    queued: int
    sent: int
    retrying: int
    dead: int
    letters: list[DeadMessage] = field(default_factory=list)


def _reading(config: Any, profile: Profile, most_letters: int) -> QueueReading:
    from mailcore import queue

    st = queue.status(config)
    letters = []
    if st.dead:
        for letter in queue.dead_letters(config)[-most_letters:]:
            detail = f": {letter.detail}" if letter.detail else ""
            letters.append(DeadMessage(letter.message_id,
                                       letter.reply or f"({letter.kind}{detail})",
                                       letter.recipients, letter.attempts, letter.failed_at))
    return QueueReading(st.queued, st.sent, st.retrying, st.dead, letters)


def read_queue(profile: Profile, password: str | None,
               most_letters: int = 200) -> QueueReading:
    """Counts and the latest dead letters of the profile's queue; QueueUnreachable if the
    broker can't be used."""
    import redis

    _check_reachable(profile, password)
    try:
        return _reading(queue_config(profile, password), profile, most_letters)
    except redis.RedisError as exc:
        raise _unreachable(profile, exc) from exc


def retry_dead(profile: Profile, password: str | None, message_id: str) -> bool:
    """Queue a dead letter again; False if it is not in the dead-letter list."""
    import redis

    from mailcore import queue

    _check_reachable(profile, password)
    try:
        return queue.retry(message_id, queue_config(profile, password))
    except redis.RedisError as exc:
        raise _unreachable(profile, exc) from exc


def push_copies(draft: Draft, profile: Profile, password: str, count: int) -> list[str]:
    """Queue ``count`` copies of ``draft``, each with a Message-ID of its own, in one call
    (the producer's batches); the Message-IDs queued. Raises what building the draft raises
    (before anything is queued), QueueUnreachable for the broker."""
    from mailgui.model.message import build_message

    if not 1 <= count <= MOST_COPIES:
        raise ValueError(f"push between 1 and {MOST_COPIES:,} copies, not {count:,}")
    domain = draft.message_id.rpartition("@")[2].rstrip(">") or "mailgui.invalid"
    messages = []
    for _ in range(count):
        copy_ = copy.copy(draft)
        copy_.message_id = new_message_id(domain)
        messages.append(build_message(copy_, profile))
    backend = _backend(profile, password)
    backend.send_messages(messages)
    return list(backend.last_message_ids)
