"""mailcore.wire: the bytes the backends send, written in chunks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

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
