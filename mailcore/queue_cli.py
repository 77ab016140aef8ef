"""``mailcore queue status|dead|retry ID`` and ``mailcore worker``: the queued sending of
:mod:`mailcore.queue` from the command line. Settings as for the rest of the ``mailcore``
command: ``MAILCORE_EMAIL_QUEUE_*`` variables and the config file (``--config``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

__all__ = ["run"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailcore", description="Queued sending (Celery, Redis)")
    parser.add_argument("--config", help="a TOML settings file (default: the user's)")
    commands = parser.add_subparsers(dest="command", required=True)
    queue = commands.add_parser("queue", help="what happened to the queued messages")
    queue.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    actions = queue.add_subparsers(dest="action", required=True)
    st = actions.add_parser("status", help="counts: queued, retrying, sent, dead")
    st.add_argument("--json", action="store_true", help="one JSON object")
    dead = actions.add_parser("dead", help="the dead-letter list, with the servers' replies")
    dead.add_argument("--json", action="store_true", help="one JSON object per line")
    again = actions.add_parser("retry", help="queue a dead-lettered message again")
    again.add_argument("message_id", metavar="ID", nargs="+", help="its Message-ID")
    worker = commands.add_parser("worker", help="run a Celery worker that delivers the queue")
    worker.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    worker.add_argument("-c", "--concurrency", type=int, default=None,
                        help="worker processes (default: one per CPU)")
    worker.add_argument("-n", "--hostname", default=None, help="the worker's node name")
    worker.add_argument("-l", "--loglevel", default="WARNING", help="Celery's log level")
    worker.add_argument("--pool", default="prefork", help="Celery's pool (prefork, solo...)")
    worker.add_argument("celery_args", nargs=argparse.REMAINDER,
                        help="more options for 'celery worker', after --")
    return parser


def run(argv: Sequence[str] | None = None, stdin: TextIO | None = None,
        stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``mailcore queue ...`` / ``mailcore worker ...``; returns the exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    from mailcore.cli import CLIError, load_config
    from mailcore.conf import ImproperlyConfigured

    config = None
    try:
        load_config(getattr(args, "sub_config", None) or args.config)
        from mailcore import queue

        config = queue.QueueConfig.from_settings()
        if args.command == "worker":
            return _worker(args, config)
        return _queue(args, config, stdout, stderr)
    except CLIError as exc:
        stderr.write(f"mailcore: {exc}\n")
        return exc.code
    except ImproperlyConfigured as exc:
        stderr.write(f"mailcore: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the broker: one line, no traceback
        import redis

        if isinstance(exc, redis.RedisError):
            from mailcore.queue import redact_url

            where = redact_url(config.state_url) if config is not None else "?"
            stderr.write(f"mailcore: the queue's Redis at {where} can't be used "
                         f"({type(exc).__name__})\n")
            return EXIT_CONNECTION
        raise


def _queue(args: argparse.Namespace, config: object, stdout: TextIO, stderr: TextIO) -> int:
    from mailcore import queue

    if args.action == "status":
        st = queue.status(config)
        counts = {"queued": st.queued, "retrying": st.retrying, "sent": st.sent,
                  "dead": st.dead}
        if args.json:
            stdout.write(json.dumps(dict(counts, duplicates=st.duplicates)) + "\n")
        else:
            for name, count in counts.items():
                stdout.write(f"{name:<9}{count:>9,}\n")
        return EXIT_OK
    if args.action == "dead":
        for letter in queue.dead_letters(config):
            if args.json:
                stdout.write(json.dumps({
                    "id": letter.message_id, "code": letter.code, "reply": letter.reply,
                    "kind": letter.kind, "stage": letter.stage, "attempts": letter.attempts,
                    "failed_at": letter.failed_at, "from": letter.sender,
                    "to": list(letter.recipients), "detail": letter.detail}) + "\n")
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.failed_at))
            detail = f": {letter.detail}" if letter.detail else ""
            reply = letter.reply or f"({letter.kind}{detail})"
            stdout.write(f"{letter.message_id}  {reply}\n"
                         f"    to {', '.join(letter.recipients)}; {letter.attempts} "
                         f"attempt{'s' if letter.attempts != 1 else ''}, last {when}\n")
        return EXIT_OK
    status = EXIT_OK
    for message_id in args.message_id:
        if queue.retry(message_id, config):
            stdout.write(f"queued again: {message_id}\n")
        else:
            stderr.write(f"mailcore: {message_id} is not in the dead-letter list\n")
            status = EXIT_NOT_FOUND
    return status


def _worker(args: argparse.Namespace, config: object) -> int:
    from mailcore import queue

    app = queue.get_app(config)
    argv = ["worker", "-Q", config.name, "--loglevel", args.loglevel, "--pool", args.pool,
            "--without-gossip", "--without-mingle"]
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    extra = list(args.celery_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    app.worker_main(argv + extra)
    return EXIT_OK
