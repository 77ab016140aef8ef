"""Email backend that writes messages to a file, one file per session."""

from __future__ import annotations

import datetime
import os
from typing import Any

from mailcore.backends.console import EmailBackend as ConsoleEmailBackend
from mailcore.conf import ImproperlyConfigured, settings
from mailcore.wire import serialize


class EmailBackend(ConsoleEmailBackend):
    def __init__(
        self, *args: Any, file_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        self._fname: str | None = None
        if file_path is not None:
            self.file_path = file_path
        else:
            self.file_path = settings.EMAIL_FILE_PATH
        if self.file_path is None:
            raise ImproperlyConfigured(
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

    def write_message(self, message: Any) -> None:
        write = self.stream.write
        for chunk in serialize(message, linesep="\n").chunks():
            write(chunk)
        write(b"\n")
        write(b"-" * 79)
        write(b"\n")

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
