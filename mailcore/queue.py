"""Queued sending on Celery with Redis: nothing lost, nothing sent twice.

The producer side is :class:`mailcore.backends.celery.EmailBackend` (or :func:`enqueue`):
each message is serialised once, with :func:`mailcore.wire.serialize`, into the very bytes the
SMTP backend would send, with its envelope and its Message-ID; that payload is kept, once, in
the message's pending record in Redis (a message over ``EMAIL_QUEUE_SPOOL_THRESHOLD`` is
written to the shared ``EMAIL_QUEUE_SPOOL_DIR`` instead, the payload carrying its file name
and SHA-256), and one Celery task per ``EMAIL_QUEUE_BATCH_SIZE`` messages carries their
Message-IDs: one broker write for many messages.

The workers (``celery -A mailcore.queue worker`` or ``mailcore worker``) deliver with the SMTP
backend of ``EMAIL_QUEUE_DELIVERY_BACKEND``, keeping one connection per worker process between
tasks and closing it after ``EMAIL_QUEUE_IDLE_CLOSE`` seconds unused; a task's messages go
over it pipelined when the server offers PIPELINING (one round trip a message). Each message
of a task is locked, recorded, retried and dead-lettered on its own. DKIM signing and
SMTPUTF8 are decided there, as the SMTP backend decides them: the worker signs the carried
bytes with its backend's ``dkim`` (``EMAIL_DKIM`` on the workers), and a message serialised
for SMTPUTF8 is sent with it, or dead-lettered by a server that does not offer it.

What happens to a task:

* tasks are acknowledged late (``acks_late``, ``reject_on_worker_lost``): a worker that dies
  leaves its whole task to another (at once for a killed pool process; after
  ``EMAIL_QUEUE_VISIBILITY_TIMEOUT`` seconds for a whole worker that vanished);
* before sending, the worker takes a lock on each Message-ID of the task (``SET NX PX``, one
  round trip for the task, renewed while it is sent, ``EMAIL_QUEUE_LOCK_TTL``); a message
  whose Message-ID another worker holds gets a task of its own, a little later;
* as the server's 250 for a message is read, its sent record (``SET NX EX
  EMAIL_QUEUE_DEDUP_TTL``) is written to Redis, before the next message's final dot is sent;
  a task delivered again finds the records and skips those messages;
* a temporary failure (a 4xx reply, a connection refused or lost, a timeout: decided by
  :func:`mailcore.errors.classify`, never by an exception's text) is retried after
  ``RETRY_BACKOFF * 2**n`` seconds with full jitter (at most ``RETRY_BACKOFF_MAX``), up to
  ``EMAIL_QUEUE_MAX_RETRIES`` times; a permanent one (5xx, a message the server can't take)
  goes to the dead-letter list with the server's reply, untried again;
* ``EMAIL_QUEUE_RATE_LIMIT`` is shared by all workers: a message over its destination's rate
  waits, in a task of its own (it is not an attempt).

**The one window where a message can be sent twice**: the server has answered 250 to the
final dot and the worker dies (SIGKILL, power, the machine) before its sent record reaches
Redis. The task is then given to another worker (late ack) and nothing says it was sent: it is
sent again once the first worker's lock has expired. At most one message per worker process
that dies can be in that window. (Redis going away for a while is not such a case: the worker
keeps trying to write the record, for about 35 seconds.)

The library API: :func:`status`, :func:`dead_letters`, :func:`retry`, :func:`enqueue`,
:class:`QueueConfig`; the Celery app is :data:`app` (configured from mailcore's settings, and
so from ``MAILCORE_*`` variables, when first used).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import smtplib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mailcore.conf import ImproperlyConfigured, settings
from mailcore.errors import Failure, Kind, classify

__all__ = [
    "DeadLetter",
    "QueueConfig",
    "QueueStatus",
    "SpoolError",
    "TASK_NAME",
    "dead_letters",
    "enqueue",
    "get_app",
    "is_temporary",
    "prepare",
    "redact_url",
    "retry",
    "status",
]

logger = logging.getLogger("mailcore.queue")

TASK_NAME = "mailcore.queue.deliver"  # one message (the tasks of earlier versions)
TASK_BATCH = "mailcore.queue.deliver_batch"  # a list of messages: what is published now
PAYLOAD_VERSION = 2  # 1: the bytes in base64 ("data"); 2: as Latin-1 text ("text")
_SPOOL_NAME = re.compile(r"[0-9a-f]{32}\.eml\Z")
_READ_SIZE = 1024 * 1024


def redact_url(url: str | None) -> str:
    """``url`` with its password (and user name) replaced by ``***``, for showing."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _json_setting(name: str, value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[:1] in "{[":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    return value


_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*(s|sec|m|min|h|hour)\s*\Z", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}


def parse_rate(text: str) -> tuple[int, float]:
    """``"100/m"`` as (100, 60.0): so many messages per so many seconds (``"5/10s"`` too)."""
    match = _RATE.match(str(text))
    if match is None:
        raise ImproperlyConfigured(
            f"EMAIL_QUEUE_RATE_LIMIT: {text!r} is not a rate like '100/m', '10/s' or '500/h'")
    count, times, unit = match.groups()
    return int(count), float(int(times or 1) * _UNITS[unit.lower()])


@dataclass(frozen=True, eq=False)
class QueueConfig:
    """The queue's settings at one moment (``QueueConfig.from_settings()``): what a producer
    and the workers must agree on, and what the workers use. Its repr shows no secret."""

    broker_url: str
    state_url: str
    name: str = "mailcore"
    delivery_backend: str = "mailcore.backends.smtp.EmailBackend"
    delivery_options: Mapping[str, Any] = field(default_factory=dict)
    rate_limits: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    max_retries: int = 8
    retry_backoff: float = 30.0
    retry_backoff_max: float = 3600.0
    spool_dir: str | None = None
    spool_threshold: int = 5 * 1024 * 1024
    dedup_ttl: int = 7 * 24 * 3600
    lock_ttl: float = 120.0
    idle_close: float = 30.0
    visibility_timeout: int = 7200
    prefetch: int = 4
    batch_size: int = 100
    batch_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, **overrides: Any) -> QueueConfig:
        """From ``EMAIL_QUEUE_*`` (mailcore.settings, the ``MAILCORE_*`` environment);
        ``overrides`` by field name."""
        broker = overrides.pop("broker_url", None) or settings.EMAIL_QUEUE_BROKER_URL
        options = _json_setting("EMAIL_QUEUE_DELIVERY_OPTIONS",
                                settings.EMAIL_QUEUE_DELIVERY_OPTIONS) or {}
        if not isinstance(options, Mapping):
            raise ImproperlyConfigured("EMAIL_QUEUE_DELIVERY_OPTIONS must be a dict (or JSON "
                                       "object) of the delivery backend's arguments")
        values: dict[str, Any] = {
            "broker_url": broker,
            "state_url": settings.EMAIL_QUEUE_STATE_URL or broker,
            "name": settings.EMAIL_QUEUE_NAME,
            "delivery_backend": settings.EMAIL_QUEUE_DELIVERY_BACKEND,
            "delivery_options": dict(options),
            "rate_limits": _rate_limits(settings.EMAIL_QUEUE_RATE_LIMIT),
            "max_retries": settings.EMAIL_QUEUE_MAX_RETRIES,
            "retry_backoff": float(settings.EMAIL_QUEUE_RETRY_BACKOFF or 0.0),
            "retry_backoff_max": float(settings.EMAIL_QUEUE_RETRY_BACKOFF_MAX or 0.0),
            "spool_dir": settings.EMAIL_QUEUE_SPOOL_DIR,
            "spool_threshold": settings.EMAIL_QUEUE_SPOOL_THRESHOLD,
            "dedup_ttl": settings.EMAIL_QUEUE_DEDUP_TTL,
            "lock_ttl": float(settings.EMAIL_QUEUE_LOCK_TTL or 120.0),
            "idle_close": float(settings.EMAIL_QUEUE_IDLE_CLOSE or 0.0),
            "visibility_timeout": settings.EMAIL_QUEUE_VISIBILITY_TIMEOUT,
            "prefetch": settings.EMAIL_QUEUE_PREFETCH,
            "batch_size": _optional_setting("EMAIL_QUEUE_BATCH_SIZE", 100),
        }
        if "rate_limits" in overrides:
            overrides["rate_limits"] = _rate_limits(overrides["rate_limits"])
        values.update(overrides)
        values["batch_size"] = max(1, int(values["batch_size"] or 1))
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", str(values["name"])):
            raise ImproperlyConfigured(
                f"EMAIL_QUEUE_NAME must be letters, digits, '_', '.', ':' or '-', not "
                f"{values['name']!r}")
        return cls(**values)

    @property
    def prefix(self) -> str:
        """The Redis keys' prefix of this queue's state."""
        return f"mailcore:queue:{self.name}:"

    @property
    def app_key(self) -> tuple[Any, ...]:
        return (self.broker_url, self.name, self.visibility_timeout, self.prefetch)

    def __repr__(self) -> str:
        return (f"<QueueConfig {self.name!r} broker={redact_url(self.broker_url)} "
                f"state={redact_url(self.state_url)} delivery={self.delivery_backend}>")


def _optional_setting(name: str, default: Any) -> Any:
    """A setting this version of mailcore.conf may not define yet (then ``default``)."""
    try:
        value = getattr(settings, name)
    except Exception:  # noqa: BLE001 - UnknownSettingError: not defined
        return default
    return default if value is None else value


def _rate_limits(value: Any) -> dict[str, tuple[int, float]]:
    value = _json_setting("EMAIL_QUEUE_RATE_LIMIT", value)
    if not value:
        return {}
    if isinstance(value, str):
        return {"*": parse_rate(value)}
    if isinstance(value, Mapping):
        return {str(domain).lower(): (tuple(rate) if isinstance(rate, tuple) else
                                      parse_rate(rate)) for domain, rate in value.items()}
    raise ImproperlyConfigured("EMAIL_QUEUE_RATE_LIMIT must be a rate ('100/m') or a dict of "
                               "domain to rate")


# -- what is kept in Redis --------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStatus:
    """How many messages are waiting for a worker (``queued``), waiting to be tried again
    after a temporary failure (``retrying``), were sent (``sent``: since the counts were
    last cleared) and are in the dead-letter list (``dead``)."""

    queued: int
    retrying: int
    sent: int
    dead: int
    duplicates: int = 0  # tasks delivered again whose message had been sent: not sent again

    @property
    def pending(self) -> int:
        """Not finished: queued or retrying."""
        return self.queued + self.retrying


@dataclass(frozen=True)
class DeadLetter:
    """A message that will not be tried again: the server refused it for good (``code`` and
    ``reply``, its reply on one line), or its temporary failures outlasted the retries."""

    message_id: str
    reply: str
    code: int | None
    kind: str
    stage: str
    attempts: int
    failed_at: float
    sender: str
    recipients: tuple[str, ...]
    detail: str = ""


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Messages of a batch recorded as sent (their SET NX records written as each 250 was read):
# each one still pending leaves the pending set and is counted as sent, once (whoever removes
# it from the pending set counts it: the batch's worker, or the one a dead worker's batch went
# to); the retrying mark goes, the lock is released if it is still this worker's.
# KEYS: pending set, retrying hash, sent count, then each message's lock; ARGV: lock token,
# then each message's id. Returns how many were counted.
_SETTLE_SENT = """
local n = 0
for i = 2, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then n = n + 1 end
  redis.call('HDEL', KEYS[2], ARGV[i])
  if redis.call('GET', KEYS[i + 2]) == ARGV[1] then redis.call('DEL', KEYS[i + 2]) end
end
if n > 0 then redis.call('INCRBY', KEYS[3], n) end
return n
"""
# KEYS: the destination's counter; ARGV: window (ms), the most in it. Returns 0 (go) or the
# milliseconds until the window ends.
_RATE_TAKE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end
  return ttl
end
return 0
"""


class _LoginRefused(Exception):  # noqa: N818 - carries redis's AuthenticationError past Retry
    pass


REDIS_SCHEMES = ("redis", "rediss", "redis+socket")


def redis_py_url(url: str) -> str:
    """The URL redis-py reads for a broker URL in Celery's (kombu's) form: the same, but a
    Unix socket (``redis+socket:///run/redis/redis.sock``, its database as
    ``?virtual_host=N``) is ``unix:///run/redis/redis.sock?db=N`` there. With Redis on the
    workers' machine a Unix socket saves the kernel's TCP path on every command."""
    parts = urlsplit(url)
    if parts.scheme != "redis+socket":
        return url
    query = [("db" if k == "virtual_host" else k, v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    # (urlunsplit would drop the "//" of an empty host for a scheme it does not know)
    return f"unix://{parts.netloc}{parts.path}" + (f"?{urlencode(query)}" if query else "")


def _redis_client(url: str) -> Any:
    """A client that rides out a Redis restart (about 35 s of retries on connection errors),
    but not a refused login: redis's AuthenticationError is a ConnectionError, and a wrong or
    missing password does not mend by waiting. ``url``: redis://, rediss://, or a Unix
    socket as redis+socket:// (Celery's form) or unix:// (redis-py's)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    url = redis_py_url(url)

    class LoginAwareRetry(Retry):
        def call_with_retry(self, do: Callable[[], Any], fail: Callable[[Exception], Any],
                            *args: Any, **kwargs: Any) -> Any:
            def once() -> Any:
                try:
                    return do()
                except redis.AuthenticationError as exc:
                    raise _LoginRefused(exc) from exc

            try:
                return super().call_with_retry(once, fail, *args, **kwargs)
            except _LoginRefused as refused:
                raise refused.args[0] from None

    return redis.Redis.from_url(
        url,
        retry=LoginAwareRetry(ExponentialBackoff(cap=1.0, base=0.05), 40),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=15,
    )


class QueueState:
    """The queue's records in Redis (see the module docstring). One per process and config."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.redis = _redis_client(config.state_url)
        p = config.prefix
        self.k_pending = p + "pending"
        self.k_retrying = p + "retrying"
        self.k_dead = p + "dead"
        self.k_sent_count = p + "count:sent"
        self.k_duplicates = p + "count:duplicates"
        self._release = self.redis.register_script(_RELEASE)
        self._renew = self.redis.register_script(_RENEW)
        self._rate = self.redis.register_script(_RATE_TAKE)
        self._settle_sent = self.redis.register_script(_SETTLE_SENT)

    def k_sent(self, message_id: str) -> str:
        return f"{self.config.prefix}sent:{message_id}"

    def k_lock(self, message_id: str) -> str:
        return f"{self.config.prefix}lock:{message_id}"

    # -- the producer --------------------------------------------------------------------
    def add_pending_encoded(self, items: Sequence[tuple[str, str]]) -> None:
        """Each message's payload (Message-ID, its JSON) until it is sent or dead: the
        bytes the workers send, and what :meth:`recover_lost` puts back in the queue if the
        broker lost its task."""
        with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), 5000):
                pipe.hset(self.k_pending, mapping=dict(items[start:start + 5000]))
            pipe.execute()

    def remove_pending(self, ids: Sequence[str]) -> None:
        if ids:
            self.redis.hdel(self.k_pending, *ids)

    # -- the worker ----------------------------------------------------------------------
    def claim(self, ids: Sequence[str], token: str
              ) -> tuple[list[bool], list[bool], list[bytes | None]]:
        """Lock each of ``ids`` (``token``), then look for each one's sent record and read
        its pending record (the payload): one round trip for a batch. (locked?, sent?,
        payload JSON or None) for each; a record found after the lock is taken can't be
        written by another worker while the lock holds."""
        ttl = int(self.config.lock_ttl * 1000)
        with contextlib.suppress(Exception):  # a failed connection: the retrying way below
            return self._claim_packed(ids, token, ttl)
        with self.redis.pipeline(transaction=False) as pipe:
            for message_id in ids:
                pipe.set(self.k_lock(message_id), token, nx=True, px=ttl)
            for message_id in ids:  # a lock taken by the packed way before it failed
                pipe.get(self.k_lock(message_id))
            for message_id in ids:
                pipe.exists(self.k_sent(message_id))
            pipe.hmget(self.k_pending, list(ids))
            replies = pipe.execute()
        n = len(ids)
        mine = token.encode("ascii")
        return ([bool(r) or held == mine for r, held in zip(replies[:n], replies[n:2 * n])],
                [bool(r) for r in replies[2 * n:3 * n]], list(replies[3 * n]))

    def _claim_packed(self, ids: Sequence[str], token: str, ttl: int
                      ) -> tuple[list[bool], list[bool], list[bytes | None]]:
        """:meth:`claim`'s commands packed here in one write (redis-py's packing costs tens
        of microseconds a command), on a connection of the client's pool."""
        prefix = self.config.prefix.encode("utf-8")
        keys = [m.encode("utf-8") for m in ids]
        tail = _resp(token.encode("ascii"), b"NX", b"PX", b"%d" % ttl)[4:]
        lock = b"*6\r\n$3\r\nSET\r\n"
        packed = b"".join([
            *(b"%b$%d\r\n%block:%b\r\n%b" % (lock, len(prefix) + 5 + len(k), prefix, k, tail)
              for k in keys),
            *(b"*2\r\n$6\r\nEXISTS\r\n$%d\r\n%bsent:%b\r\n" % (len(prefix) + 5 + len(k),
                                                                 prefix, k) for k in keys),
            _resp(b"HMGET", self.k_pending.encode("utf-8"), *keys)])
        pool = self.redis.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([packed])
            read = connection.read_response
            locked = [read() is not None for _ in keys]
            found = [bool(read()) for _ in keys]
            stored = list(read())
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        return locked, found, stored

    def renew_many(self, ids: Iterable[str], token: str) -> list[bool]:
        """Renew this worker's locks; whether each one was still this worker's."""
        ids = list(ids)
        if not ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for message_id in ids:
                self._renew(keys=[self.k_lock(message_id)],
                            args=[token, int(self.config.lock_ttl * 1000)], client=pipe)
            return [bool(r) for r in pipe.execute()]

    def recorder(self, token: str) -> _Recorder:
        return _Recorder(self, token)

    def settle(self, token: str, *, sent: Sequence[str] = (), unlock: Iterable[str] = (),
               duplicates: Iterable[str] = (),
               retrying: Mapping[str, Mapping[str, Any]] | None = None,
               again: Sequence[_Encoded] = (),
               dead: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """What a batch ends with, in one round trip: its messages recorded as sent
        (``sent``, their records written already) taken out of the pending set and counted,
        once (``_SETTLE_SENT``), their locks released; its retried messages marked (and
        their pending records, ``again``, with the attempt counted), its dead-lettered ones
        moved, those found sent already counted as duplicates, its other locks released."""
        duplicates = list(duplicates)
        with self.redis.pipeline(transaction=False) as pipe:
            if sent:
                self._settle_sent(
                    keys=[self.k_pending, self.k_retrying, self.k_sent_count,
                          *(self.k_lock(m) for m in sent)],
                    args=[token, *sent], client=pipe)
            if again:
                pipe.hset(self.k_pending, mapping={e.payload["id"]: e.json for e in again})
            if retrying:
                pipe.hset(self.k_retrying, mapping={
                    k: json.dumps(v) for k, v in retrying.items()})
            for message_id, record in (dead or {}).items():
                pipe.hset(self.k_dead, message_id, json.dumps(record))
                pipe.hdel(self.k_pending, message_id)
                pipe.hdel(self.k_retrying, message_id)
            if duplicates:
                pipe.hdel(self.k_pending, *duplicates)
                pipe.hdel(self.k_retrying, *duplicates)
                pipe.incrby(self.k_duplicates, len(duplicates))
            for message_id in unlock:
                self._release(keys=[self.k_lock(message_id)], args=[token], client=pipe)
            pipe.execute()

    def rate_wait(self, domains: Iterable[str]) -> float:
        """0 if a message to ``domains`` may go now (it is counted), else the seconds to
        wait (nothing counted for it)."""
        limits = self.config.rate_limits
        if not limits:
            return 0.0
        taken: list[str] = []
        for domain in sorted(set(domains)):
            limit = limits.get(domain, limits.get("*"))
            if limit is None:
                continue
            count, seconds = limit
            key = f"{self.config.prefix}rate:{domain}"
            wait_ms = int(self._rate(keys=[key], args=[int(seconds * 1000), count]))
            if wait_ms:
                for earlier in taken:  # give back what this message took
                    self.redis.decr(earlier)
                return wait_ms / 1000.0
            taken.append(key)
        return 0.0

    def recover_lost(self, app: Any, older_than: float) -> int:
        """Queue again the messages whose task the broker lost; how many.

        kombu's Redis transport pops a task (BRPOP) and then records it as unacknowledged:
        a connection lost between the two (a Redis restart) loses that task. Once the queue's
        list is empty, a message that is still pending, was queued more than ``older_than``
        seconds ago, is not sent, not locked by a worker and not among the unacknowledged
        tasks (which include those waiting for a retry) has no task left: it is published
        again. One worker does this at a time. A false alarm costs only a second task,
        which finds the lock or the sent record."""
        r = self.redis
        if r.llen(self.config.name) or not r.set(self.config.prefix + "recovering", "1",
                                                  nx=True, ex=max(5, int(older_than))):
            return 0
        try:
            held = _unacked_ids(r)
            now = time.time()
            lost = []
            for key, raw in r.hscan_iter(self.k_pending, count=1000):
                message_id = key.decode("utf-8", "replace")
                payload = json.loads(raw)
                if message_id in held or now - float(payload.get("queued", 0)) < older_than:
                    continue
                if r.exists(self.k_sent(message_id)):  # sent, its batch never settled
                    self._settle_sent(keys=[self.k_pending, self.k_retrying, self.k_sent_count,
                                            self.k_lock(message_id)], args=["", message_id])
                    continue
                if r.exists(self.k_lock(message_id)) or r.hexists(self.k_retrying, message_id):
                    continue
                lost.append(dict(payload, queued=now))
            if lost and not r.llen(self.config.name):
                items = [_Encoded(p) for p in lost]
                self.add_pending_encoded([(item.payload["id"], item.json) for item in items])
                _publish(self.config, _batches(items, self.config), app=app)
                logger.warning("mailcore queue: %d task(s) the broker lost queued again",
                               len(lost))
                return len(lost)
            return 0
        finally:
            r.delete(self.config.prefix + "recovering")

    # -- reading -------------------------------------------------------------------------
    def status(self) -> QueueStatus:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self.k_pending)
            pipe.hlen(self.k_retrying)
            pipe.get(self.k_sent_count)
            pipe.hlen(self.k_dead)
            pipe.get(self.k_duplicates)
            pending, retrying, sent, dead, duplicates = pipe.execute()
        return QueueStatus(queued=max(0, int(pending) - int(retrying)), retrying=int(retrying),
                           sent=int(sent or 0), dead=int(dead), duplicates=int(duplicates or 0))

    def dead(self) -> list[DeadLetter]:
        letters = []
        for key, raw in self.redis.hgetall(self.k_dead).items():
            record = json.loads(raw)
            letters.append(_dead_letter(key.decode("utf-8", "replace"), record))
        return sorted(letters, key=lambda d: (d.failed_at, d.message_id))

    def take_dead(self, message_id: str) -> dict[str, Any] | None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.k_dead, message_id)
            pipe.hdel(self.k_dead, message_id)
            raw, _ = pipe.execute()
        return None if raw is None else json.loads(raw)

    def put_back_dead(self, message_id: str, record: Mapping[str, Any]) -> None:
        self.redis.hset(self.k_dead, message_id, json.dumps(record))


def _resp(*parts: bytes) -> bytes:
    """One Redis command in RESP, packed here: redis-py's packing costs tens of
    microseconds a command in Python, this a fraction of one."""
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%b\r\n" % (len(part), part) for part in parts)


class _Recorder:
    """Sent records of a batch, each written to Redis as soon as its 250 is read, the
    replies read every few records if they are there (never waited for): the record leaves
    the worker before the next message's final dot is sent, so the window stays one message
    wide, without a round trip each; the rest (the pending set, the count, the locks) waits
    for the end of the batch (``QueueState.settle``). (Once written to the socket a record
    reaches Redis even if the worker is killed: the kernel sends what a dead process wrote.)
    Each record is one ``SET key record NX EX ttl`` packed here and written straight to the
    socket of a connection the recorder holds for the batch; its one-line replies (``+OK``,
    or nil when the record was there already) are read in bulk, never parsed one by one.
    If Redis fails (or answers an error), the records not confirmed are written again at
    once through the retrying client, which waits for Redis to come back (the records are
    idempotent: SET NX), and sending waits with it."""

    def __init__(self, state: QueueState, token: str) -> None:
        self.state = state
        self.token = token
        self.items: list[tuple[str, str]] = []  # written, not yet confirmed
        self.written = 0
        self.connection: Any = None
        self.sock: Any = None
        self.buffer = b""  # an unfinished reply line
        self._key = (state.config.prefix + "sent:").encode("utf-8")
        self._tail = _resp(b"NX", b"EX", b"%d" % int(state.config.dedup_ttl))[4:]

    def _command(self, message_id: str, record: str) -> tuple[Any, ...]:
        return ("SET", self.state.k_sent(message_id), record, "NX", "EX",
                int(self.state.config.dedup_ttl))

    def sent_reply(self, message_id: str, code: int, text: Any, refused: Any,
                   attempts: int) -> bool:
        """:meth:`sent` with the record made from the server's reply: the same JSON as
        ``json.dumps({"at", "code", "reply", "refused", "attempts"})``, made without it."""
        refused_json = "{}" if not refused else _dumps(
            {a: [c, _text(t)] for a, (c, t) in dict(refused).items()})
        return self._sent(message_id, (
            f'{{"at":{time.time()!r},"code":{int(code)},"reply":{_dumps(_text(text))},'
            f'"refused":{refused_json},"attempts":{int(attempts)}}}'))

    def sent(self, message_id: str, record: Mapping[str, Any]) -> bool:
        """Record a message as sent; True if Redis had failed and the records were written
        again (after waiting for it): the caller should look at its locks."""
        return self._sent(message_id, json.dumps(record, separators=(",", ":")))

    def _sent(self, message_id: str, text: str) -> bool:
        self.items.append((message_id, text))
        key = self._key + message_id.encode("utf-8")
        value = text.encode("utf-8")
        command = b"*6\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b" % (
            len(key), key, len(value), value, self._tail)
        try:
            if self.sock is None:
                self.connection = self.state.redis.connection_pool.get_connection()
                self.connection.send_packed_command([command])  # connects if it must
                self.sock = self.connection._sock
            else:
                self.sock.sendall(command)
            self.written += 1
            if self.written % 16 == 0:  # an error seen soon, without a poll for each record
                self._read(block=False)
            return False
        except Exception:  # noqa: BLE001 - a lost connection, or an error reply
            self._drop()
            self._rewrite()
            return True

    def _read(self, block: bool) -> None:
        """Take the replies that are there (``block``: all of them, waiting): each one line,
        ``+OK`` or nil; an error reply raises."""
        import socket

        import redis

        while self.written:
            try:
                data = self.sock.recv(65536, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            data = self.buffer + data
            lines = data.count(b"\r\n")
            end = data.rfind(b"\r\n") + 2 if lines else 0
            if b"\r\n-" in b"\r\n" + data[:end] or lines > self.written:
                raise redis.ResponseError("a sent record was not written: "
                                          + data[:end].decode("utf-8", "replace")[:200])
            self.buffer = data[end:]
            self.written -= lines
            del self.items[:lines]

    def _drop(self) -> None:
        connection, self.connection = self.connection, None
        self.sock = None
        self.buffer = b""
        self.written = 0
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()
            with contextlib.suppress(Exception):
                self.state.redis.connection_pool.release(connection)

    def _rewrite(self) -> None:
        """Every record not confirmed, through the retrying client, trying again for about
        35 seconds (the client's own retries do not cover a connection refused while Redis
        restarts); then a RedisError."""
        import redis

        delay, deadline = 0.05, time.monotonic() + 35.0
        while self.items:
            try:
                with self.state.redis.pipeline(transaction=False) as pipe:
                    for message_id, text in self.items:
                        pipe.execute_command(*self._command(message_id, text))
                    pipe.execute()
                self.items = []
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(1.0, delay * 2)

    def finish(self) -> None:
        """Every record confirmed by Redis (raises a RedisError if it stays away)."""
        if self.connection is not None:
            try:
                self._read(block=True)
                if self.buffer:
                    raise ValueError("a partial reply")
            except Exception:  # noqa: BLE001 - written again just below
                self._drop()
            else:
                connection, self.connection, self.sock = self.connection, None, None
                self.state.redis.connection_pool.release(connection)
        self._rewrite()


def _unacked_ids(client: Any) -> set[str]:
    """The Message-IDs of the tasks kombu holds as unacknowledged (delivered to a worker)."""
    ids = set()
    for raw in client.hvals("unacked"):
        with contextlib.suppress(Exception):
            message = json.loads(raw)[0]
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            if message.get("headers", {}).get("task") == TASK_BATCH:
                ids.update(str(ref) for ref in args[0])
            else:
                ids.add(str(args[0]["id"]))
    return ids


def _dead_letter(message_id: str, record: Mapping[str, Any]) -> DeadLetter:
    payload = record.get("payload", {})
    return DeadLetter(
        message_id=message_id, reply=record.get("reply", ""), code=record.get("code"),
        kind=record.get("kind", ""), stage=record.get("stage", ""),
        attempts=int(record.get("attempts", 0)), failed_at=float(record.get("at", 0.0)),
        sender=payload.get("from", ""), recipients=tuple(payload.get("to", ())),
        detail=record.get("detail", ""))


_STATES: dict[tuple[int, str, str], QueueState] = {}
_STATES_LOCK = threading.Lock()


def get_state(config: QueueConfig | None = None) -> QueueState:
    """The :class:`QueueState` of ``config`` (None: the settings) in this process."""
    config = config or QueueConfig.from_settings()
    key = (os.getpid(), config.state_url, config.name)
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is None or state.config.dedup_ttl != config.dedup_ttl or (
                state.config.rate_limits != config.rate_limits
                or state.config.lock_ttl != config.lock_ttl):
            state = _STATES[key] = QueueState(config)
        return state


# -- the library API ---------------------------------------------------------------------------


def status(config: QueueConfig | None = None) -> QueueStatus:
    """The counts of the queue of ``config`` (None: the settings)."""
    return get_state(config).status()


def dead_letters(config: QueueConfig | None = None) -> list[DeadLetter]:
    """The dead-letter list, oldest first, each with the server's reply."""
    return get_state(config).dead()


def retry(message_id: str, config: QueueConfig | None = None) -> bool:
    """Put a dead-lettered message back in the queue (its attempts counted from zero); False
    if ``message_id`` is not in the dead-letter list. Its sent record, if it has one, still
    holds: a message that was sent is not sent again."""
    config = config or QueueConfig.from_settings()
    state = get_state(config)
    record = state.take_dead(message_id)
    if record is None:
        return False
    item = _Encoded(dict(record["payload"], attempt=0, queued=time.time()))
    try:
        state.add_pending_encoded([(message_id, item.json)])
        _publish(config, [[item]])
    except BaseException:
        state.remove_pending([message_id])
        state.put_back_dead(message_id, record)
        raise
    return True


# -- the producer ------------------------------------------------------------------------------


class SpoolError(ValueError):
    """A spooled message's file is missing a part or changed (its checksum does not match)."""


def prepare(message: Any, config: QueueConfig | None = None,
            queued: float | None = None) -> dict[str, Any] | None:
    """The task payload of one message: its envelope, its Message-ID and its bytes (as
    Latin-1 text, one character a byte; or, over the spool threshold, the spool file they
    were written to). None for a message without recipients. Raises what the SMTP backend
    raises for a message it can't send (an invalid address: ValueError), before anything is
    queued."""
    prepared = _prepare(message, config or QueueConfig.from_settings(), queued)
    if prepared is None:
        return None
    payload, raw = prepared
    if raw is not None:
        payload["text"] = raw.decode("latin-1")
    return payload


def _prepare(message: Any, config: QueueConfig, queued: float | None
             ) -> tuple[dict[str, Any], bytes | None] | None:
    """:func:`prepare`'s payload without its bytes, and the bytes (None: spooled)."""
    if not message.recipients():
        return None
    from_email, recipients = _envelope(message)
    smtputf8 = not (from_email.isascii() and all(r.isascii() for r in recipients))
    if smtputf8:
        data = _serialize(message, "\r\n", utf8=True)
    else:
        try:
            data = _serialize(message, "\r\n")
        except _NeedsSMTPUTF8:  # a header address (Reply-To...) needs UTF-8 headers
            smtputf8 = True
            data = _serialize(message, "\r\n", utf8=True)
    message_id = data.message_id or ""
    if not message_id:
        raise ValueError("the message has no Message-ID: the queue needs one to send it once")
    size = data.size
    payload: dict[str, Any] = {
        "v": PAYLOAD_VERSION, "id": message_id, "from": from_email, "to": recipients,
        "smtputf8": smtputf8, "eight_bit": False, "size": size,
        "queued": time.time() if queued is None else queued, "attempt": 0,
    }
    if size > config.spool_threshold:
        payload["eight_bit"] = data.eight_bit
        payload["spool"] = _spool(data, config)
        return payload, None
    raw = data.getvalue()
    payload["eight_bit"] = not raw.isascii()
    return payload, raw


def _envelope(message: Any) -> tuple[str, list[str]]:
    from mailcore.backends.smtp import envelope

    return envelope(message)


def _serialize(message: Any, linesep: str, utf8: bool = False) -> Any:
    from mailcore.wire import serialize

    return serialize(message, linesep, utf8=utf8)


def _import_needs_smtputf8() -> type[Exception]:
    from mailcore.message import NeedsSMTPUTF8Error

    return NeedsSMTPUTF8Error


_NeedsSMTPUTF8 = _import_needs_smtputf8()


def _spool(data: Any, config: QueueConfig) -> dict[str, Any]:
    if not config.spool_dir:
        raise ImproperlyConfigured(
            f"A message of {data.size:,} bytes is over EMAIL_QUEUE_SPOOL_THRESHOLD "
            f"({config.spool_threshold:,}): set EMAIL_QUEUE_SPOOL_DIR to a folder that the "
            "workers share, so that it does not go into the broker whole")
    folder = Path(config.spool_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.eml"
    digest = hashlib.sha256()
    size = 0
    partial = folder / f".{name}.part"
    try:
        with open(partial, "wb") as out:
            for chunk in data.chunks():
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return {"name": name, "sha256": digest.hexdigest(), "size": size}


class _Encoded:
    """A payload and its JSON (the pending record), made once. With ``raw``, the message's
    bytes (the payload's "text") are put in the JSON from the bytes themselves."""

    __slots__ = ("payload", "json", "size")

    def __init__(self, payload: Mapping[str, Any], raw: bytes | None = None) -> None:
        self.payload = payload
        if raw is None:
            self.json = _dumps(payload)
        else:  # the bytes (most of it) through the quick literal, the rest through json; a
            # quick literal is marked for the workers' quick reading (_loads_payload)
            literal = _json_bytes(raw)
            quick = ',"q":1' if literal is not None else ""
            self.json = (f'{_dumps(payload)[:-1]}{quick},"text":'
                         f'{literal or _dumps(raw.decode("latin-1"))}}}')
        self.size = len(self.json)


_dumps = json.JSONEncoder(separators=(",", ":")).encode
# What a message's text may hold for _json_string's quick way: printable ASCII, tab, CR, LF.
_PLAIN = bytes(range(0x20, 0x7F)) + b"\t\r\n"


def _json_bytes(raw: bytes) -> str | None:
    """``json.dumps(raw.decode("latin-1"))``, several times quicker for the bytes of most
    messages (printable ASCII lines): json's escaper takes about 4 ns a character,
    bytes.replace a fraction of it. None for anything else (for json)."""
    if not raw.translate(None, _PLAIN):
        if b"\\" in raw:
            raw = raw.replace(b"\\", b"\\\\")
        if b'"' in raw:
            raw = raw.replace(b'"', b'\\"')
        if b"\t" in raw:
            raw = raw.replace(b"\t", b"\\t")
        return '"' + raw.replace(b"\r", b"\\r").replace(b"\n", b"\\n").decode("ascii") + '"'
    return None


_TEXT_KEY = b',"text":"'


def _loads_payload(raw: bytes) -> dict[str, Any]:
    """``json.loads(raw)`` of a pending record, with its "text" (the message's bytes) as
    bytes under ``"raw"`` when the producer wrote it the quick way (``"q":1``: printable
    ASCII, tab, CR and LF, only ``\\ \" \t \r \n`` escaped, the last key), which are
    Python's bytes escapes too: ``codecs.escape_decode`` undoes them in C, about four times
    quicker than json's decoder and the Latin-1 encoding after it. Anything else: json."""
    at = raw.find(_TEXT_KEY)
    if at > 0 and raw.endswith(b'"}'):
        try:
            payload = json.loads(raw[:at] + b"}")
        except ValueError:  # "text" was not the last key
            return json.loads(raw)
        if payload.get("q") == 1:
            payload["raw"] = codecs.escape_decode(raw[at + len(_TEXT_KEY):-2])[0]
            return payload
    return json.loads(raw)


def _with_text(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload read by :func:`_loads_payload` as it is written to Redis again (a retry, a
    dead letter): its bytes as "text" again."""
    if "raw" not in payload:
        return payload
    again = {k: v for k, v in payload.items() if k != "raw"}
    again["text"] = payload["raw"].decode("latin-1")
    return again


def _batches(items: Sequence[_Encoded], config: QueueConfig) -> list[list[_Encoded]]:
    """Consecutive messages, ``batch_size`` a task at most and about ``batch_bytes``; a
    spooled message alone (its lock is renewed as it is written)."""
    batches: list[list[_Encoded]] = []
    current: list[_Encoded] = []
    size = 0
    limit, most = config.batch_size, config.batch_bytes
    for item in items:
        if "spool" in item.payload:
            batches.append([item])
            continue
        if current and (len(current) >= limit or size + item.size > most):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        batches.append(current)
    return batches


def enqueue(messages: Iterable[Any], config: QueueConfig | None = None) -> list[str]:
    """Queue ``messages`` (mailcore's or Django's EmailMessage objects); return the Message-IDs
    queued, in order (messages without recipients are left out, as the SMTP backend leaves
    them). Every message is prepared before any is queued: an invalid one raises and nothing
    is queued. Messages go ``batch_size`` to a task (``EMAIL_QUEUE_BATCH_SIZE``): one task,
    one broker write for many messages; each is still retried, dead-lettered and recorded
    on its own."""
    config = config or QueueConfig.from_settings()
    now = time.time()
    items = [_Encoded(*p) for p in (_prepare(m, config, now) for m in messages)
             if p is not None]
    if not items:
        return []
    ids = [item.payload["id"] for item in items]
    state = get_state(config)
    state.add_pending_encoded([(item.payload["id"], item.json) for item in items])
    try:
        _publish(config, _batches(items, config))
    except BaseException:
        with contextlib.suppress(Exception):
            state.remove_pending(ids)
        raise
    return ids


def _publish(config: QueueConfig, batches: Sequence[Sequence[_Encoded]],
             countdowns: Sequence[float | None] | None = None, app: Any = None) -> None:
    """One task per batch (after its countdown, seconds, if one is given)."""
    app = app or get_app(config)
    if urlsplit(config.broker_url).scheme in REDIS_SCHEMES:
        _publish_redis(app, config, batches, countdowns)
    else:
        _publish_celery(app, config, batches, countdowns)


def _publish_redis(app: Any, config: QueueConfig, batches: Sequence[Sequence[_Encoded]],
                   countdowns: Sequence[float | None] | None = None,
                   tasks_per_write: int = 500) -> None:
    """The tasks as Celery's own publishing writes them to a Redis broker (Celery's message
    protocol 2, built by Celery's ``as_task_v2``; kombu's Redis envelope: a JSON object
    LPUSHed to the queue's list, its body plain JSON, which kombu reads as it is), a
    pipeline, one round trip, per few hundred tasks, and none of ``apply_async``'s per-call
    routing and retry set-up. The workers can't tell them from ``apply_async``'s."""
    build = app.amqp.as_task_v2
    origin = _origin()
    client = _broker_client(config)
    queue = config.name
    delivery_info = {"exchange": "", "routing_key": queue}
    with client.pipeline(transaction=False) as pipe:
        for index, batch in enumerate(batches):
            countdown = countdowns[index] if countdowns is not None else None
            task_id = uuid.uuid4().hex
            ids = [item.payload["id"] for item in batch]
            more = f" and {len(ids) - 1} more" if len(ids) > 1 else ""
            headers, properties, body, _ = build(
                task_id, TASK_BATCH, [ids], {}, origin=origin, ignore_result=True,
                countdown=countdown or None, argsrepr=f"({ids[0]!r}{more},)",
                kwargsrepr="{}")
            properties.update(delivery_tag=str(uuid.uuid4()), priority=0, delivery_mode=2,
                              delivery_info=delivery_info)
            pipe.lpush(queue, _dumps({
                "body": _dumps(body), "content-encoding": "utf-8",
                "content-type": "application/json", "headers": headers,
                "properties": properties}))
            if len(pipe) >= tasks_per_write:
                pipe.execute()
        if len(pipe):
            pipe.execute()


def _origin() -> str:
    import socket

    return f"{os.getpid()}@{socket.gethostname()}"


_BROKER_CLIENTS: dict[tuple[int, str], Any] = {}


def _broker_client(config: QueueConfig) -> Any:
    key = (os.getpid(), config.broker_url)
    client = _BROKER_CLIENTS.get(key)
    if client is None:
        client = _BROKER_CLIENTS[key] = _redis_client(config.broker_url)
    return client


def _publish_celery(app: Any, config: QueueConfig, batches: Sequence[Sequence[_Encoded]],
                    countdowns: Sequence[float | None] | None = None) -> None:
    task = app.tasks[TASK_BATCH]
    with app.producer_or_acquire() as producer:
        declare = None  # the queue is declared with the first task only
        for index, batch in enumerate(batches):
            countdown = countdowns[index] if countdowns is not None else None
            task.apply_async(args=[[item.payload["id"] for item in batch]], producer=producer,
                             queue=config.name, routing_key=config.name, declare=declare,
                             countdown=countdown or None)
            declare = []


# -- the Celery app ----------------------------------------------------------------------------

_APPS: dict[tuple[Any, ...], Any] = {}
_APPS_LOCK = threading.Lock()


def get_app(config: QueueConfig | None = None) -> Any:
    """The Celery app of ``config`` (None: the settings), made once per broker and queue."""
    config = config or QueueConfig.from_settings()
    with _APPS_LOCK:
        app = _APPS.get(config.app_key)
        if app is None:
            app = _APPS[config.app_key] = _make_app(config)
        app.mailcore_config = config  # the latest settings for the same broker and queue
        return app


def _make_app(config: QueueConfig) -> Any:
    try:
        from celery import Celery
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"queued sending needs Celery with Redis ({exc.name or exc} is missing): "
            "pip install 'mailcore[queue]'") from exc
    app = Celery("mailcore", set_as_current=False)
    vt = int(config.visibility_timeout)
    app.conf.update(
        broker_url=config.broker_url,
        broker_transport_options={
            "visibility_timeout": vt,
            # a short visibility timeout is only useful if orphans are looked for as often
            "unacked_restore_interval": max(1, min(10, vt // 4)),
            "unacked_restore_throttle": 1 if vt < 600 else 10,
        },
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_pool_limit=10,
        task_default_queue=config.name,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 40, "interval_start": 0.05,
                                   "interval_step": 0.25, "interval_max": 1.0},
        worker_prefetch_multiplier=max(1, int(config.prefetch)),
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    app.mailcore_config = config
    app.steps["worker"].add(_restore_step())

    @app.task(bind=True, name=TASK_NAME, max_retries=None, acks_late=True,
              reject_on_worker_lost=True, ignore_result=True)
    def deliver(task: Any, payload: dict[str, Any]) -> str:
        return _worker_for(task.app.mailcore_config).handle(task, [payload])

    @app.task(bind=True, name=TASK_BATCH, max_retries=None, acks_late=True,
              reject_on_worker_lost=True, ignore_result=True)
    def deliver_batch(task: Any, payloads: list[dict[str, Any]]) -> str:
        return _worker_for(task.app.mailcore_config).handle(task, payloads)

    return app


def _restore_step() -> type:
    """A worker bootstep that gives back, every few seconds, the tasks a vanished worker took
    and never acknowledged, once they are older than the visibility timeout (kombu's own
    ``restore_visible``, on a thread of the worker's main process with its own connection).
    kombu before 5.7 looks for them only when a worker connects, so the tasks of a worker
    killed while the others run, or left behind by a broker restart, would wait for the next
    worker start."""
    from celery import bootsteps

    class RestoreUnacked(bootsteps.StartStopStep):
        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.stopped = threading.Event()
            self.thread: threading.Thread | None = None

        def start(self, worker: Any) -> None:
            vt = int(worker.app.mailcore_config.visibility_timeout)
            every = max(1, min(30, vt // 3))
            self.stopped.clear()
            self.thread = threading.Thread(target=self.run, args=(worker.app, every),
                                           daemon=True, name="mailcore-queue-restore")
            self.thread.start()

        def run(self, app: Any, every: float) -> None:
            while not self.stopped.wait(every):
                try:
                    with app.connection_for_write() as connection:
                        connection.default_channel.qos.restore_visible(num=1000, interval=1)
                    config = app.mailcore_config
                    get_state(config).recover_lost(app, float(config.visibility_timeout))
                except Exception as exc:  # noqa: BLE001 - the broker away: next time
                    logger.debug("mailcore queue: restoring unacknowledged tasks: %r", exc)

        def stop(self, worker: Any) -> None:
            self.stopped.set()

    return RestoreUnacked


def __getattr__(name: str) -> Any:
    # ``celery -A mailcore.queue worker`` looks for ``app``: made from the settings then.
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the worker --------------------------------------------------------------------------------


def is_temporary(failure: Failure) -> bool:
    """Whether a failure is worth trying again: a 4xx reply (every recipient refused with a
    4xx included), a connection refused, lost or timed out, a host not found, a spool file
    not (yet) there. 5xx replies and everything about the message itself are permanent."""
    if failure.kind is Kind.RECIPIENTS_REFUSED:
        return bool(failure.refused) and all(400 <= r.code < 500 for r in failure.refused)
    if failure.code is not None:
        return 400 <= failure.code < 500
    return failure.kind in _TEMPORARY_KINDS


_TEMPORARY_KINDS = frozenset({
    Kind.TIMEOUT, Kind.CONNECTION_REFUSED, Kind.CONNECTION, Kind.DISCONNECTED,
    Kind.HOST_NOT_FOUND, Kind.SERVICE_UNAVAILABLE, Kind.LOCAL_FILE,
})


def backoff(attempt: int, config: QueueConfig, rng: random.Random | None = None) -> float:
    """Seconds before try ``attempt + 1``: full jitter over ``RETRY_BACKOFF * 2**attempt``,
    capped at ``RETRY_BACKOFF_MAX``, never less than a tenth of the base."""
    ceiling = min(config.retry_backoff_max, config.retry_backoff * (2 ** attempt))
    return max(config.retry_backoff / 10, (rng or random).uniform(0, ceiling))


class _SpoolPiece:
    """A spooled message's bytes, read a chunk at a time as they are sent."""

    stuffing_needed = True

    def __init__(self, path: Path, length: int) -> None:
        self.path = path
        self.length = length

    def size(self) -> int:
        return self.length

    def chunks(self) -> Iterator[bytes]:
        read = 0
        with open(self.path, "rb") as f:
            while block := f.read(_READ_SIZE):
                read += len(block)
                if read > self.length:
                    break
                yield block
        if read != self.length:
            raise SpoolError(f"the spool file {self.path} changed while it was sent")


class _Carried:
    """Makes the carried bytes a Serialized, as the SMTP client takes them (8-bit as the
    producer saw); the class is made once, when first needed."""

    cls: type | None = None

    @classmethod
    def make(cls, pieces: list[Any], message_id: str, eight_bit: bool) -> Any:
        if cls.cls is None:
            from mailcore.wire import Serialized

            class Carried(Serialized):
                def __init__(self, pieces: list[Any], message_id: str, eight_bit: bool) -> None:
                    super().__init__(pieces, [("Message-ID", message_id)], "\r\n")
                    self._eight_bit = eight_bit

                @property
                def eight_bit(self) -> bool:
                    return self._eight_bit

            cls.cls = Carried
        return cls.cls(pieces, message_id, eight_bit)


def _carried(pieces: list[Any], message_id: str, eight_bit: bool) -> Any:
    return _Carried.make(pieces, message_id, eight_bit)


class _Item:
    """One message of a batch on its way: its payload, its bytes (signed), its MAIL options."""

    __slots__ = ("payload", "data", "options")

    def __init__(self, payload: Mapping[str, Any], data: Any) -> None:
        self.payload = payload
        self.data = data
        self.options = ["SMTPUTF8"] if payload.get("smtputf8") else []


class _Deliverer:
    """One SMTP connection for the worker process, kept between tasks, closed when idle."""

    def __init__(self, config: QueueConfig) -> None:
        from mailcore import import_string
        from mailcore.backends.smtp import EmailBackend as SMTPBackend

        cls = import_string(config.delivery_backend) if isinstance(
            config.delivery_backend, str) else config.delivery_backend
        if not (isinstance(cls, type) and issubclass(cls, SMTPBackend)):
            raise ImproperlyConfigured(
                f"EMAIL_QUEUE_DELIVERY_BACKEND must be an SMTP backend (mailcore.backends.smtp."
                f"EmailBackend or a subclass), not {config.delivery_backend!r}")
        self.backend = cls(**dict(config.delivery_options))
        self.idle_close = config.idle_close
        self._lock = threading.Lock()
        self._used = time.monotonic()
        self._closer: threading.Thread | None = None
        self._stop = threading.Event()

    def sign(self, data: Any) -> Any:
        dkim = self.backend.dkim
        return dkim.sign_serialized(data) if dkim is not None else data

    def send_batch(self, items: Sequence[_Item], report: Callable[[_Item, Any], None],
                   progress: Callable[[int, int], None] | None = None) -> None:
        """Send the items over the kept connection, pipelined when the server offers it
        (one round trip a message, the next message's commands riding with the previous
        one's final dot); ``report(item, result)`` for each, in order, as soon as its reply
        is read: a ``(refused, code, text)`` tuple for a 250, or the exception."""
        with self._lock:
            self._used = time.monotonic()
            self._ensure_closer()
            try:
                self._send_batch(list(items), report, progress)
            finally:
                self._used = time.monotonic()

    def _send_batch(self, remaining: list[_Item], report: Callable[[_Item, Any], None],
                    progress: Any) -> None:
        backend = self.backend
        fresh_tried = False
        while remaining:
            reused = backend.connection is not None
            if not reused:
                try:
                    backend.open()
                except Exception as exc:  # noqa: BLE001 - classified by the caller
                    self._discard()
                    for item in remaining:
                        report(item, exc)
                    return
            connection = backend.connection
            done = 0
            stale = False
            try:
                for item, result in self._round(connection, remaining, progress):
                    if (done == 0 and reused and not fresh_tried
                            and isinstance(result, Exception) and self._stale(result)):
                        stale = True  # closed by the server while it was idle
                        break
                    done += 1
                    report(item, result)
            except _Abort:
                self._discard()  # a message whose DATA is open is not ended
                raise
            except Exception as exc:  # noqa: BLE001 - the connection failed mid-message
                if not (isinstance(exc, smtplib.SMTPException)
                        and getattr(connection, "sock", None) is not None):
                    self._discard()
                rest = remaining[done:]
                if done == 0 and reused and not fresh_tried and self._stale(exc):
                    fresh_tried = True
                    continue
                for item in rest:
                    report(item, exc)
                return
            remaining = remaining[done:]
            if remaining:  # the connection ended (a 421, a lost connection): a new one
                self._discard()
                if stale:
                    fresh_tried = True
                elif done == 0:
                    for item in remaining:
                        report(item, smtplib.SMTPServerDisconnected(
                            "the connection ended before the message was sent"))
                    return

    @staticmethod
    def _stale(exc: BaseException) -> bool:
        failure = classify(exc)
        return failure.kind in (Kind.DISCONNECTED, Kind.SERVICE_UNAVAILABLE) \
            and failure.stage in (None, _stage("mail"))

    @staticmethod
    def _round(connection: Any, items: Sequence[_Item], progress: Any
               ) -> Iterator[tuple[_Item, Any]]:
        if hasattr(connection, "send_pipelined") and connection.pipelining():
            yield from connection.send_pipelined(
                ((item, item.payload["from"], item.payload["to"], item.data, item.options)
                 for item in items), progress=progress)
            return
        for item in items:
            payload = item.payload
            try:
                if hasattr(connection, "send_serialized"):  # mailcore's own client
                    reply = connection.send_serialized(payload["from"], payload["to"],
                                                       item.data, mail_options=item.options,
                                                       progress=progress)
                else:  # an smtplib-compatible connection_class of the user's
                    refused = connection.sendmail(payload["from"], payload["to"],
                                                  item.data.getvalue(), item.options)
                    reply = (refused or {}, 250, b"")
            except smtplib.SMTPException as exc:
                yield item, exc
                if getattr(connection, "sock", None) is None:
                    return
                continue
            yield item, reply

    def _discard(self) -> None:
        backend = self.backend
        with contextlib.suppress(Exception):
            if backend.connection is not None:
                backend.connection.close()
        with contextlib.suppress(Exception):
            backend.close()
        backend.connection = None

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            with contextlib.suppress(Exception):
                self.backend.close()

    def _ensure_closer(self) -> None:
        if self._closer is None and self.idle_close > 0:
            self._closer = threading.Thread(target=self._close_when_idle, daemon=True,
                                            name="mailcore-queue-idle")
            self._closer.start()

    def _close_when_idle(self) -> None:
        while not self._stop.wait(max(0.05, self.idle_close / 4)):
            with self._lock:
                if (self.backend.connection is not None
                        and time.monotonic() - self._used >= self.idle_close):
                    with contextlib.suppress(Exception):
                        self.backend.close()
                    if self.backend.connection is not None:
                        self._discard()


def _stage(name: str) -> Any:
    from mailcore.errors import Stage

    return Stage(name)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Abort(Exception):  # noqa: N818 - a decision: stop this batch, give it back
    """Stop sending a batch: Redis is away, or a lock was lost while Redis was."""


class _Worker:
    """What one worker process does with each task: a batch of messages."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.state = get_state(config)
        self.deliverer = _Deliverer(config)

    def handle(self, task: Any, refs: list[str | dict[str, Any]]) -> str:
        import redis
        from celery.exceptions import Reject

        try:
            return self._handle(task, refs)
        except (redis.RedisError, _Abort) as exc:
            # The state store stayed away, or a lock expired while it was away: the task goes
            # back to the broker (or, if that is gone too, is restored to the queue after the
            # visibility timeout). What was recorded as sent is skipped when it comes back.
            logger.warning("mailcore queue: Redis unavailable (%s): task requeued",
                           exc.__cause__.__class__.__name__ if isinstance(exc, _Abort)
                           and exc.__cause__ is not None else exc)
            raise Reject(str(exc), requeue=True) from None

    def _handle(self, task: Any, refs: list[str | dict[str, Any]]) -> str:
        """Lock the batch's Message-IDs and look for their sent records (one round trip);
        send the rest over the kept connection, recording each as sent as its 250 is read;
        then, in one round trip, mark what failed and release the locks; last, give each
        message that must wait (a temporary failure, a lock another worker holds, a rate)
        a task of its own. The batch's task is acknowledged when this returns: a worker
        killed before leaves the whole batch to another, which skips what was recorded."""
        import redis

        state, config = self.state, self.config
        token = uuid.uuid4().hex
        # a task carries Message-IDs (a task of version 1, the payload itself)
        ids = [ref["id"] if isinstance(ref, dict) else str(ref) for ref in refs]
        locked, found, stored = state.claim(ids, token)
        held = [mid for mid, is_locked in zip(ids, locked) if is_locked]
        duplicates: list[str] = []
        unsettled: list[str] = []  # sent by a worker that died before it settled its batch
        later: list[tuple[dict[str, Any], float]] = []
        todo: list[dict[str, Any]] = []
        for ref, message_id, is_locked, is_sent, raw in zip(refs, ids, locked, found, stored):
            if is_sent:  # not sent again
                duplicates.append(message_id)
                if raw is not None:
                    unsettled.append(message_id)
                continue
            if raw is None and not isinstance(ref, dict):
                continue  # not pending: dead-lettered (or never queued); its lock is released
            payload = ref if isinstance(ref, dict) else _loads_payload(raw)
            if not is_locked:  # another worker is sending it now: look again when done
                later.append((payload, min(config.lock_ttl, 1.0) * random.uniform(0.5, 1.0)))
            else:
                todo.append(payload)
        if config.rate_limits:
            going = []
            for payload in todo:
                wait = state.rate_wait(_domains(payload["to"]))
                if wait > 0:  # over its destination's rate: not an attempt
                    later.append((payload, wait + random.uniform(0, 0.05)))
                else:
                    going.append(payload)
            todo = going
        retrying: dict[str, dict[str, Any]] = {}
        dead: dict[str, dict[str, Any]] = {}
        items: list[_Item] = []
        for payload in todo:
            try:
                items.append(_Item(payload, self.deliverer.sign(self._load(payload))))
            except Exception as exc:  # noqa: BLE001 - classified: retried or dead-lettered
                if isinstance(exc, redis.RedisError):
                    raise
                self._failed(payload, exc, retrying, dead, later)
        recorder = state.recorder(token)
        sent: list[dict[str, Any]] = []
        unsent = {item.payload["id"] for item in items}
        renew = self._renewer(unsent, token)

        def report(item: _Item, result: Any) -> None:
            payload = item.payload
            unsent.discard(payload["id"])
            try:
                waited = False
                if isinstance(result, BaseException):
                    self._failed(payload, result, retrying, dead, later)
                else:
                    refused, code, text = result
                    sent.append(payload)
                    waited = recorder.sent_reply(payload["id"], code, text, refused,
                                                 int(payload.get("attempt", 0)) + 1)
                renew(force=waited)
            except redis.RedisError as exc:
                raise _Abort("Redis is away") from exc

        def progress(done: int, total: int) -> None:
            try:
                renew()
            except redis.RedisError as exc:
                raise _Abort("Redis is away") from exc

        try:
            if items:
                big = sum(item.payload.get("size", 0) for item in items) >= 4 * _READ_SIZE
                self.deliverer.send_batch(items, report, progress if big else None)
        finally:
            recorder.finish()  # what was sent is recorded, whatever stopped the batch
        settled = {p["id"] for p in sent} | set(unsettled)  # their locks go with them
        later = [(_with_text(p), delay) for p, delay in later]
        for record in dead.values():
            record["payload"] = _with_text(record["payload"])
        again = [_Encoded(p) for p, _ in later]
        state.settle(token, sent=[p["id"] for p in sent] + unsettled,
                     unlock=[mid for mid in held if mid not in settled],
                     duplicates=duplicates, retrying=retrying, dead=dead,
                     again=[e for e in again if e.payload["id"] in retrying])
        if later:
            _publish(config, [[e] for e in again], [d for _, d in later], app=task.app)
        for payload in sent:
            self._unspool(payload)
        return (f"sent {len(sent)}, retrying {len(retrying)}, dead {len(dead)}, "
                f"already sent {len(duplicates)}, waiting {len(later) - len(retrying)}")

    def _renewer(self, unsent: set[str], token: str) -> Callable[..., None]:
        """Renews the locks of the batch's messages not yet sent every third of their time
        (and at once after Redis was away); a lock lost meanwhile stops the batch."""
        every = max(0.2, self.config.lock_ttl / 3)
        last = [time.monotonic()]

        def renew(force: bool = False) -> None:
            now = time.monotonic()
            if force or now - last[0] >= every:
                last[0] = now
                ids = list(unsent)
                lost = [m for m, ok in zip(ids, self.state.renew_many(ids, token)) if not ok]
                if lost:
                    raise _Abort(f"{len(lost)} lock(s) expired while Redis was away")

        return renew

    def _load(self, payload: Mapping[str, Any]) -> Any:
        if "raw" in payload:  # read the quick way (_loads_payload)
            return _carried([payload["raw"]], payload["id"], bool(payload.get("eight_bit")))
        if "text" in payload:
            return _carried([payload["text"].encode("latin-1")], payload["id"],
                            bool(payload.get("eight_bit")))
        if "data" in payload:
            return _carried([base64.b64decode(payload["data"])], payload["id"],
                            bool(payload.get("eight_bit")))
        spool = payload["spool"]
        name = str(spool["name"])
        if not _SPOOL_NAME.match(name):
            raise SpoolError(f"not a spool file name: {name!r}")
        if not self.config.spool_dir:
            raise ImproperlyConfigured("a spooled message needs EMAIL_QUEUE_SPOOL_DIR set on "
                                       "the workers")
        path = Path(self.config.spool_dir) / name
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:  # a missing file: an OSError naming it (temporary)
            while block := f.read(_READ_SIZE):
                digest.update(block)
                size += len(block)
        if size != spool["size"] or digest.hexdigest() != spool["sha256"]:
            raise SpoolError(f"the spool file {path} does not match its checksum "
                             f"({size:,} bytes, {spool['size']:,} expected)")
        return _carried([_SpoolPiece(path, size)], payload["id"],
                        bool(payload.get("eight_bit")))

    def _unspool(self, payload: Mapping[str, Any]) -> None:
        spool = payload.get("spool")
        if spool and self.config.spool_dir and _SPOOL_NAME.match(str(spool["name"])):
            with contextlib.suppress(OSError):
                (Path(self.config.spool_dir) / spool["name"]).unlink()

    def _failed(self, payload: dict[str, Any], exc: Exception,
                retrying: dict[str, dict[str, Any]], dead: dict[str, dict[str, Any]],
                later: list[tuple[dict[str, Any], float]]) -> None:
        """One message failed: tried again on its own later (a temporary failure, with
        retries left), or dead-lettered with the server's reply."""
        failure = classify(exc)
        attempt = int(payload.get("attempt", 0))
        message_id = payload["id"]
        record = {
            "at": time.time(), "code": failure.code, "reply": failure.reply,
            "kind": str(failure.kind), "stage": str(failure.stage or ""),
            "attempts": attempt + 1,
            "detail": _detail(failure, exc),
        }
        if is_temporary(failure) and attempt < self.config.max_retries:
            delay = backoff(attempt, self.config)
            retrying[message_id] = dict(record, next=time.time() + delay)
            later.append((dict(payload, attempt=attempt + 1), delay))
            logger.info("mailcore queue: %s: %s, try %d in %.1fs", message_id,
                        failure.reply or failure.kind, attempt + 2, delay)
            return
        dead[message_id] = dict(record, payload=payload)
        logger.warning("mailcore queue: %s dead-lettered: %s", message_id,
                       failure.reply or failure.kind)


def _detail(failure: Failure, exc: BaseException) -> str:
    """A few words for the dead-letter list: what mailcore's own exceptions say (they name no
    secret); for others the kind, reason and file only."""
    if isinstance(exc, SpoolError | ImproperlyConfigured):
        return str(exc)
    if failure.refused:
        return "; ".join(f"{r.address}: {r.code} {r.text}" for r in failure.refused)
    words = [w for w in (failure.reason, failure.path, failure.address) if w]
    return " ".join(words)


def _domains(recipients: Iterable[str]) -> list[str]:
    return [r.rpartition("@")[2].lower() for r in recipients]


_WORKERS: dict[tuple[int, tuple[Any, ...]], _Worker] = {}


def _worker_for(config: QueueConfig) -> _Worker:
    key = (os.getpid(), config.app_key)
    worker = _WORKERS.get(key)
    if worker is None:
        worker = _WORKERS[key] = _Worker(config)
    return worker


def _close_connections(**_: Any) -> None:
    for key, worker in list(_WORKERS.items()):
        if key[0] == os.getpid():
            worker.deliverer.close()


with contextlib.suppress(ImportError):
    from celery.signals import worker_process_shutdown, worker_shutdown

    worker_process_shutdown.connect(_close_connections, weak=False)
    worker_shutdown.connect(_close_connections, weak=False)
