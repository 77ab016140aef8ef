"""What a send reports, in the model (no window): the sizes the console and file backends
report are what they write, a failed AUTH or STARTTLS leaves no connection open, and an error
text never quotes what could be a password.

Real parts: aiosmtpd servers on 127.0.0.1 (one that offers no STARTTLS), real files.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from pathlib import Path

from mailcore.wire import serialize
from mailgui.model.draft import Draft
from mailgui.model.errors import describe_error
from mailgui.model.message import build_message
from mailgui.model.profiles import Profile
from mailgui.model.sending import check_connection, send_draft
from tests.support.servers import NoStartTLSServer, SMTPServer


def _unclosed(run: Callable[[], object]) -> list[str]:
    """The sockets ``run`` left open (found when they are garbage collected)."""
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            run()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)
            and "socket" in str(w.message)]


def test_failed_auth_and_starttls_leave_no_connection_open() -> None:
    with SMTPServer("plain", auth={"alice": "right"}) as server:
        profile = Profile("W", "smtp", host="127.0.0.1", port=server.port, security="none",
                          username="alice", timeout=10, from_email="t@example.com")
        draft = Draft(to="b@example.com")
        assert not send_draft(draft, profile, password="wrong").ok
        assert _unclosed(lambda: send_draft(draft, profile, password="wrong")) == []
        assert _unclosed(lambda: check_connection(profile, password="wrong")) == []
    with NoStartTLSServer() as server:
        profile = Profile("W", "smtp", host="127.0.0.1", port=server.port, security="starttls",
                          timeout=10, from_email="t@example.com")
        outcome = send_draft(Draft(to="b@example.com"), profile)
        assert not outcome.ok and "STARTTLS" in outcome.sentence
        assert _unclosed(lambda: send_draft(Draft(to="b@example.com"), profile)) == []
        assert _unclosed(lambda: check_connection(profile)) == []


def test_console_and_file_sizes_are_what_they_write(tmp_path: Path) -> None:
    draft = Draft(to="bob@example.com", subject="Size", body="line one\nline two\n" * 50)
    separator = len("\n" + "-" * 79 + "\n")
    file_profile = Profile("Files", "file", file_path=str(tmp_path / "out"))
    outcome = send_draft(draft, file_profile)
    assert outcome.ok
    assert outcome.size == Path(outcome.written_file).stat().st_size - separator
    printed: list[str] = []
    outcome = send_draft(draft, Profile("Console", "console"), console=printed.append)
    assert outcome.ok
    assert outcome.size == len("".join(printed).encode()) - separator
    crlf = serialize(build_message(draft, Profile("Memory", "memory"))).size
    assert send_draft(draft, Profile("Memory", "memory")).size == crlf  # as SMTP carries it


def test_unicode_errors_are_never_quoted() -> None:
    secret = "p\u00e4ssw\u00f6rd\u2603"
    errors: list[BaseException] = [
        UnicodeEncodeError("ascii", secret, 1, 2, "ordinal not in range(128)"),
        UnicodeDecodeError("utf-8", secret.encode("latin-1", "replace"), 1, 2, "invalid"),
    ]
    try:
        try:
            secret.encode("ascii")
        except UnicodeError as exc:
            raise OSError(f"login failed: {exc}") from exc
    except OSError as wrapped:
        errors.append(wrapped)
    profile = Profile("W", "smtp", host="mail.example.com", port=587, username="alice")
    for exc in errors:
        info = describe_error(exc, profile)
        assert info.kind == "encoding"
        for text in (info.sentence, info.reply):
            assert not any(ch in text for ch in "\u00e4\u00f6\u2603")
            assert "\\x" not in text and "\\u" not in text and "p?ss" not in text
    assert "ascii" in describe_error(errors[0]).sentence

