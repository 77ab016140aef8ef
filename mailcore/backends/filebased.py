"""Email backend that writes messages to a file, one file per session."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from typing import Any

from mailcore.backends.console import EmailBackend as ConsoleEmailBackend
from mailcore.conf import ImproperlyConfigured, settings
from mailcore.message import message_needs_smtputf8
from mailcore.wire import serialize


class MissingFilePath(ImproperlyConfigured, TypeError):
    """Neither ``file_path=`` nor ``EMAIL_FILE_PATH`` names a folder."""


# With a progress callback, a message is written (and reported) at most this many bytes at a time.
PROGRESS_WRITE_SIZE = 512 * 1024


class EmailBackend(ConsoleEmailBackend):
    """Django's file backend. mailcore only: ``progress=callable(bytes_written, bytes_total)``
    is called while each message is written (``bytes_total`` is the size of the message
    without the separator line; at the start, after every write of at most 512 KiB and at
    the end). If it raises, what was written of that message is removed from the file and
    the exception propagates, even with fail_silently. ``filename`` is the file written to.
    """

    def __init__(
        self,
        *args: Any,
        file_path: str | os.PathLike[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._fname: str | None = None
        self.progress = progress
        self._progress_error: BaseException | None = None
        if file_path is not None:
            self.file_path = file_path
        else:
            self.file_path = settings.EMAIL_FILE_PATH
        if self.file_path is None:
            # a TypeError too: Django fails here with os.path.abspath(None)'s TypeError
            raise MissingFilePath(
                "The file backend needs a folder: pass file_path= or set EMAIL_FILE_PATH."
            )
        self.file_path = os.path.abspath(self.file_path)
        try:
            os.makedirs(self.file_path, exist_ok=True)
        except FileExistsError:
            raise ImproperlyConfigured(
                "Path for saving email messages exists, but is not a directory: %s" % self.file_path
            ) from None
        except OSError as err:
            raise ImproperlyConfigured(
                "Could not create directory for saving email messages: %s (%s)"
                % (self.file_path, err)
            ) from err
        # Make sure that self.file_path is writable.
        if not os.access(self.file_path, os.W_OK):
            raise ImproperlyConfigured("Could not write to directory: %s" % self.file_path)
        # Since we're using the console-based backend as a base,
        # force the stream to be None, so we don't default to stdout
        kwargs["stream"] = None
        super().__init__(*args, **kwargs)

    @property
    def filename(self) -> str | None:
        """The path of the file this backend writes to (one per backend object: the
        current or last session's); None until it is first opened for writing."""
        return self._fname

    def write_message(self, message: Any) -> None:
        write = self.stream.write
        # no server to ask: an address only SMTPUTF8 carries is written as UTF-8 (RFC 6532)
        data = self.dkim_sign(serialize(message, linesep="\n",
                                        utf8=message_needs_smtputf8(message)))
        progress = self.progress
        if progress is None:
            for chunk in data.chunks():
                write(chunk)
        else:
            total = data.size
            done = 0
            self._report(0, total)
            for chunk in data.chunks():
                view = memoryview(chunk)
                for start in range(0, len(view), PROGRESS_WRITE_SIZE):
                    piece = view[start : start + PROGRESS_WRITE_SIZE]
                    write(piece)
                    done += len(piece)
                    self._report(min(done, total), total)
            if done != total:
                self._report(total, total)
        write(b"\n")
        write(b"-" * 79)
        write(b"\n")

    def _report(self, done: int, total: int) -> None:
        try:
            self.progress(done, total)  # type: ignore[misc]
        except BaseException as exc:
            self._progress_error = exc
            raise

    def send_messages(self, email_messages: Sequence[Any]) -> int | None:
        """The console backend's loop; a message that fails half-written is cut from the
        file, and an exception of the progress callback always propagates."""
        if not email_messages:
            return None
        msg_count = 0
        self._progress_error = None
        with self._lock:
            stream_created = False
            try:
                stream_created = self.open()
                for message in email_messages:
                    self._write_whole(message)
                    msg_count += 1
                if stream_created:
                    self.close()
            except Exception as exc:
                if exc is self._progress_error:
                    if stream_created:
                        self.close()
                    raise
                if not self.fail_silently:
                    raise
        return msg_count

    def _write_whole(self, message: Any) -> None:
        stream = self.stream
        try:
            start = stream.tell()
        except (OSError, ValueError):
            start = None
        try:
            self.write_message(message)
            stream.flush()  # flush after each message
        except BaseException:
            if start is not None:
                try:
                    stream.flush()
                    stream.truncate(start)
                except (OSError, ValueError):
                    pass
            raise

    def _get_filename(self) -> str:
        """Return a unique file name."""
        if self._fname is None:
            timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            fname = "%s-%s.log" % (timestamp, abs(id(self)))
            self._fname = os.path.join(self.file_path, fname)
        return self._fname

    def open(self) -> bool:
        if self.stream is None:
            self.stream = open(self._get_filename(), "ab")  # noqa: SIM115 - closed in close()
            return True
        return False

    def close(self) -> None:
        try:
            if self.stream is not None:
                self.stream.close()
        finally:
            self.stream = None
