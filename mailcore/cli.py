"""The ``mailcore`` command: compose and send one message from the shell.

    mailcore --to someone@example.com --subject hi --body hello --backend console
    mailcore --host smtp.example.com --starttls --user me --to you@example.com \\
             --attach report.pdf --transcript < body.txt

Exit codes a script can rely on:

====  ==============================================================
0     sent (or dumped)
2     usage error (bad flags, nothing to send to)
3     the message is invalid (bad address, newline in a header,
      unreadable file)
4     connection or TLS failure (refused, timeout, untrusted
      certificate, STARTTLS unavailable)
5     authentication failure (wrong credentials, AUTH unavailable,
      password refused over an unencrypted connection)
6     recipients refused (all of them), or the sender refused
7     the server rejected the message otherwise
====  ==============================================================

Defaults come from ``MAILCORE_*`` environment variables and from a config
file (``--config``, else ``$XDG_CONFIG_HOME/mailcore/config.toml``) whose keys
are setting names (``EMAIL_HOST = "smtp.example.com"``); the environment
beats the file, and flags beat both.
"""

from __future__ import annotations

import argparse
import getpass
import os
import smtplib
import socket
import ssl
import sys
import tomllib
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import mailcore
from mailcore.conf import DEFAULTS, ENV_PREFIX, ImproperlyConfigured, settings

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_MESSAGE = 3
EXIT_CONNECTION = 4
EXIT_AUTH = 5
EXIT_REFUSED = 6
EXIT_REJECTED = 7

PROFILE_ENTRY_POINTS = "mailcore.profiles"
BACKENDS = ("smtp", "console", "file", "locmem", "dummy")


class CLIError(Exception):
    """A failure with its exit code and a one-line explanation."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class _AttachAction(argparse.Action):
    """``--attach FILE``: takes the type given by the ``--attach-type`` before it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        items = getattr(namespace, "attachments", None) or []
        items.append((values, getattr(namespace, "_pending_type", None)))
        namespace.attachments = items
        namespace._pending_type = None


class _AttachTypeAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        namespace._pending_type = values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailcore",
        description="Compose one email from flags and send it (or print it).",
        epilog="Exit codes: 0 sent, 2 usage, 3 invalid message, 4 connection/TLS, "
        "5 authentication, 6 recipients refused, 7 message rejected.",
    )
    add = parser.add_argument
    who = parser.add_argument_group("addresses (repeatable)")
    who.add_argument("--to", "-t", action="append", default=[], metavar="ADDR")
    who.add_argument("--cc", action="append", default=[], metavar="ADDR")
    who.add_argument("--bcc", action="append", default=[], metavar="ADDR")
    who.add_argument("--reply-to", action="append", default=[], metavar="ADDR")
    who.add_argument(
        "--from",
        "-f",
        dest="from_email",
        metavar="ADDR",
        help="sender (default: the profile's, else DEFAULT_FROM_EMAIL)",
    )

    content = parser.add_argument_group("content")
    content.add_argument("--subject", "-s", default="")
    body = content.add_mutually_exclusive_group()
    body.add_argument("--body", "-b", help="the plain-text body")
    body.add_argument("--body-file", metavar="FILE", help="read the body from FILE ('-' for stdin)")
    content.add_argument("--html-file", metavar="FILE", help="an HTML alternative")
    content.add_argument(
        "--attach", "-a", action=_AttachAction, metavar="FILE", help="attach a file (repeatable)"
    )
    content.add_argument(
        "--attach-type",
        action=_AttachTypeAction,
        metavar="TYPE",
        help="MIME type of the next --attach (default: guessed)",
    )
    content.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'")

    where = parser.add_argument_group("delivery")
    where.add_argument("--backend", choices=BACKENDS, help="default: smtp (EMAIL_BACKEND)")
    where.add_argument(
        "--profile",
        metavar="NAME",
        help="use a saved mailgui profile (server, login, password from the keyring)",
    )
    where.add_argument("--host", "--server")
    where.add_argument("--port", "-p", type=int)
    tls = where.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true", help="upgrade with STARTTLS (port 587)")
    tls.add_argument("--tls", action="store_true", help="implicit TLS (port 465)")
    where.add_argument("--user", "-u", help="log in as USER")
    pw = where.add_mutually_exclusive_group()
    pw.add_argument(
        "--password-env", metavar="VAR", help="read the password from the environment variable VAR"
    )
    pw.add_argument("--password-prompt", action="store_true", help="ask for the password")
    where.add_argument(
        "--allow-insecure-auth",
        action="store_true",
        help="allow sending the password without TLS to a non-loopback host",
    )
    where.add_argument("--timeout", type=float, metavar="SECONDS")
    where.add_argument("--ca-file", metavar="PEM", help="trust this CA instead of the system's")
    where.add_argument("--cert", metavar="PEM", help="client certificate")
    where.add_argument("--key", metavar="PEM", help="client certificate key")
    where.add_argument("--file-path", metavar="DIR", help="folder for --backend file")

    out = parser.add_argument_group("output")
    out.add_argument("--dump", action="store_true", help="print the MIME source, send nothing")
    out.add_argument(
        "--transcript",
        action="store_true",
        help="print the SMTP conversation (AUTH redacted, the message summarised)",
    )
    out.add_argument(
        "--transcript-data",
        action="store_true",
        help="with --transcript, also print every line of the message as sent",
    )
    out.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    add("--version", action="version", version=f"mailcore {mailcore.__version__}")
    parser.set_defaults(attachments=[], _pending_type=None)
    return parser


# -- configuration -------------------------------------------------------------


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mailcore" / "config.toml"


def load_config(path: str | None) -> None:
    """Apply a TOML settings file as defaults (the environment wins over it)."""
    file = Path(path) if path else default_config_path()
    if not file.exists():
        if path:
            raise CLIError(EXIT_USAGE, f"config file not found: {file}")
        return
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CLIError(EXIT_USAGE, f"cannot read config file {file}: {exc}") from None
    values = {}
    for key, value in data.items():
        name = key.upper()
        if name not in DEFAULTS:
            raise CLIError(EXIT_USAGE, f"{file}: unknown setting {key!r}")
        if name == "EMAIL_HOST_PASSWORD":
            raise CLIError(
                EXIT_USAGE,
                f"{file}: passwords do not belong in a file; use --password-env, "
                "--password-prompt or --profile",
            )
        if ENV_PREFIX + name not in os.environ:
            values[name] = value
    settings.configure(**values)


def load_profile(name: str) -> dict[str, Any]:
    """Backend arguments from a profile source registered under the
    ``mailcore.profiles`` entry point group (mailgui registers its profiles)."""
    sources = metadata.entry_points(group=PROFILE_ENTRY_POINTS)
    if not sources:
        raise CLIError(EXIT_USAGE, "--profile needs mailgui installed (no profile source found)")
    for source in sources:
        loader: Callable[[str], dict[str, Any] | None] = source.load()
        try:
            profile = loader(name)
        except LookupError as exc:
            raise CLIError(EXIT_USAGE, str(exc)) from None
        if profile is not None:
            return profile
    raise CLIError(EXIT_USAGE, f"no profile named {name!r}")


# -- composing -----------------------------------------------------------------


def read_text(path: str, what: str, stdin: TextIO) -> str:
    if path == "-":
        return stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(EXIT_MESSAGE, f"cannot read {what} {path}: {_reason(exc)}") from None


def compose(args: argparse.Namespace, profile: dict[str, Any], stdin: TextIO) -> Any:
    if args.body is not None:
        body = args.body
    elif args.body_file:
        body = read_text(args.body_file, "body file", stdin)
    elif not stdin.isatty():
        body = stdin.read()
    else:
        body = ""
    headers: dict[str, str] = {}
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise CLIError(EXIT_USAGE, f"--header needs 'Name: value', got {line!r}")
        headers[name.strip()] = value.strip()
    msg = mailcore.EmailMultiAlternatives(
        subject=args.subject,
        body=body,
        from_email=args.from_email or profile.get("from_email") or None,
        to=args.to,
        bcc=args.bcc,
        cc=args.cc,
        reply_to=args.reply_to,
        headers=headers,
    )
    validate_addresses(msg)
    if args.html_file:
        msg.attach_alternative(read_text(args.html_file, "HTML file", stdin), "text/html")
    for path, mimetype in args.attachments:
        try:
            msg.attach_file(path, mimetype)
        except OSError as exc:
            raise CLIError(EXIT_MESSAGE, f"cannot attach {path}: {_reason(exc)}") from None
        except ValueError as exc:
            raise CLIError(EXIT_USAGE, f"cannot attach {path}: {exc}") from None
    return msg


def validate_addresses(msg: Any) -> None:
    """Every address must be one the SMTP backend could send to, whatever the
    backend (the console and file backends would not check)."""
    from mailcore.message import sanitize_address

    fields = [
        ("--from", [msg.from_email]),
        ("--to", msg.to),
        ("--cc", msg.cc),
        ("--bcc", msg.bcc),
        ("--reply-to", msg.reply_to),
    ]
    for flag, addresses in fields:
        for address in addresses:
            try:
                sanitize_address(address, msg.encoding or settings.DEFAULT_CHARSET)
            except ValueError as exc:
                raise CLIError(EXIT_MESSAGE, f"{flag} {address!r}: {exc}") from None


# -- delivering ----------------------------------------------------------------


def connection_kwargs(args: argparse.Namespace, profile: dict[str, Any], stdin: TextIO) -> dict:
    backend = args.backend or profile.get("backend") or _short(settings.EMAIL_BACKEND)
    kwargs: dict[str, Any] = {"backend": backend}
    if backend in ("file", "filebased"):
        path = args.file_path or profile.get("file_path")
        if path:
            kwargs["file_path"] = path
    if backend != "smtp":
        return kwargs
    options = {
        key: profile[key]
        for key in (
            "host",
            "port",
            "username",
            "password",
            "use_tls",
            "use_ssl",
            "timeout",
            "ssl_cafile",
            "ssl_certfile",
            "ssl_keyfile",
            "allow_insecure_auth",
        )
        if profile.get(key) not in (None, "")
    }
    flags = {
        "host": args.host,
        "port": args.port,
        "username": args.user,
        "timeout": args.timeout,
        "ssl_cafile": args.ca_file,
        "ssl_certfile": args.cert,
        "ssl_keyfile": args.key,
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if args.starttls:
        options.update(use_tls=True, use_ssl=False)
    if args.tls:
        options.update(use_tls=False, use_ssl=True)
    if args.allow_insecure_auth:
        options["allow_insecure_auth"] = True
    if args.password_env:
        if args.password_env not in os.environ:
            raise CLIError(EXIT_USAGE, f"--password-env: ${args.password_env} is not set")
        options["password"] = os.environ[args.password_env]
    elif "password" not in options and (args.password_prompt or options.get("username")):
        problem = profile.get("password_problem")
        asked = args.password_prompt or (
            stdin.isatty() and (problem or not settings.EMAIL_HOST_PASSWORD)
        )
        if asked:
            options["password"] = getpass.getpass(f"Password for {options.get('username')}: ")
        elif problem:
            name = profile.get("profile_name", "")
            raise CLIError(
                EXIT_AUTH,
                f"profile {name!r} needs a password: {problem}; "
                "use --password-env VAR or --password-prompt",
            )
    kwargs.update(options)
    return kwargs


def _short(path: str) -> str:
    for name in ("smtp", "console", "locmem", "dummy"):
        if path.endswith(f".backends.{name}.EmailBackend"):
            return name
    if path.endswith(".backends.filebased.EmailBackend"):
        return "file"
    return path


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"{exc.smtp_code} {' '.join(text.split())}"


def explain(exc: BaseException, where: str) -> CLIError:
    """Turn a library exception into an exit code and one clear line."""
    if isinstance(exc, CLIError):
        return exc
    if isinstance(exc, mailcore.BadHeaderError):
        return CLIError(EXIT_MESSAGE, f"invalid message: {exc}")
    if isinstance(exc, ImproperlyConfigured):
        return CLIError(EXIT_USAGE, str(exc))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return CLIError(EXIT_AUTH, f"authentication failed at {where}: {_reply(exc)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(
            f"{addr}: {code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
            for addr, (code, text) in exc.recipients.items()
        )
        return CLIError(EXIT_REFUSED, f"all recipients refused by {where}: {refused}")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return CLIError(EXIT_REFUSED, f"sender {exc.sender} refused by {where}: {_reply(exc)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        text = str(exc)
        code = EXIT_AUTH if "AUTH" in text else EXIT_CONNECTION
        return CLIError(code, f"{where}: {text}")
    if type(exc).__name__ == "InsecureAuthError":
        return CLIError(EXIT_AUTH, str(exc))
    if isinstance(exc, smtplib.SMTPConnectError):
        return CLIError(EXIT_CONNECTION, f"{where} refused the connection: {_reply(exc)}")
    if isinstance(exc, smtplib.SMTPDataError):
        return CLIError(EXIT_REJECTED, f"message rejected by {where}: {_reply(exc)}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        cause = exc.__context__
        if isinstance(cause, TimeoutError) or "timed out" in str(exc):
            return CLIError(EXIT_CONNECTION, f"{where} did not answer in time ({exc})")
        return CLIError(EXIT_CONNECTION, f"{where} closed the connection: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return CLIError(EXIT_REJECTED, f"{where} answered {_reply(exc)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CLIError(
            EXIT_CONNECTION,
            f"the certificate of {where} is not trusted ({exc.verify_message}); "
            "use --ca-file for a private CA",
        )
    if isinstance(exc, ssl.SSLError):
        return CLIError(EXIT_CONNECTION, f"TLS with {where} failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return CLIError(EXIT_CONNECTION, f"{where} did not answer in time")
    if isinstance(exc, socket.gaierror):
        return CLIError(EXIT_CONNECTION, f"cannot find the host of {where}: {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError):
        return CLIError(EXIT_CONNECTION, f"{where} refused the connection (is a server listening?)")
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return CLIError(EXIT_MESSAGE, f"cannot read {exc.filename}: {_reason(exc)}")
    if isinstance(exc, OSError):
        return CLIError(EXIT_CONNECTION, f"cannot talk to {where}: {_reason(exc)}")
    if isinstance(exc, ValueError):
        return CLIError(EXIT_MESSAGE, f"invalid message: {exc}")
    return CLIError(EXIT_REJECTED, f"{type(exc).__name__}: {exc}")


class TranscriptPrinter:
    """swaks-style lines: ``<-`` server, `` ->`` client, ``~`` once TLS is on."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tls = False

    def __call__(self, event: str, text: str) -> None:
        if event == "connect":
            self.out.write(f"=== Trying {text}...\n")
        elif event in ("info", "auth"):
            self.out.write(f"=== {text[:1].upper()}{text[1:]}\n")
        elif event == "tls":
            self.tls = True
            self.out.write(f"=== {text}\n")
        elif event == "data":
            self.out.write(f" {'~>' if self.tls else '->'} {text}\n")
        elif event == "server":
            self.out.write(f"{'<~' if self.tls else '<-'}  {text}\n")
        else:
            self.out.write(f" {'~>' if self.tls else '->'} {text}\n")
        self.out.flush()


def run(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    where = "the server"
    try:
        load_config(args.config)
        profile = load_profile(args.profile) if args.profile else {}
        msg = compose(args, profile, stdin)
        if args.dump:
            from mailcore.wire import serialize

            data = serialize(msg, linesep="\n")
            out = getattr(stdout, "buffer", None)
            for chunk in data.chunks():
                if out is not None:
                    out.write(chunk)
                else:
                    stdout.write(chunk.decode(data.charset, "replace"))
            stdout.flush()
            return EXIT_OK
        if not msg.recipients():
            raise CLIError(EXIT_USAGE, "nothing to send to: give --to, --cc or --bcc")
        kwargs = connection_kwargs(args, profile, stdin)
        backend_name = kwargs.pop("backend")
        if backend_name == "smtp":
            host = kwargs.get("host") or settings.EMAIL_HOST
            where = f"{host}:{kwargs.get('port') or settings.EMAIL_PORT}"
            if args.transcript or args.transcript_data:
                kwargs["transcript"] = TranscriptPrinter(stdout)
                kwargs["transcript_data"] = args.transcript_data
        if backend_name == "console":
            kwargs["stream"] = stdout
        connection = mailcore.get_connection(backend_name, **kwargs)
        sent = connection.send_messages([msg])
        if not sent:
            raise CLIError(EXIT_REJECTED, "the message was not sent")
        if not args.quiet:
            results = getattr(connection, "last_results", None)
            detail = ""
            if results:
                result = results[0]
                detail = f" {result.message_id}"
                if result.refused:
                    refused = ", ".join(result.refused)
                    detail += f" (refused: {refused})"
            if backend_name == "smtp":
                stderr.write(
                    f"mailcore: sent{detail} to {len(msg.recipients())} recipient(s) via {where}\n"
                )
            elif backend_name in ("file", "filebased"):
                stderr.write(f"mailcore: written to {connection._get_filename()}\n")
            elif backend_name == "locmem":
                stderr.write("mailcore: kept in memory (locmem backend)\n")
            elif backend_name == "dummy":
                stderr.write("mailcore: discarded (dummy backend)\n")
        return EXIT_OK
    except KeyboardInterrupt:
        stderr.write("mailcore: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit code
        error = explain(exc, where)
        stderr.write(f"mailcore: {error}\n")
        return error.code


def main() -> None:
    sys.exit(run())
