"""The ``mailcore`` command: compose and send one message from the shell.

    mailcore [send] --to someone@example.com --subject hi --body hello --backend console
    mailcore --host smtp.example.com --starttls --user me --to you@example.com \\
             --attach report.pdf --transcript < body.txt

Exit codes a script can rely on:

====  ==============================================================
0     sent (or dumped), or stopped where --quit-after said
2     usage error (bad flags, nothing to send to, options that
      disagree such as --protocol SMTP with --user)
3     the message is invalid (bad address, newline or control
      character in a header, unreadable file or --data file, an
      empty --data), whatever raised it
4     connection or TLS failure (refused, timeout, untrusted
      certificate or one for other names, a client certificate
      asked for, STARTTLS unavailable or refused, a 421 from the
      server, a reply over the limits)
5     authentication failure (wrong credentials or access token, AUTH
      unavailable, or only after STARTTLS, the --auth mechanism not
      offered, password or token refused over an unencrypted
      connection)
6     recipients refused (all of them; with LMTP also after the
      message), or the sender refused
7     the server rejected the message otherwise (also too large for
      the server's SIZE)
====  ==============================================================

The options testers know from swaks, with swaks's meaning:

* ``--quit-after STAGE``: QUIT after connect (banner), first-ehlo (first-helo,
  first-lhlo), tls (starttls), ehlo (helo, lhlo: the EHLO after STARTTLS if there is
  one), auth, mail (from) or rcpt (to); nothing is sent, exit 0. A stop before MAIL needs
  no --to. (mailcore's STARTTLS stop also sends the EHLO that follows STARTTLS.)
* ``--ehlo/--helo/--lhlo NAME``: the name in EHLO/HELO/LHLO; which command goes is
  ``--protocol``'s choice: ESMTP (EHLO, the default), SMTP (HELO), LMTP (LHLO, port 24,
  one reply per recipient after the message, each printed), and swaks's variants
  (ESMTPS: STARTTLS, SSMTP: implicit TLS, ...A: log in).
* ``--data FILE`` (``-`` for stdin): send a ready-made message as it is; line ends become
  CRLF (a bare LF or CR too), an mbox ``From `` first line is dropped, the client
  dot-stuffs. The envelope comes from --from/--to/--bcc, never from the file's headers
  (as swaks). ``--header`` replaces a header of the file (or adds it), ``--add-header``
  adds one; both under the same header rules as a composed message.
* ``--auth [TYPE]``: log in (with --user), with TYPE if given (PLAIN, LOGIN, CRAM-MD5,
  XOAUTH2, OAUTHBEARER); one the server does not offer is exit 5, naming what it offers.
* ``--oauth-token-env VAR``: an OAuth 2.0 access token from the environment (never
  printed), with OAUTHBEARER or XOAUTH2 as the server offers, or ``--auth``'s.
* ``--show-time-lapse [i]``: the transcript (implied) shows ``=== response in 0.012s``
  before each reply, as swaks.
* ``--add-header 'Name: value'``: add a header without replacing one of that name
  (``--header`` replaces).

``mailcore check message.eml`` checks a message instead (``mailcore.checks.cli``).

Defaults come from ``MAILCORE_*`` environment variables and from a config
file (``--config``, else ``$XDG_CONFIG_HOME/mailcore/config.toml``) whose keys
are setting names (``EMAIL_HOST = "smtp.example.com"``); the environment
beats the file, and flags beat both.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import re
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import mailcore
from mailcore import errors
from mailcore.backends.filebased import MissingFilePath
from mailcore.conf import DEFAULTS, ENV_PREFIX, ImproperlyConfigured, coerce, settings
from mailcore.errors import Kind, Stage
from mailcore.message import (
    HEADER_NAME,
    STRUCTURE_HEADERS,
    NeedsSMTPUTF8Error,
    forbid_multi_line_headers,
)
from mailcore.utils import split_addresses

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_MESSAGE = 3
EXIT_CONNECTION = 4
EXIT_AUTH = 5
EXIT_REFUSED = 6
EXIT_REJECTED = 7

PROFILE_ENTRY_POINTS = "mailcore.profiles"
BACKENDS = ("smtp", "console", "file", "locmem", "dummy", "celery")


class CLIError(Exception):
    """A failure with its exit code and a one-line explanation."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on standard error, exit code 2."""

    stderr: TextIO | None = None  # where run() wants its errors

    def error(self, message: str) -> Any:  # type: ignore[override]
        (self.stderr or sys.stderr).write(
            f"{self.prog}: {_one_line(message)} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def port_number(text: str, *, allow_zero: bool = False) -> int:
    """An argparse type: a TCP port (0, "any free port", only with ``allow_zero``)."""
    lowest = 0 if allow_zero else 1
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between {lowest} and 65535, not {port}")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"the timeout must be more than 0 seconds, not {text}")
    return value


def _mimetype(text: str) -> str:
    if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", text.strip()):
        raise argparse.ArgumentTypeError(f"not a MIME type (type/subtype): {text!r}")
    return text.strip()


# swaks's --protocol: (the greeting command, TLS: None / "starttls" / "tls", log in, port)
PROTOCOLS: dict[str, tuple[str, str | None, bool, int]] = {
    "SMTP": ("helo", None, False, 25),
    "SMTPS": ("helo", "tls", False, 465),
    "SSMTP": ("ehlo", "tls", False, 465),
    "SSMTPA": ("ehlo", "tls", True, 465),
    "ESMTP": ("ehlo", None, False, 25),
    "ESMTPA": ("ehlo", None, True, 25),
    "ESMTPS": ("ehlo", "starttls", False, 25),
    "ESMTPSA": ("ehlo", "starttls", True, 25),
    "LMTP": ("lhlo", None, False, 24),
    "LMTPA": ("lhlo", None, True, 24),
    "LMTPS": ("lhlo", "starttls", False, 24),
    "LMTPSA": ("lhlo", "starttls", True, 24),
}

# swaks's --quit-after stop points (and their aliases), as the backend's quit_after names
# them; "ehlo" (the last EHLO: after STARTTLS when there is one) and "tls" depend on the
# security asked for (see _quit_after()).
QUIT_STAGES: dict[str, str] = {
    "connect": "connect", "banner": "connect",
    "first-helo": "first-ehlo", "first-ehlo": "first-ehlo", "first-lhlo": "first-ehlo",
    "helo": "ehlo", "ehlo": "ehlo", "lhlo": "ehlo",
    "tls": "tls", "starttls": "tls",
    "auth": "auth",
    "mail": "mail", "from": "mail",
    "rcpt": "rcpt", "to": "rcpt",
}
_QUIT_WORDS = {"connect": "the greeting", "first-ehlo": "the first EHLO", "ehlo": "EHLO",
               "tls": "TLS", "auth": "AUTH", "mail": "MAIL", "rcpt": "RCPT"}

PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
TOKEN_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")


def _protocol(text: str) -> str:
    name = text.strip().upper()
    if name not in PROTOCOLS:
        raise argparse.ArgumentTypeError(
            f"unknown protocol {text!r} (SMTP, ESMTP, LMTP, or {', '.join(PROTOCOLS)})")
    return name


def _helo_name(text: str) -> str:
    """A name for EHLO/HELO/LHLO: one word of printable ASCII (an IDN as punycode), so that
    nothing can end the command early or add another."""
    name = text.strip()
    if name and not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise argparse.ArgumentTypeError(f"not a host name: {text!r}") from None
    if not re.fullmatch(r"[\x21-\x7e]+", name):
        raise argparse.ArgumentTypeError(
            f"the EHLO/HELO name must be one word of printable characters, not {text!r}")
    return name


def _auth_type(text: str) -> str:
    name = text.strip().upper()
    if name == "ANY":
        return name
    if "," in name:
        raise argparse.ArgumentTypeError(
            f"one mechanism, not a list ({text!r}); without one the best offered is used")
    if name not in PASSWORD_MECHANISMS + TOKEN_MECHANISMS:
        raise argparse.ArgumentTypeError(
            f"mailcore does not know AUTH {text!r} (it knows "
            f"{', '.join(PASSWORD_MECHANISMS + TOKEN_MECHANISMS)})")
    return name


def _quit_stage(text: str) -> str:
    name = text.strip().lower()
    if name not in QUIT_STAGES:
        raise argparse.ArgumentTypeError(
            f"unknown stop point {text!r} (one of {', '.join(QUIT_STAGES)})")
    return name


def _time_lapse(text: str) -> str:
    if text == "hires":  # no argument (argparse passes the const through here too)
        return text
    if text.strip().lower()[:1] == "i":
        return "integer"
    raise argparse.ArgumentTypeError(f"--show-time-lapse takes nothing or 'i', not {text!r}")


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
    parser = _Parser(
        prog="mailcore",
        description="Compose one email from flags and send it (or print it). Without --body "
        "or --body-file, the body is read from standard input when that is not a terminal.",
        epilog="Defaults come from MAILCORE_* environment variables (MAILCORE_EMAIL_HOST, "
        "MAILCORE_EMAIL_PORT, ...) and from $XDG_CONFIG_HOME/mailcore/config.toml; without "
        "them the server is localhost:25 (587 with --starttls, 465 with --tls). "
        "Exit codes: 0 sent, 2 usage, 3 invalid message, 4 connection/TLS, "
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
    body.add_argument(
        "--data",
        metavar="FILE",
        help="send FILE (a ready-made message, an .eml; '-' for stdin) as it is: line ends "
        "made CRLF, nothing else changed but --header/--add-header; the envelope comes from "
        "--from and --to/--bcc only, never from the file's headers (as in swaks)",
    )
    content.add_argument("--html-file", metavar="FILE", help="an HTML alternative")
    content.add_argument(
        "--attach", "-a", action=_AttachAction, metavar="FILE", help="attach a file (repeatable)"
    )
    content.add_argument(
        "--attach-type",
        action=_AttachTypeAction,
        type=_mimetype,
        metavar="TYPE",
        help="MIME type of the next --attach (default: guessed)",
    )
    content.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'",
                         help="set a header, replacing one of that name (repeatable)")
    content.add_argument("--add-header", action="append", default=[], metavar="'NAME: VALUE'",
                         help="add a header, also when there is one of that name (repeatable; "
                         "a literal \\n separates several, as in swaks)")

    where = parser.add_argument_group("delivery")
    where.add_argument("--backend", choices=BACKENDS, help="default: smtp (EMAIL_BACKEND)")
    where.add_argument(
        "--profile",
        metavar="NAME",
        help="use a saved mailgui profile (server, login, password from the keyring)",
    )
    where.add_argument("--host", "--server", metavar="HOST[:PORT]",
                       help="the SMTP server (default: EMAIL_HOST, localhost)")
    where.add_argument("--port", "-p", type=port_number)
    tls = where.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true", help="upgrade with STARTTLS (port 587)")
    tls.add_argument("--tls", action="store_true", help="implicit TLS (port 465)")
    where.add_argument("--user", "-u", help="log in as USER")
    pw = where.add_mutually_exclusive_group()
    pw.add_argument(
        "--password-env", metavar="VAR", help="read the password from the environment variable VAR"
    )
    pw.add_argument("--password-prompt", action="store_true", help="ask for the password")
    pw.add_argument(
        "--oauth-token-env",
        metavar="VAR",
        help="log in with the OAuth 2.0 access token in the environment variable VAR "
        "(OAUTHBEARER or XOAUTH2, as offered; never printed)",
    )
    where.add_argument(
        "--allow-insecure-auth",
        action="store_true",
        help="allow sending the password without TLS to a non-loopback host",
    )
    where.add_argument("--timeout", type=_seconds, metavar="SECONDS")
    where.add_argument("--ca-file", metavar="PEM", help="trust this CA instead of the system's")
    where.add_argument("--cert", metavar="PEM", help="client certificate")
    where.add_argument("--key", metavar="PEM", help="client certificate key")
    where.add_argument("--file-path", metavar="DIR", help="folder for --backend file")

    swaks = parser.add_argument_group("conversation (as in swaks)")
    swaks.add_argument(
        "--protocol",
        type=_protocol,
        metavar="PROTO",
        help="ESMTP (EHLO, the default), SMTP (HELO: no STARTTLS, no AUTH) or LMTP (LHLO, "
        "port 24, a reply per recipient); swaks's variants too: ESMTPS, ESMTPA, ESMTPSA, "
        "SSMTP, SSMTPA, SMTPS, LMTPA, LMTPS, LMTPSA (S: TLS, A: log in)",
    )
    swaks.add_argument(
        "--ehlo", "--helo", "--lhlo", dest="helo_name", type=_helo_name, metavar="NAME",
        help="the name given with EHLO/HELO/LHLO (default: this machine's name); which "
        "command is sent is --protocol's choice, as in swaks")
    swaks.add_argument(
        "--auth",
        nargs="?",
        const="ANY",
        type=_auth_type,
        metavar="TYPE",
        help="log in (needs --user), with TYPE if given: PLAIN, LOGIN, CRAM-MD5 (a password) "
        "or XOAUTH2, OAUTHBEARER (--oauth-token-env); a TYPE the server does not offer is an "
        "error naming what it offers",
    )
    swaks.add_argument(
        "--quit-after",
        type=_quit_stage,
        metavar="STAGE",
        help="send QUIT after STAGE and send no message: connect (banner), first-ehlo "
        "(first-helo, first-lhlo), tls (starttls), ehlo (helo, lhlo: the one after "
        "STARTTLS if any), auth, mail (from), rcpt (to)",
    )

    sign = parser.add_argument_group("DKIM signing (the three together)")
    sign.add_argument("--dkim-key", metavar="PEM", help="sign with this RSA private key")
    sign.add_argument("--dkim-selector", metavar="NAME",
                      help="the selector its public key is published under")
    sign.add_argument("--dkim-domain", metavar="DOMAIN", help="the signing domain (d=)")

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
    out.add_argument(
        "--show-time-lapse",
        nargs="?",
        const="hires",
        type=_time_lapse,
        metavar="i",
        help="print the transcript (as --transcript) with the time each reply took "
        "('=== response in 0.012s'); 'i' for whole seconds",
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
            values[name] = _config_value(file, key, name, value)
    settings.configure(**values)


def _config_value(file: Path, key: str, name: str, value: Any) -> Any:
    """A config file value as the setting wants it: TOML's own types, or text read the way
    MAILCORE_* variables are read (``EMAIL_USE_TLS = "false"`` is False, not a true text)."""
    try:
        return coerce(name, value, label=key)
    except ImproperlyConfigured as exc:
        raise CLIError(EXIT_USAGE, f"{file}: {exc}") from None


def load_profile(name: str) -> dict[str, Any]:
    """Backend arguments from a profile source registered under the
    ``mailcore.profiles`` entry point group (mailgui registers its profiles)."""
    sources = metadata.entry_points(group=PROFILE_ENTRY_POINTS)
    if not sources:
        raise CLIError(EXIT_USAGE, "--profile needs mailgui installed (no profile source found)")
    for source in sources:
        try:
            loader: Callable[[str], dict[str, Any] | None] = source.load()
            profile = loader(name)
        except LookupError as exc:
            raise CLIError(EXIT_USAGE, str(exc)) from None
        except ImportError as exc:  # mailgui is there, its packages (keyring, ...) are not
            raise CLIError(EXIT_USAGE, f"--profile needs mailgui's packages: pip install "
                           f"'mailcore[gui]' ({exc})") from None
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


# Headers that mailcore writes from the message's structure: --header can't replace them.


def parse_headers(lines: list[str]) -> tuple[dict[str, str], str | None]:
    """``--header 'Name: value'`` lines as extra headers, and a Subject given that way. As in
    swaks, a header given again replaces the earlier one (also the Subject)."""
    headers: dict[str, str] = {}
    subject = None
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            raise CLIError(EXIT_USAGE, f"--header needs 'Name: value', got {line!r}")
        if not HEADER_NAME.fullmatch(name):
            raise CLIError(EXIT_USAGE, f"--header: {name!r} is not a header name (printable "
                           "characters, no spaces or colons)")
        if name.lower() in STRUCTURE_HEADERS:
            raise CLIError(EXIT_USAGE, f"--header: mailcore writes {name} itself from the "
                           "message's parts (use --html-file, --attach, --attach-type)")
        if name.lower() == "subject":
            subject = value.strip()
            continue
        for known in list(headers):
            if known.lower() == name.lower():
                del headers[known]
        headers[name] = value.strip()
    return headers, subject


def parse_added_headers(lines: list[str]) -> list[tuple[str, str]]:
    """``--add-header 'Name: value'`` lines, in order, duplicates kept (swaks's
    ``--add-header``); a literal ``\\n`` separates several headers in one, as in swaks."""
    added = []
    for given in lines:
        for line in given.split("\\n"):
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not name:
                raise CLIError(EXIT_USAGE, f"--add-header needs 'Name: value', got {line!r}")
            if not HEADER_NAME.fullmatch(name):
                raise CLIError(EXIT_USAGE, f"--add-header: {name!r} is not a header name "
                               "(printable characters, no spaces or colons)")
            added.append((name, value.strip()))
    return added


class _WithAddedHeaders(mailcore.EmailMultiAlternatives):
    """A composed message with ``--add-header`` headers after its own: added with the
    email package (``msg[name] = value`` appends; the one header rule checks each value),
    so a name given twice, or one mailcore writes itself, appears twice."""

    added_headers: list[tuple[str, str]]

    def message(self) -> Any:  # type: ignore[override]
        msg = super().message()
        for name, value in self.added_headers:
            msg[name] = value
        return msg


def compose(args: argparse.Namespace, profile: dict[str, Any], stdin: TextIO) -> Any:
    if args.data is not None:
        return compose_raw(args, profile, stdin)
    if args.body_file == "-" and args.html_file == "-":
        raise CLIError(EXIT_USAGE, "--body-file - and --html-file - can't both read standard "
                       "input")
    if args._pending_type:
        raise CLIError(EXIT_USAGE, f"--attach-type {args._pending_type} must come before the "
                       "--attach it is for")
    if args.body is not None:
        body = args.body
    elif args.body_file:
        body = read_text(args.body_file, "body file", stdin)
    elif args.html_file != "-" and not stdin.isatty():
        body = stdin.read()
    else:
        body = ""
    headers, header_subject = parse_headers(args.header)
    added = parse_added_headers(args.add_header)
    for name, value in added:
        if name.lower() in STRUCTURE_HEADERS:
            raise CLIError(EXIT_USAGE, f"--add-header: mailcore writes {name} itself from "
                           "the message's parts (use --html-file, --attach, --attach-type)")
        try:  # the one header rule, before anything connects
            forbid_multi_line_headers(name, value, None)
        except NeedsSMTPUTF8Error:
            pass  # fine with a server that offers SMTPUTF8: the send decides
    cls = _WithAddedHeaders if added else mailcore.EmailMultiAlternatives
    msg = cls(
        subject=args.subject if header_subject is None else header_subject,
        body=body,
        from_email=args.from_email or profile.get("from_email") or None,
        to=split_lists(args.to),
        bcc=split_lists(args.bcc),
        cc=split_lists(args.cc),
        reply_to=split_lists(args.reply_to),
        headers=headers,
    )
    if added:
        msg.added_headers = added
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


# -- --data: a ready-made message ---------------------------------------------------------

# What composes a message: none of it goes with --data, which sends a file as it is.
_COMPOSING = (("subject", "--subject"), ("body_file", "--body-file"), ("body", "--body"),
              ("html_file", "--html-file"), ("attachments", "--attach"), ("cc", "--cc"),
              ("reply_to", "--reply-to"))


def compose_raw(args: argparse.Namespace, profile: dict[str, Any], stdin: TextIO) -> RawMessage:
    """``--data FILE``: the file as the message, its envelope from the flags (as swaks)."""
    for name, flag in _COMPOSING:
        if getattr(args, name, None):
            raise CLIError(EXIT_USAGE, f"--data sends the file as it is: {flag} is for a "
                           "message mailcore composes (change headers with --header or "
                           "--add-header; recipients with --to and --bcc)")
    if args.data == "-":
        source = getattr(stdin, "buffer", None)
        data = source.read() if source is not None else stdin.read().encode("utf-8")
    else:
        try:
            data = Path(args.data).read_bytes()
        except OSError as exc:
            raise CLIError(EXIT_MESSAGE, f"cannot read --data {args.data}: {_reason(exc)}"
                           ) from None
    msg = RawMessage(
        data,
        from_email=args.from_email or profile.get("from_email") or settings.DEFAULT_FROM_EMAIL,
        to=split_lists(args.to),
        bcc=split_lists(args.bcc),
        replace=[_header_pair(line, "--header") for line in args.header],
        add=parse_added_headers(args.add_header),
    )
    validate_addresses(msg)
    return msg


def _header_pair(line: str, flag: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    name = name.strip()
    if not sep or not name:
        raise CLIError(EXIT_USAGE, f"{flag} needs 'Name: value', got {line!r}")
    if not HEADER_NAME.fullmatch(name):
        raise CLIError(EXIT_USAGE, f"{flag}: {name!r} is not a header name (printable "
                       "characters, no spaces or colons)")
    return name, value.strip()


_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


class RawMessage:
    """A ready-made message (``--data``) for the backends: its bytes as given, every line
    end (CRLF, LF or a lone CR) made CRLF, an mbox ``From `` first line dropped (as swaks
    does), ``replace`` headers put in place of those of that name (or added) and ``add``
    headers added at the end of the header block; the values of both pass mailcore's one
    header rule (no line breaks, encoded words for non-ASCII) and are folded as mailcore
    folds. The SMTP client dot-stuffs as always. The envelope is ``from_email`` and
    ``to`` + ``bcc``: the file's own From/To/Cc are not read."""

    encoding = "utf-8"
    cc: list[str] = []
    reply_to: list[str] = []

    def __init__(self, data: bytes, *, from_email: str, to: list[str], bcc: list[str],
                 replace: Sequence[tuple[str, str]] = (),
                 add: Sequence[tuple[str, str]] = ()) -> None:
        data = _LINE_ENDS.sub(b"\r\n", data)
        if data.startswith(b"From "):  # an mbox separator line, no part of the message
            data = data.partition(b"\r\n")[2]
        if not data.strip():
            raise CLIError(EXIT_MESSAGE, "--data: the message is empty")
        self.from_email = from_email
        self.to = list(to)
        self.bcc = list(bcc)
        self.extra_headers: dict[str, str] = {}
        self.data = _edit_headers(data, replace, add) if (replace or add) else data

    def recipients(self) -> list[str]:
        return [address for address in [*self.to, *self.bcc] if address]

    def message(self) -> _RawMIME:
        return _RawMIME(self.data)

    def __repr__(self) -> str:
        return f"<RawMessage {len(self.data)} bytes>"


class _RawMIME:
    """What mailcore.wire and the backends ask of ``message()``: the bytes as they are,
    with CRLF or LF line ends, and the headers for reading (Message-ID)."""

    def __init__(self, data: bytes) -> None:
        import email.parser
        import email.policy

        self._data = data
        self._headers = email.parser.BytesHeaderParser(policy=email.policy.compat32
                                                       ).parsebytes(data)

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        return self._data if linesep == "\r\n" else self._data.replace(b"\r\n", b"\n")

    def items(self) -> list[tuple[str, Any]]:
        return self._headers.items()

    def __getitem__(self, name: str) -> Any:
        return self._headers[name]

    def get_charset(self) -> None:
        return None


def _edit_headers(data: bytes, replace: Sequence[tuple[str, str]],
                  add: Sequence[tuple[str, str]]) -> bytes:
    """swaks's ``--header`` (replace the fields of that name, or add) and ``--add-header``
    (add) on a message's header block (up to the first empty line, all of it if none)."""
    from mailcore.wire import fold_header

    if data.startswith(b"\r\n"):  # no header at all: the empty line starts the message
        head, rest = b"", data
    elif (end := data.find(b"\r\n\r\n")) >= 0:  # rest: the empty line and the body
        head, rest = data[:end + 2], data[end + 2:]
    else:  # headers only
        head, rest = data, b""
    if head and not head.endswith(b"\r\n"):
        head += b"\r\n"
    fields: list[bytes] = []  # each field with its continuation lines
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)

    def folded(name: str, value: str) -> bytes:
        name, encoded = forbid_multi_line_headers(name, value, "utf-8")
        return fold_header(name, encoded, "\r\n")

    def name_of(field: bytes) -> str:
        return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()

    for name, value in replace:
        line = folded(name, value)
        at = [i for i, field in enumerate(fields) if name_of(field) == name.lower()]
        if at:
            fields[at[0]] = line
            fields = [f for i, f in enumerate(fields) if i not in at[1:]]
        else:
            fields.append(line)
    fields.extend(folded(name, value) for name, value in add)
    return b"".join(fields) + rest


def split_lists(values: list[str]) -> list[str]:
    """``--to 'a@x, "Doe, Jane" <j@x>'`` is two addresses, as in swaks: split at the commas
    that are outside quotes and angle brackets (``mailcore.utils.split_addresses``). An
    unclosed quote or bracket keeps the rest as one address (which the checks then refuse),
    never drops it."""
    return [item for value in values for item, _start, _end in split_addresses(value)]


def warn_unknown_environment(stderr: TextIO) -> None:
    """A misspelled MAILCORE_* variable would be ignored without a word: say so."""
    for name in sorted(os.environ):
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):] not in DEFAULTS and (
                name[len(ENV_PREFIX):].startswith(("EMAIL_", "DEFAULT_", "SERVER_"))):
            stderr.write(f"mailcore: warning: {name} is not a setting (ignored)\n")


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
            except (ValueError, TypeError, IndexError) as exc:
                # Django's own parser fails with a TypeError on some, such as 'bad<>'
                why = exc if isinstance(exc, ValueError) else "Invalid address"
                raise CLIError(EXIT_MESSAGE, f"{flag} {address!r}: {_one_line(str(why))}"
                               ) from None


def dkim_signer(args: argparse.Namespace) -> Any:
    """``--dkim-key/--dkim-selector/--dkim-domain`` as a DKIMSigner, or None without them."""
    given = {"--dkim-key": args.dkim_key, "--dkim-selector": args.dkim_selector,
             "--dkim-domain": args.dkim_domain}
    if not any(given.values()):
        return None
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise CLIError(EXIT_USAGE, "--dkim-key, --dkim-selector and --dkim-domain go together: "
                       f"missing {' and '.join(missing)}")
    try:
        from mailcore.checks.dkim import DKIMSigner, dns_name
    except ImportError as exc:
        raise CLIError(EXIT_USAGE, f"DKIM signing needs {exc.name or exc}: "
                       "pip install 'mailcore[checks]'") from None
    try:
        dns_name(args.dkim_selector, args.dkim_domain)
    except ValueError as exc:
        raise CLIError(EXIT_USAGE, _one_line(str(exc))) from None
    path = args.dkim_key
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(EXIT_MESSAGE, f"cannot read the DKIM key {path}: {_reason(exc)}"
                       ) from None
    try:
        return DKIMSigner(args.dkim_domain, args.dkim_selector, key)
    except (ValueError, TypeError) as exc:
        raise CLIError(EXIT_MESSAGE, f"cannot sign with {path}: {_one_line(str(exc))}"
                       ) from None


# -- delivering ----------------------------------------------------------------


def connection_kwargs(args: argparse.Namespace, profile: dict[str, Any], stdin: TextIO) -> dict:
    backend = args.backend or profile.get("backend") or _short(settings.EMAIL_BACKEND)
    kwargs: dict[str, Any] = {"backend": backend}
    if backend in ("file", "filebased"):
        path = args.file_path or profile.get("file_path")
        if path:  # else EMAIL_FILE_PATH; without it the backend says so (MissingFilePath)
            kwargs["file_path"] = path
    if backend != "smtp":
        given = [flag for flag, value in (
            ("--quit-after", args.quit_after), ("--protocol", args.protocol),
            ("--ehlo", args.helo_name), ("--auth", args.auth),
            ("--oauth-token-env", args.oauth_token_env)) if value]
        if given:
            raise CLIError(EXIT_USAGE, f"{given[0]} is for the smtp backend; {backend} has no "
                           "SMTP conversation")
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
            "oauth_token",
        )
        if profile.get(key) not in (None, "")
    }
    port_given = "port" in options or args.port is not None
    flags = {
        "host": args.host,
        "port": args.port,
        "username": args.user,
        "timeout": args.timeout,
        "ssl_cafile": args.ca_file,
        "ssl_certfile": args.cert,
        "ssl_keyfile": args.key,
    }
    if args.host:
        host, port = split_host_port(args.host)
        options["host"] = host
        if port is not None:
            if args.port is not None and args.port != port:
                raise CLIError(EXIT_USAGE, f"--host {args.host} and --port {args.port} disagree")
            options["port"] = port
            port_given = True
    options.update({k: v for k, v in flags.items() if v is not None and k != "host"})
    if args.starttls:
        options.update(use_tls=True, use_ssl=False)
    if args.tls:
        options.update(use_tls=False, use_ssl=True)
    if "port" not in options and (args.starttls or args.tls) and (
            not settings.is_overridden("EMAIL_PORT")):
        # the ports of RFC 8314 and RFC 6409, as --help says; --port 25 still works
        options["port"] = 465 if args.tls else 587
    if args.allow_insecure_auth:
        options["allow_insecure_auth"] = True
    options.update(_conversation(args, options, port_given))
    if options.get("username") and profile.get("oauth_problem") and not args.oauth_token_env:
        raise CLIError(EXIT_AUTH, _one_line(str(profile["oauth_problem"])))
    options.update(_login(args, profile, options, stdin))
    # a file that can't be used is the user's problem, said before anything connects
    errors.check_tls_files(options.get("ssl_cafile"), options.get("ssl_certfile"),
                           options.get("ssl_keyfile"))
    kwargs.update(options)
    return kwargs


def _conversation(args: argparse.Namespace, options: dict[str, Any], port_given: bool
                  ) -> dict[str, Any]:
    """The swaks options as backend arguments: --protocol (its greeting, TLS, login and
    port), --ehlo/--helo, --quit-after and --auth."""
    extra: dict[str, Any] = {}
    must_log_in = args.auth is not None
    if args.protocol:
        greeting, security, login, port = PROTOCOLS[args.protocol]
        if security == "tls" and args.starttls or security == "starttls" and args.tls:
            raise CLIError(EXIT_USAGE, f"--protocol {args.protocol} and "
                           f"{'--starttls' if args.starttls else '--tls'} disagree")
        if security == "tls":
            options.update(use_tls=False, use_ssl=True)
        elif security == "starttls":
            options.update(use_tls=True, use_ssl=False)
        if greeting == "helo":
            extra["helo"] = True
            if options.get("use_tls"):
                raise CLIError(EXIT_USAGE, f"--protocol {args.protocol} speaks HELO, which has "
                               "no STARTTLS (an ESMTP extension): use ESMTPS, or --tls")
            if options.get("username") or args.auth:
                raise CLIError(EXIT_USAGE, f"--protocol {args.protocol} speaks HELO, which has "
                               "no AUTH (an ESMTP extension): use ESMTPA to log in")
        elif greeting == "lhlo":
            extra["protocol"] = "lmtp"
            if options.get("use_ssl"):
                raise CLIError(EXIT_USAGE, "LMTP over implicit TLS (--tls) is not supported: "
                               "use --protocol LMTPS (STARTTLS)")
        must_log_in = must_log_in or login
        if not port_given and not settings.is_overridden("EMAIL_PORT"):
            extra["port"] = port  # swaks's table: 25, 465 for SSMTP/SMTPS, 24 for LMTP
    if must_log_in and not (options.get("username") or settings.EMAIL_HOST_USER):
        what = "--auth" if args.auth is not None else f"--protocol {args.protocol}"
        raise CLIError(EXIT_USAGE, f"{what} logs in: give --user (the name to log in as)")
    if args.auth not in (None, "ANY"):
        token = bool(args.oauth_token_env or options.get("oauth_token")
                     or settings.EMAIL_OAUTH_TOKEN)
        if args.auth in TOKEN_MECHANISMS and not token:
            raise CLIError(EXIT_USAGE, f"--auth {args.auth} logs in with an OAuth 2.0 access "
                           "token: give --oauth-token-env VAR (or an OAuth2 --profile)")
        if args.auth in PASSWORD_MECHANISMS and token:
            raise CLIError(EXIT_USAGE, f"--auth {args.auth} logs in with a password, and an "
                           "access token is given: use --auth XOAUTH2 or OAUTHBEARER")
        extra["auth_mechanism"] = args.auth
    if args.helo_name:
        extra["local_hostname"] = args.helo_name
    if args.quit_after:
        extra["quit_after"] = _quit_after(QUIT_STAGES[args.quit_after], options)
    return extra


def _quit_after(stage: str, options: dict[str, Any]) -> str:
    """A swaks stop point as the backend's ``quit_after``: "ehlo" is the last EHLO (the one
    after STARTTLS when there is one, swaks's HELO), "first-ehlo" the first; "tls" with
    implicit TLS is right after the greeting (TLS came before it)."""
    starttls = bool(options.get("use_tls", settings.EMAIL_USE_TLS)) and not options.get(
        "use_ssl", settings.EMAIL_USE_SSL)
    implicit = bool(options.get("use_ssl", settings.EMAIL_USE_SSL))
    if stage == "first-ehlo":
        return "ehlo"
    if stage == "ehlo":
        return "tls" if starttls else "ehlo"
    if stage == "tls" and implicit:
        return "connect"
    return stage


def _login(args: argparse.Namespace, profile: dict[str, Any], options: dict[str, Any],
           stdin: TextIO) -> dict[str, Any]:
    """An access token (--oauth-token-env, or an OAuth2 profile's token source), else the
    password (_password)."""
    if args.oauth_token_env:
        name = args.oauth_token_env
        if name not in os.environ:
            raise CLIError(EXIT_USAGE, f"--oauth-token-env: ${name} is not set")
        if not os.environ[name].strip():
            raise CLIError(EXIT_USAGE, f"--oauth-token-env: ${name} is empty")
        if not (options.get("username") or settings.EMAIL_HOST_USER):
            raise CLIError(EXIT_USAGE, "--oauth-token-env needs --user (the mailbox the token "
                           "is for)")
        return {"oauth_token": os.environ[name].strip()}
    if options.get("oauth_token") or settings.EMAIL_OAUTH_TOKEN:
        return {}  # an OAuth2 profile's token source, or EMAIL_OAUTH_TOKEN
    return _password(args, profile, options, stdin)


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise CLIError(EXIT_USAGE, f"--host {text!r}: expected [address]:port")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        return text, None
    if not port_text:
        return host, None
    try:
        return host, port_number(port_text)
    except argparse.ArgumentTypeError as exc:
        raise CLIError(EXIT_USAGE, f"--host {text}: {exc}") from None


def _password(args: argparse.Namespace, profile: dict[str, Any], options: dict[str, Any],
              stdin: TextIO) -> dict[str, Any]:
    """The password, from the flag's source, a profile, the settings or a prompt. A user
    name without any password is an error: sending without logging in is not what was
    asked for."""
    user = options.get("username") or settings.EMAIL_HOST_USER
    if args.password_env:
        if args.password_env not in os.environ:
            raise CLIError(EXIT_USAGE, f"--password-env: ${args.password_env} is not set")
        if not os.environ[args.password_env]:
            raise CLIError(EXIT_USAGE, f"--password-env: ${args.password_env} is empty")
        if not user:
            raise CLIError(EXIT_USAGE, "--password-env needs --user (the name to log in as)")
        return {"password": os.environ[args.password_env]}
    if args.password_prompt:
        if not user:
            raise CLIError(EXIT_USAGE, "--password-prompt needs --user (the name to log in as)")
        return {"password": _prompt(user)}
    if not options.get("username") or options.get("password"):
        return {}  # no login asked for here, or the profile brought the password
    problem = profile.get("password_problem")
    if not problem and settings.EMAIL_HOST_PASSWORD:
        return {}  # the backend takes it from the settings
    if stdin.isatty():
        return {"password": _prompt(user)}
    if problem:
        name = profile.get("profile_name", "")
        raise CLIError(EXIT_AUTH, f"profile {name!r} needs a password: {problem}; "
                       "use --password-env VAR or --password-prompt")
    raise CLIError(EXIT_AUTH, f"no password for {user}: use --password-env VAR, "
                   "--password-prompt or MAILCORE_EMAIL_HOST_PASSWORD")


def _prompt(user: str) -> str:
    """Ask on the terminal; never read a password from piped input."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"Password for {user}: ")
        except (getpass.GetPassWarning, EOFError, OSError):
            raise CLIError(EXIT_USAGE, "--password-prompt needs a terminal; use "
                           "--password-env VAR instead") from None


def _short(path: str) -> str:
    for name in ("smtp", "console", "locmem", "dummy"):
        if path.endswith(f".backends.{name}.EmailBackend"):
            return name
    if path.endswith(".backends.filebased.EmailBackend"):
        return "file"
    return path


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def _refusal(code: int, text: bytes | str) -> str:
    """A server's reply on one line: "550 5.1.1 No such user"."""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {_one_line(text)}"


def _bytes(n: int) -> str:
    return f"{n:,} bytes"


def _invalid(exc: BaseException | None) -> str:
    """An invalid message, whatever raised it: mailcore raises ValueError (BadHeaderError is
    one) and TypeError for what it refuses, the email package MessageError, a codec
    LookupError; anything else raised while the message is built or serialised is named."""
    if isinstance(exc, ValueError | TypeError) and str(exc):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"invalid message: {_one_line(text)}"


_STAGE_WORDS = {
    Stage.CONNECT: "connect", Stage.GREETING: "the greeting", Stage.EHLO: "EHLO",
    Stage.STARTTLS: "STARTTLS", Stage.AUTH: "AUTH", Stage.MAIL: "MAIL", Stage.RCPT: "RCPT",
    Stage.DATA: "DATA", Stage.AFTER_DATA: "end of data", Stage.RSET: "RSET",
    Stage.QUIT: "QUIT",
}


def _at(failure: errors.Failure, word: str = "at") -> str:
    """" at EHLO", " at end of data"; with ``word`` "to": " to EHLO", " to the final dot"."""
    if failure.stage is None:
        return ""
    if word == "to" and failure.stage is Stage.AFTER_DATA:
        return " to the final dot"
    return f" {word} {_STAGE_WORDS[failure.stage]}"


def _tls_file(f: errors.Failure, where: str) -> str:
    """A TLS file that can't be used, named by the flag that gave it."""
    exc = f.exception
    assert isinstance(exc, errors.TLSFileError)  # Kind.TLS_FILE is always one
    flag = {"ca": "--ca-file", "cert": "--cert", "key": "--key"}[exc.role]
    if exc.problem in ("missing", "not a file"):
        return f"{flag} {exc.path}: no such file"
    if exc.problem == "key without cert":
        return "--key needs --cert"
    if exc.role == "ca":
        return f"--ca-file {exc.path}: not a usable PEM CA certificate file ({exc.reason})"
    files = f"{flag} {exc.path}" + (f" / --key {exc.keyfile}" if exc.keyfile else "")
    if exc.problem == "key mismatch":
        return f"{files}: the key is not the certificate's ({exc.reason})"
    return f"{files}: not a usable PEM certificate and key ({exc.reason})"


def _timeout(f: errors.Failure, where: str) -> str:
    within = f" within {f.timeout:g} s" if f.timeout is not None else ""
    if f.reason == "connect":
        return f"could not connect to {where} in time (no answer{within})"
    if f.reason == "write":
        within = f" for {f.timeout:g} s" if f.timeout is not None else ""
        return f"{where} stopped reading what was sent (it took nothing{within})"
    if f.reason == "reply":
        came = f" ({f.received} bytes of it came)" if f.received else ""
        return f"{where} did not answer in time: no complete reply{_at(f, 'to')}{within}{came}"
    return f"{where} did not answer in time"


def _too_large(f: errors.Failure, where: str) -> str:
    text = f"message rejected by {where} as too large: {f.reply}"
    if f.size is None and f.limit is None:
        return text
    size = f"the message is {_bytes(f.size)}" if f.size is not None else "too large"
    limit = (f"the server's SIZE limit is {_bytes(f.limit)}" if f.limit
             else "the server announced no SIZE limit")
    return f"{text} ({size}, {limit})"


def _auth_unavailable(f: errors.Failure, where: str) -> str:
    if f.starttls_offered:
        return f"{where} offers no login (AUTH) before STARTTLS: use --starttls (or --tls)"
    if f.mechanisms:
        return (f"{where} offers only login mechanisms mailcore does not know "
                f"({' '.join(f.mechanisms)}; mailcore knows CRAM-MD5, PLAIN and LOGIN)")
    return f"{where} offers no login (AUTH): remove --user, or check the server's settings"


def _reply_too_long(f: errors.Failure, where: str) -> str:
    over = {"line": f"a line over {f.limit} bytes", "lines": f"more than {f.limit} lines",
            "bytes": f"more than {f.limit} bytes"}.get(f.reason, "")
    over = f" ({over}{_at(f, 'to')})" if over else ""
    return f"{where} sent a reply over the limits{over}; the connection was closed"


def _configuration(f: errors.Failure, where: str) -> str:
    if isinstance(f.exception, MissingFilePath):
        return "--backend file needs a folder: --file-path DIR (or MAILCORE_EMAIL_FILE_PATH)"
    return str(f.exception)


def _encoding(f: errors.Failure, where: str) -> str:
    # never the error's own text: it quotes what failed, which may be a password
    how = "read as" if isinstance(f.exception, UnicodeDecodeError) else "written as"
    return f"invalid message: some text can't be {how} {f.reason or 'the charset'}"


def _starttls(f: errors.Failure, where: str) -> str:
    if f.code is None:
        return f"{where} does not offer STARTTLS (try --tls, or neither for a test server)"
    return f"TLS with {where} failed: it refused STARTTLS: {f.reply}"


def _connection_refused(f: errors.Failure, where: str) -> str:
    if f.code is not None:  # by its greeting
        return f"{where} refused the connection: {f.reply}"
    return f"{where} refused the connection (is a server listening?)"


def _tls_hostname(f: errors.Failure, where: str) -> str:
    names = ", ".join(f.names) or "other names"
    host = f"not {f.hostname}" if f.hostname else "not the one connected to"
    return (f"the certificate of {where} is for {names}, {host}; connect with --host set to a "
            "name it is for")


def _tls(f: errors.Failure, where: str) -> str:
    if f.reason == "WRONG_VERSION_NUMBER":
        return (f"TLS with {where} failed: it does not speak TLS there ({f.reason}); --tls is "
                "for port 465, --starttls for 587")
    return f"TLS with {where} failed: {f.reason or f.exception}"


def _disconnected(f: errors.Failure, where: str) -> str:
    reason = _reason(f.exception)
    return f"{where} closed the connection{_at(f)}" + (f": {reason}" if reason else "")


def _refused(f: errors.Failure, where: str) -> str:
    refused = "; ".join(f"{r.address}: {_refusal(r.code, r.text)}" for r in f.refused)
    return f"all recipients refused by {where}: {refused}"


Line = Callable[[errors.Failure, str], str]

# Each kind of failure (mailcore.errors.classify): its exit code, and the line that says it
# (given the failure and "host:port"). The server's reply, when there is one, is quoted whole.
FAILURES: dict[Kind, tuple[int, Line]] = {
    Kind.CONFIGURATION: (EXIT_USAGE, _configuration),
    Kind.TLS_FILE: (EXIT_USAGE, _tls_file),
    Kind.INVALID_MESSAGE: (EXIT_MESSAGE, lambda f, where: _invalid(f.exception)),
    Kind.ENCODING: (EXIT_MESSAGE, _encoding),
    Kind.LOCAL_FILE: (EXIT_MESSAGE, lambda f, where: f"cannot read {f.path}: "
                      f"{_reason(f.exception)}"),
    Kind.FILE_CHANGED: (EXIT_MESSAGE, lambda f, where: f"cannot read {f.path}: "
                        f"{_reason(f.exception)}"),
    # not the network's: raised while the message was made
    Kind.UNKNOWN: (EXIT_MESSAGE, lambda f, where: _invalid(f.exception)),
    Kind.CONNECTION_REFUSED: (EXIT_CONNECTION, _connection_refused),
    Kind.HOST_NOT_FOUND: (EXIT_CONNECTION, lambda f, where: f"cannot find the host of {where}: "
                          f"{getattr(f.exception, 'strerror', '') or f.exception}"),
    Kind.CONNECTION: (EXIT_CONNECTION, lambda f, where: f"cannot talk to {where}: "
                      f"{_reason(f.exception)}"),
    Kind.DISCONNECTED: (EXIT_CONNECTION, _disconnected),
    Kind.TIMEOUT: (EXIT_CONNECTION, _timeout),
    Kind.TLS_VERIFY: (EXIT_CONNECTION, lambda f, where: f"the certificate of {where} is not "
                      f"trusted ({f.verify_message or f.reason}); use --ca-file for a private CA"),
    Kind.TLS_HOSTNAME: (EXIT_CONNECTION, _tls_hostname),
    Kind.TLS_CLIENT_CERT: (EXIT_CONNECTION, lambda f, where: f"{where} asks for a client "
                           f"certificate{_at(f)}: give one with --cert and --key"),
    Kind.TLS: (EXIT_CONNECTION, _tls),
    Kind.STARTTLS: (EXIT_CONNECTION, _starttls),
    Kind.SERVICE_UNAVAILABLE: (EXIT_CONNECTION, lambda f, where: f"{where} closed the "
                               f"connection{_at(f)} (service not available): {f.reply}"),
    Kind.REPLY_TOO_LONG: (EXIT_CONNECTION, _reply_too_long),
    Kind.NOT_SUPPORTED: (EXIT_CONNECTION, lambda f, where: f"{where}: {f.exception}"),
    Kind.PROTOCOL: (EXIT_CONNECTION, lambda f, where: f"cannot talk to {where}: "
                    f"{_reason(f.exception)}"),
    Kind.ABORTED: (EXIT_CONNECTION, lambda f, where: f"sending to {where} was aborted"),
    Kind.INSECURE_AUTH: (EXIT_AUTH, lambda f, where: str(f.exception)),
    Kind.AUTH: (EXIT_AUTH, lambda f, where: f"authentication failed at {where}: {f.reply}"),
    Kind.AUTH_UNAVAILABLE: (EXIT_AUTH, _auth_unavailable),
    Kind.AUTH_REQUIRED: (EXIT_AUTH, lambda f, where: f"{where} wants a login or TLS before it "
                         f"takes mail: {f.reply} (use --user, --starttls or --tls)"),
    Kind.SENDER_REFUSED: (EXIT_REFUSED, lambda f, where: f"sender {f.sender} refused by "
                          f"{where}: {f.reply}"),
    Kind.RECIPIENTS_REFUSED: (EXIT_REFUSED, _refused),
    Kind.MESSAGE_REJECTED: (EXIT_REJECTED, lambda f, where: f"message rejected by {where}: "
                            f"{f.reply}"),
    Kind.MESSAGE_TOO_LARGE: (EXIT_REJECTED, _too_large),
    Kind.SERVER_ERROR: (EXIT_REJECTED, lambda f, where: f"{where} answered {f.reply}"),
}
EXIT_CODES: dict[Kind, int] = {kind: code for kind, (code, _line) in FAILURES.items()}


def _broker_error(exc: BaseException, connection: Any) -> BaseException:
    """What the queue's broker said, as one line (a Redis or Celery error is not a fault of
    the message); other exceptions are left to explain()."""
    module = type(exc).__module__.split(".")[0]
    if module not in ("redis", "kombu", "celery", "amqp"):
        return exc
    from mailcore.queue import redact_url

    broker = redact_url(connection.config.broker_url)
    auth = "Authentication" in type(exc).__name__  # redis's AuthenticationError (NOAUTH too)
    said = _one_line(str(exc)).rstrip(".")
    return CLIError(EXIT_AUTH if auth else EXIT_CONNECTION,
                    f"the queue's broker at {broker} refused the login: {said}; nothing was "
                    "queued" if auth else f"the queue's broker at {broker} could not be "
                    f"reached: {said}; nothing was queued")


def explain(exc: BaseException, where: str, *, mechanism: str | None = None,
            oauth: bool = False) -> CLIError:
    """Turn a library exception into an exit code and one clear line: ``classify()`` says
    what happened (types decide, never the text of a message), ``FAILURES`` maps that to an
    exit code and a line. ``mechanism`` (``--auth TYPE``) and ``oauth`` (an access token is
    used) say what the login asked for, so that a server without it is said so."""
    if isinstance(exc, CLIError):
        return exc
    failure = errors.classify(exc)
    code, line = FAILURES[failure.kind]
    if failure.kind is Kind.AUTH_UNAVAILABLE and (mechanism or oauth) and failure.mechanisms:
        wanted = f"AUTH {mechanism}" if mechanism else "an OAuth 2.0 login (XOAUTH2, OAUTHBEARER)"
        after = " before STARTTLS (try --starttls)" if failure.starttls_offered else ""
        return CLIError(code, f"{where} does not offer {wanted}{after}: it offers "
                        f"{' '.join(failure.mechanisms)}")
    if failure.kind is Kind.AUTH and failure.reason in ("token_expired", "token_refused"):
        return CLIError(code, f"the access token was refused by {where}: "
                        f"{_one_line(str(exc))}")
    return CLIError(code, line(failure, where))


class TranscriptPrinter:
    """swaks-style lines: ``<-`` server, `` ->`` client, ``~`` once TLS is on.

    With ``time_lapse`` ("hires" or "integer", swaks's ``--show-time-lapse`` and
    ``--show-time-lapse i``), each reply is preceded by ``=== response in 0.012s`` (or
    ``0s``): the time from the client's line (the first of a pipelined group, the first line
    of message content, or the connection for the greeting) to the reply's first line, and
    for the next reply of a pipelined group from the end of the reply before it, as swaks
    counts. ``clock`` (seconds, monotonic) is for tests."""

    def __init__(self, out: TextIO, *, tls: bool = False, time_lapse: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.tls = tls  # True from the start for implicit TLS
        self.closed = False  # the reader went away (``| head``): the send goes on, silently
        self.time_lapse = time_lapse
        self.clock = clock
        self._since: float | None = None  # when the wait for the next reply began
        self._client_turn = False  # the latest line was the client's
        self._in_reply = False  # inside a multi-line reply

    def __call__(self, event: str, text: str) -> None:
        if self.closed:
            return
        try:
            self._write(event, text)
        except (BrokenPipeError, ValueError):
            self.closed = True
            _silence(self.out)

    def _lapse(self, event: str, text: str) -> str:
        """The ``=== response in ...`` line to print before this event, or ""."""
        now = self.clock()
        if event == "connect" or (event in ("client", "data", "content")
                                  and not self._client_turn):
            self._since = now
            self._client_turn = True
            return ""
        if event != "server":
            return ""
        self._client_turn = False
        line = ""
        if not self._in_reply and self._since is not None:
            lapse = now - self._since
            shown = f"{lapse:.3f}" if self.time_lapse == "hires" else f"{int(lapse)}"
            line = f"=== response in {shown}s\n"
        self._in_reply = text[3:4] == "-"
        if not self._in_reply:
            self._since = now  # the next reply of a pipelined group counts from here
        return line

    def _write(self, event: str, text: str) -> None:
        if self.time_lapse:
            lapse = self._lapse(event, text)
            if lapse:
                self.out.write(lapse)
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


class RecipientReplies:
    """A transcript observer that pairs each reply with the line it answers, to tell what
    an LMTP server said of each recipient: its RCPT reply, and for each recipient accepted
    there one reply after the final dot (RFC 2033), in the order of the RCPTs."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []  # (what, address) awaiting a reply
        self._accepted: list[str] = []  # accepted at RCPT, awaiting the final dot
        self._in_reply = False
        self.rcpt: dict[str, str] = {}  # address -> the RCPT reply ("250 2.1.5 OK")
        self.final: dict[str, str] = {}  # address -> its reply after the dot
        self._lines: list[str] = []

    def __call__(self, event: str, text: str) -> None:
        if event == "connect":
            self._pending = [("greeting", "")]
        elif event == "client":
            if text == ".":
                self._pending.extend(("final", address) for address in self._accepted)
                self._accepted = []
                return
            found = re.match(r"(?i)rcpt\s+to:\s*<([^>]*)>", text)
            self._pending.append(("rcpt", found.group(1)) if found else ("command", ""))
        elif event == "server":
            self._lines.append(text[4:] if text[3:4] in ("-", " ") else text[3:])
            if text[3:4] == "-":
                return
            reply = f"{text[:3]} {' '.join(line for line in self._lines if line)}".rstrip()
            self._lines = []
            if not self._pending:
                return
            what, address = self._pending.pop(0)
            if what == "rcpt":
                self.rcpt[address] = reply
                if reply.startswith("2"):
                    self._accepted.append(address)
            elif what == "final":
                self.final[address] = reply

    def reply_for(self, address: str) -> str | None:
        return self.final.get(address) or self.rcpt.get(address)


def _tee(*observers: Callable[[str, str], None]) -> Callable[[str, str], None]:
    def tell(event: str, text: str) -> None:
        for observer in observers:
            observer(event, text)
    return tell


def _silence(stream: TextIO) -> None:
    """Point a closed pipe's descriptor at /dev/null, so that the flush at exit is quiet."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def run(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:  # mailcore check message.eml: mailcore.checks.cli
        from mailcore.checks.cli import run as run_check

        return run_check(argv[1:], stdin=stdin, stdout=stdout, stderr=stderr)
    if argv[:1] in (["queue"], ["worker"]):  # queued sending: mailcore.queue_cli
        from mailcore.queue_cli import run as run_queue

        return run_queue(argv, stdin=stdin, stdout=stdout, stderr=stderr)
    if argv[:1] == ["send"]:  # "mailcore send ..." is "mailcore ..."
        argv = argv[1:]
    parser = build_parser()
    parser.stderr = stderr
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    where = "the server"
    writing = False  # True while the message itself is written to stdout
    try:
        warn_unknown_environment(stderr)
        load_config(args.config)
        profile = load_profile(args.profile) if args.profile else {}
        msg = compose(args, profile, stdin)
        signer = dkim_signer(args)
        if signer is None and profile.get("dkim_problem"):  # a signing profile without its key
            raise CLIError(EXIT_USAGE, _one_line(str(profile["dkim_problem"])))
        if signer is None:
            signer = profile.get("dkim")  # the profile's signer (mailgui's key in the keyring)
        if args.dump:
            from mailcore.wire import serialize

            data = serialize(msg, linesep="\n")
            if signer is not None:
                data = signer.sign_serialized(data)
            writing = True
            out = getattr(stdout, "buffer", None)
            for chunk in data.chunks():
                if out is not None:
                    out.write(chunk)
                else:
                    stdout.write(chunk.decode(data.charset, "replace"))
            stdout.flush()
            return EXIT_OK
        # a stop before MAIL needs no recipient (a probe of the server)
        envelope_needed = not args.quit_after or QUIT_STAGES[args.quit_after] in ("mail", "rcpt")
        if envelope_needed and not msg.recipients():
            raise CLIError(EXIT_USAGE, "nothing to send to: give --to, --cc or --bcc")
        kwargs = connection_kwargs(args, profile, stdin)
        backend_name = kwargs.pop("backend")
        forced = kwargs.get("auth_mechanism")
        oauth = bool(kwargs.get("oauth_token") or settings.EMAIL_OAUTH_TOKEN)
        if signer is not None:
            kwargs["dkim"] = signer
        replies: RecipientReplies | None = None
        if backend_name == "smtp":
            host = kwargs.get("host") or settings.EMAIL_HOST
            where = f"{host}:{kwargs.get('port') or settings.EMAIL_PORT}"
            observers: list[Callable[[str, str], None]] = []
            if args.transcript or args.transcript_data or args.show_time_lapse:
                # with implicit TLS the conversation is encrypted from the first line
                observers.append(TranscriptPrinter(
                    stdout, tls=bool(kwargs.get("use_ssl", settings.EMAIL_USE_SSL)),
                    time_lapse=args.show_time_lapse))
                kwargs["transcript_data"] = args.transcript_data
            if kwargs.get("protocol") == "lmtp" and not args.quit_after:
                replies = RecipientReplies()  # to say what became of each recipient
                observers.append(replies)
            if observers:
                kwargs["transcript"] = observers[0] if len(observers) == 1 else _tee(*observers)
        elif args.transcript or args.transcript_data:
            stderr.write(f"mailcore: --transcript is for the smtp backend; {backend_name} "
                         "has no conversation to show\n")
        if backend_name == "console":
            kwargs["stream"] = stdout
            writing = True
        try:
            connection = mailcore.get_connection(backend_name, **kwargs)
        except ImportError as exc:  # EMAIL_BACKEND names no backend that can be imported
            raise CLIError(EXIT_USAGE, f"no such email backend: {exc}") from None
        except ImproperlyConfigured:
            raise  # explain() says what to set
        except (ValueError, TypeError) as exc:  # settings that contradict each other
            raise CLIError(EXIT_USAGE, _one_line(str(exc))) from None
        try:
            sent = connection.send_messages([msg])
        except Exception as exc:
            if backend_name == "celery":
                raise _broker_error(exc, connection) from None
            if backend_name != "smtp":
                raise  # (the console's reader gone away is handled below)
            raise explain(exc, where, mechanism=forced, oauth=oauth) from None
        writing = False
        if args.quit_after and backend_name == "smtp" and not sent:
            if not args.quiet:
                stage = _QUIT_WORDS[QUIT_STAGES[args.quit_after]]
                stderr.write(f"mailcore: quit after {stage} as asked (--quit-after "
                             f"{args.quit_after}); nothing was sent to {where}\n")
            return EXIT_OK
        if not sent:
            raise CLIError(EXIT_REJECTED, "the message was not sent")
        if replies is not None and not args.quiet:
            for address in replies.rcpt:  # in the order of the RCPTs
                stderr.write(f"mailcore: {address}: {replies.reply_for(address)}\n")
        if not args.quiet:
            results = getattr(connection, "last_results", None)
            detail = ""
            accepted = len(msg.recipients())
            if results:
                result = results[0]
                detail = f" {result.message_id}" if result.message_id else ""
                accepted = len(result.recipients)
                if result.refused:
                    refused = "; ".join(f"{addr}: {_refusal(code, text)}"
                                        for addr, (code, text) in result.refused.items())
                    detail += f" (refused: {refused})"
            if backend_name == "smtp":
                stderr.write(
                    f"mailcore: sent{detail} to {accepted} recipient(s) via {where}\n"
                )
            elif backend_name in ("file", "filebased"):
                stderr.write(f"mailcore: written to {connection._get_filename()}\n")
            elif backend_name == "locmem":
                stderr.write("mailcore: kept in memory (locmem backend)\n")
            elif backend_name == "dummy":
                stderr.write("mailcore: discarded (dummy backend)\n")
            elif backend_name == "celery":
                from mailcore.queue import redact_url

                ids = getattr(connection, "last_message_ids", None) or []
                queued = f" {ids[0]}" if ids else ""
                stderr.write(f"mailcore: queued{queued} on "
                             f"{redact_url(connection.config.broker_url)} (queue "
                             f"{connection.config.name}); `mailcore queue status` follows it\n")
        return EXIT_OK
    except KeyboardInterrupt:
        stderr.write("mailcore: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit code
        if writing and isinstance(exc, BrokenPipeError):
            # the reader of the dump or console output went away (``| head``): what it read
            # is what it wanted, as with cat
            _silence(stdout)
            return EXIT_OK
        error = explain(exc, where)
        stderr.write(f"mailcore: {_one_line(str(error))}\n")
        return error.code


def main() -> None:
    sys.exit(run())
