"""Base email backend class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailcore.conf import ImproperlyConfigured, settings


def _dkim_signer(value: Any) -> Any:
    """``dkim=`` (None: the EMAIL_DKIM setting) as a DKIMSigner, or None. Checked here, so a
    wrong key or domain fails when the backend is made, not at the first send."""
    if value is None:
        value = settings.EMAIL_DKIM
        if value is None:
            return None
    try:
        from mailcore.checks.dkim import DKIMSigner
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"DKIM signing needs dkimpy and dnspython ({exc.name or exc} is missing): "
            "pip install 'mailcore[checks]'"
        ) from exc
    return DKIMSigner.from_settings(value)


class BaseEmailBackend:
    """Base class for email backend implementations.

    Subclasses must at least overwrite send_messages().

    mailcore only: ``dkim=`` signs every message with DKIM (a
    ``mailcore.checks.dkim.DKIMSigner``, or a dict with ``domain``, ``selector`` and
    ``private_key`` or ``key_file``; None: the ``EMAIL_DKIM`` setting). ``self.dkim`` is the
    signer, or None.

    open() and close() can be called indirectly by using a backend object as a
    context manager::

        with backend as connection:
            # do something with connection
            pass
    """

    def __init__(self, fail_silently: bool = False, dkim: Any = None, **kwargs: Any) -> None:
        self.fail_silently = fail_silently
        self.dkim = _dkim_signer(dkim)

    def dkim_sign(self, data: Any) -> Any:
        """mailcore only: a ``mailcore.wire.Serialized`` with the backend's DKIM signature in
        front, or ``data`` itself when the backend does not sign. Backends call it on the very
        bytes they write or send."""
        if self.dkim is None:
            return data
        return self.dkim.sign_serialized(data)

    def open(self) -> bool | None:
        """Open a network connection.

        This method can be overwritten by backend implementations to open a
        network connection. It's up to the backend implementation to track the
        status of a network connection if it's needed by the backend. This
        method can be called by applications to force a single network
        connection to be used when sending mails. See the send_messages()
        method of the SMTP backend for a reference implementation.

        The default implementation does nothing.
        """

    def close(self) -> None:
        """Close a network connection."""

    def __enter__(self) -> BaseEmailBackend:
        try:
            self.open()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        self.close()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send one or more EmailMessage objects and return the number of email
        messages sent."""
        raise NotImplementedError(
            "subclasses of BaseEmailBackend must override send_messages() method"
        )
