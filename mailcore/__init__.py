"""Tools for sending email: Django's ``django.core.mail``, without Django.

``mailcore.X`` is ``django.core.mail.X``; backends live in
``mailcore.backends.NAME.EmailBackend``; ``mailcore.settings`` stands in for
Django's settings (same names, same defaults, also read from ``MAILCORE_*``
environment variables).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from mailcore.conf import ImproperlyConfigured, UnknownSettingError, settings
from mailcore.message import (
    DEFAULT_ATTACHMENT_MIME_TYPE,
    BadHeaderError,
    EmailAlternative,
    EmailAttachment,
    EmailMessage,
    EmailMultiAlternatives,
    FileContent,
    SafeMIMEMultipart,
    SafeMIMEText,
    forbid_multi_line_headers,
    make_msgid,
)
from mailcore.utils import DNS_NAME, CachedDnsName

__version__ = "0.1.0"

__all__ = [
    "CachedDnsName",
    "DNS_NAME",
    "EmailMessage",
    "EmailMultiAlternatives",
    "SafeMIMEText",
    "SafeMIMEMultipart",
    "DEFAULT_ATTACHMENT_MIME_TYPE",
    "make_msgid",
    "BadHeaderError",
    "forbid_multi_line_headers",
    "get_connection",
    "send_mail",
    "send_mass_mail",
    "mail_admins",
    "mail_managers",
    "EmailAlternative",
    "EmailAttachment",
    "FileContent",
    "ImproperlyConfigured",
    "UnknownSettingError",
    "settings",
    "outbox",
]

# Messages sent through the locmem backend (as in Django, tests may reset it
# with ``mailcore.outbox = []`` or ``.clear()``).
outbox: list[EmailMessage] = []

# Short names and Django's dotted paths are accepted wherever a backend is named.
_BUILTIN_BACKENDS = ("smtp", "console", "filebased", "locmem", "dummy", "celery")
_ALIASES = {"file": "filebased", "memory": "locmem"}


def _backend_path(backend: str) -> str:
    name = _ALIASES.get(backend, backend)
    if name in _BUILTIN_BACKENDS:
        return f"mailcore.backends.{name}.EmailBackend"
    prefix = "django.core.mail.backends."
    if backend.startswith(prefix):
        return "mailcore.backends." + backend[len(prefix) :]
    return backend


def import_string(dotted_path: str) -> Any:
    """Import a dotted module path and return the attribute/class it names."""
    try:
        module_path, class_name = dotted_path.rsplit(".", 1)
    except ValueError as err:
        raise ImportError("%s doesn't look like a module path" % dotted_path) from err
    module = import_module(module_path)
    try:
        return getattr(module, class_name)
    except AttributeError as err:
        raise ImportError(
            'Module "%s" does not define a "%s" attribute/class' % (module_path, class_name)
        ) from err


def get_connection(backend: str | None = None, fail_silently: bool = False, **kwds: Any) -> Any:
    """Load an email backend and return an instance of it.

    If backend is None (default), use settings.EMAIL_BACKEND.

    Both fail_silently and other keyword arguments are used in the
    constructor of the backend.
    """
    klass = import_string(_backend_path(backend or settings.EMAIL_BACKEND))
    return klass(fail_silently=fail_silently, **kwds)


def send_mail(
    subject: str,
    message: str,
    from_email: str | None,
    recipient_list: list[str],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: Any = None,
    html_message: str | None = None,
) -> int:
    """Easy wrapper for sending a single message to a recipient list. All members
    of the recipient list will see the other recipients in the 'To' field.

    If from_email is None, use the DEFAULT_FROM_EMAIL setting.
    If auth_user is None, use the EMAIL_HOST_USER setting.
    If auth_password is None, use the EMAIL_HOST_PASSWORD setting.
    """
    connection = connection or get_connection(
        username=auth_user,
        password=auth_password,
        fail_silently=fail_silently,
    )
    mail = EmailMultiAlternatives(
        subject, message, from_email, recipient_list, connection=connection
    )
    if html_message:
        mail.attach_alternative(html_message, "text/html")

    return mail.send()


def send_mass_mail(
    datatuple: Any,
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: Any = None,
) -> int:
    """Given a datatuple of (subject, message, from_email, recipient_list), send
    each message to each recipient list over one connection. Return the number
    of emails sent.

    If from_email is None, use the DEFAULT_FROM_EMAIL setting.
    If auth_user and auth_password are set, use them to log in.
    If auth_user is None, use the EMAIL_HOST_USER setting.
    If auth_password is None, use the EMAIL_HOST_PASSWORD setting.
    """
    connection = connection or get_connection(
        username=auth_user,
        password=auth_password,
        fail_silently=fail_silently,
    )
    messages = [
        EmailMessage(subject, message, sender, recipient, connection=connection)
        for subject, message, sender, recipient in datatuple
    ]
    return connection.send_messages(messages)


def _mail_people(
    setting_name: str,
    subject: str,
    message: str,
    fail_silently: bool,
    connection: Any,
    html_message: str | None,
) -> None:
    people = getattr(settings, setting_name)
    if not people:
        return
    if not all(isinstance(a, list | tuple) and len(a) == 2 for a in people):
        raise ValueError(f"The {setting_name} setting must be a list of 2-tuples.")
    mail = EmailMultiAlternatives(
        "%s%s" % (settings.EMAIL_SUBJECT_PREFIX, subject),
        message,
        settings.SERVER_EMAIL,
        [a[1] for a in people],
        connection=connection,
    )
    if html_message:
        mail.attach_alternative(html_message, "text/html")
    mail.send(fail_silently=fail_silently)


def mail_admins(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: Any = None,
    html_message: str | None = None,
) -> None:
    """Send a message to the admins, as defined by the ADMINS setting."""
    _mail_people("ADMINS", subject, message, fail_silently, connection, html_message)


def mail_managers(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: Any = None,
    html_message: str | None = None,
) -> None:
    """Send a message to the managers, as defined by the MANAGERS setting."""
    _mail_people("MANAGERS", subject, message, fail_silently, connection, html_message)
