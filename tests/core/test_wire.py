"""mailcore.wire: the bytes the backends send, written in chunks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcore import EmailMessage, EmailMultiAlternatives
from mailcore.wire import BASE64_READ_SIZE, can_stream, serialize

from .mimeview import normalise

SIZES = [
    0,
    1,
    2,
    3,
    56,
    57,
    58,
    76,
    1000,
    BASE64_READ_SIZE - 1,
    BASE64_READ_SIZE,
    BASE64_READ_SIZE + 1,
    2 * BASE64_READ_SIZE + 57,
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("linesep", ["\n", "\r\n"])
def test_file_attachment_bytes_and_size_are_exact(tmp_path, size, linesep):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(size) if size % 2 else (b"line\n" * size)[:size])
    msg = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    msg.attach_file(path)
    data = serialize(msg, linesep)
    raw = data.getvalue()
    assert len(raw) == data.size
    assert normalise(raw) == normalise(msg.message().as_bytes(linesep=linesep))


def test_chunks_are_bounded_for_large_files(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(5 * BASE64_READ_SIZE + 123))
    msg = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    msg.attach_file(path)
    sizes = [len(c) for c in serialize(msg).chunks()]
    assert len(sizes) > 5
    assert max(sizes) < 2 * 1024 * 1024


def test_size_is_known_before_reading(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * 300_000)
    msg = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    msg.attach_file(path)
    data = serialize(msg)
    size = data.size
    path.unlink()  # the size came from stat(), no read needed
    assert size > 400_000
    with pytest.raises(FileNotFoundError):
        data.getvalue()


def test_message_id_is_exposed():
    data = serialize(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))
    assert data.message_id.startswith("<") and data.message_id.encode() in data.getvalue()


class CustomMessage(EmailMessage):
    def message(self):
        msg = super().message()
        msg["X-Custom"] = "built by a subclass"
        return msg


def test_subclasses_that_override_message_are_honoured():
    msg = CustomMessage("s", "b", "f@example.com", ["t@example.com"])
    assert not can_stream(msg)
    assert b"X-Custom: built by a subclass" in serialize(msg).getvalue()


def test_non_utf8_charset_goes_through_the_email_package():
    msg = EmailMessage("s", "café", "f@example.com", ["t@example.com"])
    msg.encoding = "iso-8859-1"
    assert not can_stream(msg)
    raw = serialize(msg).getvalue()
    assert b'charset="iso-8859-1"' in raw
    assert normalise(raw) == normalise(msg.message().as_bytes(linesep="\r\n"))


def test_fast_path_is_taken_for_ordinary_messages():
    msg = EmailMultiAlternatives("s", "b", "f@example.com", ["t@example.com"])
    msg.attach_alternative("<p>x</p>", "text/html")
    assert can_stream(msg)


def test_large_attachment_is_streamed_with_bounded_memory(tmp_path):
    """Peak memory growth while writing a message with a 96 MB attachment
    through the file backend stays far below the attachment's size."""
    script = textwrap.dedent(
        f"""
        import os, resource, sys
        sys.path.insert(0, {str(os.getcwd())!r})
        import mailcore
        from mailcore import EmailMessage, get_connection
        path = {str(tmp_path / "big.bin")!r}
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(96):
                f.write(block)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        msg = EmailMessage("big", "see attachment", "f@example.com", ["t@example.com"])
        msg.attach_file(path)
        get_connection("file", file_path={str(tmp_path / "out")!r}).send_messages([msg])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth_mb = int(out.stdout.strip())
    assert growth_mb < 64, f"memory grew by {growth_mb} MB"
    (written,) = (tmp_path / "out").iterdir()
    assert written.stat().st_size > 96 * 1024 * 1024 * 4 // 3


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 57 * 10, 57 * 10 + 3, 100_000])
def test_base64_piece_head_and_tail_match_the_full_encoding(tmp_path, size):
    from mailcore.wire import Base64Piece

    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(size))
    msg = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    msg.attach_file(path)
    data = serialize(msg, "\r\n")
    (piece,) = [p for p in data.pieces if isinstance(p, Base64Piece)]
    full = b"".join(piece.chunks()).split(b"\r\n")[:-1]
    assert piece.line_count == len(full)
    assert piece.head(3) == b"".join(line + b"\r\n" for line in full[:3])
    assert piece.tail(2) == b"".join(line + b"\r\n" for line in full[-2:] if full)
    joined = b"".join(p if isinstance(p, bytes) else b"".join(p.chunks()) for p in data.pieces)
    assert joined == data.getvalue()


# -- the fast paths give the standard library's very results --------------------------------

_WORD_CHARS = "abcXYZ019=?<>@.-_,\"()"
_words = st.lists(
    st.one_of(
        st.text(_WORD_CHARS, min_size=1, max_size=12),
        st.text(_WORD_CHARS, min_size=60, max_size=100),  # too long for a line
        st.sampled_from(["=?utf-8?b?SsO2cmcgw4Z2aUrDtsWBdW3DvGxsZXI=?=",
                         "<li@xn--viqq5aj6h8xif9e.de>,", "a,", ",", "x" * 76, "y" * 78]),
    ),
    min_size=1, max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(_words, min_size=1, max_size=3),
    name=st.sampled_from(["To", "Subject", "From", "X-A-Rather-Long-Header-Name-For-Folding"]),
    linesep=st.sampled_from(["\n", "\r\n"]),
    odd=st.sampled_from(["", "  ", " ", "\t", ";"]),
)
def test_folding_an_ascii_value_matches_the_email_package(lines, name, linesep, odd):
    """Every way fold_header folds an ASCII value (the word folder, the general one) gives
    compat32's bytes, for values of words, encoded words, commas, long words, continuation
    lines, and a double space, trailing space, tab or ";" (which the word folder leaves)."""
    from mailcore.wire import fold_header

    value = "\n ".join(" ".join(words) for words in lines)
    if odd:
        at = len(value) // 2
        value = value[:at] + odd + value[at:] if odd != " " else value + " "
    try:
        want = compat32.clone(linesep=linesep).fold_binary(name, value)
    except Exception as exc:  # noqa: BLE001 - then mailcore must refuse as well
        with pytest.raises(type(exc)):
            fold_header(name, value, linesep)
        return
    assert fold_header(name, value, linesep) == want


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda n: "a" * n, st.sampled_from([0, 1, 249, 250, 997, 998, 999, 1500])),
    st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x1c", "\x85", "\u2028", "é", "\U0001f69a"]),
), max_size=8))
def test_long_line_check_matches_splitlines(parts):
    from mailcore.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT as LIMIT
    from mailcore.wire import _has_long_lines

    content = "".join(parts)
    want = any(len(line.encode("utf-8")) > LIMIT for line in content.splitlines())
    assert _has_long_lines(content) is want


def test_date_and_message_id_are_what_the_email_package_makes():
    import email.utils
    import re
    import time

    ids = set()
    for _ in range(2000):
        data = serialize(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))
        headers = dict(data.headers)
        before = time.time()
        stamp = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        assert before - 2 <= stamp <= before + 1
        assert headers["Date"] == email.utils.formatdate(stamp)
        assert re.fullmatch(r"<\d+\.%d\.\d+@[^>]+>" % os.getpid(), headers["Message-ID"])
        ids.add(headers["Message-ID"])
    assert len(ids) == 2000


def test_message_id_after_fork_has_the_childs_pid():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            data = serialize(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))
            os.write(write, dict(data.headers)["Message-ID"].encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        child_id = f.read().decode()
    os.waitpid(pid, 0)
    assert child_id.split(".")[1] == str(pid)
