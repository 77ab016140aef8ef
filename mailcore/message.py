"""Email messages, built exactly as Django 5.2's ``django.core.mail.message``.

``EmailMessage.message()`` builds the same ``email`` package objects Django
builds, so code written for Django gets the same MIME tree. Backends do not call
it on the hot path: they use :mod:`mailcore.wire`, which writes the very same
bytes in chunks, without building the object tree and without holding large
attachments in memory.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections import namedtuple
from email import charset as Charset
from email import encoders as Encoders
from email import generator, message_from_bytes
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address, parser
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

from mailcore.conf import settings
from mailcore.utils import DNS_NAME, force_bytes, force_str, punycode

__all__ = [
    "ADDRESS_HEADERS",
    "BadHeaderError",
    "DEFAULT_ATTACHMENT_MIME_TYPE",
    "EmailAlternative",
    "EmailAttachment",
    "EmailMessage",
    "EmailMultiAlternatives",
    "FileContent",
    "SafeMIMEMessage",
    "SafeMIMEMultipart",
    "SafeMIMEText",
    "forbid_multi_line_headers",
    "make_msgid",
    "sanitize_address",
]

# Don't BASE64-encode UTF-8 messages so that we avoid unwanted attention from
# some spam filters.
utf8_charset = Charset.Charset("utf-8")
utf8_charset.body_encoding = None  # Python defaults to BASE64
utf8_charset_qp = Charset.Charset("utf-8")
utf8_charset_qp.body_encoding = Charset.QP

# Default MIME type to use on attachments (if it is not explicitly given
# and cannot be guessed).
DEFAULT_ATTACHMENT_MIME_TYPE = "application/octet-stream"

RFC5322_EMAIL_LINE_LENGTH_LIMIT = 998

# mailcore only, for tools that take headers from people: a header name is printable ASCII
# without ":" (RFC 5322 ftext), and these headers are written from the message's structure,
# so an extra one would be a second copy.
HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
STRUCTURE_HEADERS = ("content-type", "content-transfer-encoding", "mime-version")

# mailcore only: characters that end a line for some reader of a header, so none may appear in
# one (a header injection otherwise): CR and LF for SMTP and RFC 5322, NUL, and the others that
# Python's str.splitlines() splits on, which the email package uses when it folds and parses.
HEADER_LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# attach_file() reads files up to this size at once, as Django does; larger
# non-text files are streamed from disk when the message is written.
ATTACH_FILE_READ_LIMIT = 1024 * 1024


class BadHeaderError(ValueError):
    """A header value holds a newline (a header injection attempt)."""


# Header names that contain structured address data (RFC 5322).
ADDRESS_HEADERS = {
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
}


def forbid_multi_line_headers(name: str, val: Any, encoding: str | None) -> tuple[str, str]:
    """Forbid multi-line headers to prevent header injection."""
    encoding = encoding or settings.DEFAULT_CHARSET
    if "\n" in name or "\r" in name:
        raise BadHeaderError("Header names can't contain newlines (got %r)" % (name,))
    val = str(val)  # val may be lazy
    if "\n" in val or "\r" in val:
        raise BadHeaderError(
            "Header values can't contain newlines (got %r for header %r)" % (val, name)
        )
    try:
        val.encode("ascii")
    except UnicodeEncodeError:
        if name.lower() in ADDRESS_HEADERS:
            val = ", ".join(sanitize_address(addr, encoding) for addr in getaddresses((val,)))
        else:
            val = Header(val, encoding).encode()
    else:
        if name.lower() == "subject":
            val = Header(val).encode()
    return name, val


def sanitize_address(addr: str | tuple[str, str], encoding: str) -> str:
    """Format a pair of (name, address) or an email address string."""
    address = None
    if not isinstance(addr, tuple):
        addr = force_str(addr)
        try:
            token, rest = parser.get_mailbox(addr)
        except (HeaderParseError, ValueError, IndexError):
            raise ValueError('Invalid address "%s"' % addr) from None
        else:
            if rest:
                # The entire email address must be parsed.
                raise ValueError(
                    'Invalid address; only %s could be parsed from "%s"' % (token, addr)
                )
            nm = token.display_name or ""
            localpart = token.local_part
            domain = token.domain or ""
    else:
        nm, address = addr
        if "@" not in address:
            raise ValueError(f'Invalid address "{address}"')
        localpart, domain = address.rsplit("@", 1)

    address_parts = nm + localpart + domain
    if "\n" in address_parts or "\r" in address_parts:
        raise ValueError("Invalid address; address parts cannot contain newlines.")

    # Avoid UTF-8 encode, if it's possible.
    try:
        nm.encode("ascii")
        nm = Header(nm).encode()
    except UnicodeEncodeError:
        nm = Header(nm, encoding).encode()
    try:
        localpart.encode("ascii")
    except UnicodeEncodeError:
        localpart = Header(localpart, encoding).encode()
    domain = punycode(domain)

    parsed_address = Address(username=localpart, domain=domain)
    return formataddr((nm, parsed_address.addr_spec))


class MIMEMixin:
    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        """Return the entire formatted message as a string.

        Unlike the standard library, lines that begin with 'From ' are not
        mangled.
        """
        fp = StringIO()
        g = generator.Generator(fp, mangle_from_=False)
        g.flatten(self, unixfrom=unixfrom, linesep=linesep)
        return fp.getvalue()

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        """Return the entire formatted message as bytes.

        Unlike the standard library, lines that begin with 'From ' are not
        mangled.
        """
        fp = BytesIO()
        g = generator.BytesGenerator(fp, mangle_from_=False)
        g.flatten(self, unixfrom=unixfrom, linesep=linesep)
        return fp.getvalue()


class SafeMIMEMessage(MIMEMixin, MIMEMessage):
    def __setitem__(self, name: str, val: Any) -> None:
        # Per RFC 2046 Section 5.2.1, message/rfc822 attachment headers must be ASCII.
        name, val = forbid_multi_line_headers(name, val, "ascii")
        MIMEMessage.__setitem__(self, name, val)


class SafeMIMEText(MIMEMixin, MIMEText):
    def __init__(self, _text: str, _subtype: str = "plain", _charset: str | None = None) -> None:
        self.encoding = _charset
        MIMEText.__init__(self, _text, _subtype=_subtype, _charset=_charset)

    def __setitem__(self, name: str, val: Any) -> None:
        name, val = forbid_multi_line_headers(name, val, self.encoding)
        MIMEText.__setitem__(self, name, val)

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        if charset == "utf-8" and not isinstance(charset, Charset.Charset):
            has_long_lines = any(
                len(line.encode(errors="surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT
                for line in payload.splitlines()
            )
            # Quoted-Printable encoding has the side effect of shortening long
            # lines, if any (#22561).
            charset = utf8_charset_qp if has_long_lines else utf8_charset
        MIMEText.set_payload(self, payload, charset=charset)


class SafeMIMEMultipart(MIMEMixin, MIMEMultipart):
    def __init__(
        self,
        _subtype: str = "mixed",
        boundary: str | None = None,
        _subparts: Any = None,
        encoding: str | None = None,
        **_params: Any,
    ) -> None:
        self.encoding = encoding
        MIMEMultipart.__init__(self, _subtype, boundary, _subparts, **_params)

    def __setitem__(self, name: str, val: Any) -> None:
        name, val = forbid_multi_line_headers(name, val, self.encoding)
        MIMEMultipart.__setitem__(self, name, val)


EmailAlternative = namedtuple("EmailAlternative", ["content", "mimetype"])
EmailAttachment = namedtuple("EmailAttachment", ["filename", "content", "mimetype"])


class FileContent:
    """The content of an attachment added with ``attach_file``: a reference to
    the file, read only when the message is written.

    It compares equal to the file's bytes, and ``bytes(content)`` reads them,
    so code that inspects ``message.attachments`` keeps working; backends
    stream it in chunks instead of holding it in memory.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def open(self):  # noqa: ANN201 - a binary file object
        return self.path.open("rb")

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def size(self) -> int:
        return self.path.stat().st_size

    def __bytes__(self) -> bytes:
        return self.read_bytes()

    def __len__(self) -> int:
        return self.size()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileContent):
            return self.path == other.path
        if isinstance(other, bytes | bytearray | memoryview):
            try:
                return self.read_bytes() == bytes(other)
            except OSError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"FileContent({str(self.path)!r})"

    def __reduce__(self) -> tuple:
        return (FileContent, (str(self.path),))

    def __deepcopy__(self, memo: dict) -> FileContent:
        return FileContent(self.path)


def _content_bytes(content: Any) -> Any:
    return content.read_bytes() if isinstance(content, FileContent) else content


class EmailMessage:
    """A container for email information."""

    content_subtype = "plain"
    mixed_subtype = "mixed"
    encoding = None  # None => use settings default
    # mailcore only: an int makes mailcore.wire's multipart boundaries deterministic for this
    # message, so two serialisations of an unchanged message give the same bytes. None (the
    # default) gives random boundaries, as Django does.
    boundary_seed: int | None = None

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: list[str] | tuple[str, ...] | None = None,
        bcc: list[str] | tuple[str, ...] | None = None,
        connection: Any = None,
        attachments: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        cc: list[str] | tuple[str, ...] | None = None,
        reply_to: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        """Initialize a single email message (which can be sent to multiple
        recipients)."""
        if to:
            if isinstance(to, str):
                raise TypeError('"to" argument must be a list or tuple')
            self.to = list(to)
        else:
            self.to = []
        if cc:
            if isinstance(cc, str):
                raise TypeError('"cc" argument must be a list or tuple')
            self.cc = list(cc)
        else:
            self.cc = []
        if bcc:
            if isinstance(bcc, str):
                raise TypeError('"bcc" argument must be a list or tuple')
            self.bcc = list(bcc)
        else:
            self.bcc = []
        if reply_to:
            if isinstance(reply_to, str):
                raise TypeError('"reply_to" argument must be a list or tuple')
            self.reply_to = list(reply_to)
        else:
            self.reply_to = []
        self.from_email = from_email or settings.DEFAULT_FROM_EMAIL
        self.subject = subject
        self.body = body or ""
        self.attachments = []
        if attachments:
            for attachment in attachments:
                if isinstance(attachment, MIMEBase):
                    self.attach(attachment)
                else:
                    self.attach(*attachment)
        self.extra_headers = headers or {}
        self.connection = connection

    def get_connection(self, fail_silently: bool = False) -> Any:
        from mailcore import get_connection

        if not self.connection:
            self.connection = get_connection(fail_silently=fail_silently)
        return self.connection

    def message(self) -> SafeMIMEText | SafeMIMEMultipart:
        encoding = self.encoding or settings.DEFAULT_CHARSET
        msg = SafeMIMEText(self.body, self.content_subtype, encoding)
        msg = self._create_message(msg)
        msg["Subject"] = self.subject
        msg["From"] = self.extra_headers.get("From", self.from_email)
        self._set_list_header_if_not_empty(msg, "To", self.to)
        self._set_list_header_if_not_empty(msg, "Cc", self.cc)
        self._set_list_header_if_not_empty(msg, "Reply-To", self.reply_to)

        # Email header names are case-insensitive (RFC 2045), so we have to
        # accommodate that when doing comparisons.
        header_names = [key.lower() for key in self.extra_headers]
        if "date" not in header_names:
            msg["Date"] = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
        if "message-id" not in header_names:
            # Use cached DNS_NAME for performance
            msg["Message-ID"] = make_msgid(domain=DNS_NAME)
        for name, value in self.extra_headers.items():
            # Avoid headers handled above.
            if name.lower() not in {"from", "to", "cc", "reply-to"}:
                msg[name] = value
        return msg

    def recipients(self) -> list[str]:
        """Return a list of all recipients of the email (includes direct
        addressees as well as Cc and Bcc entries)."""
        return [email for email in (self.to + self.cc + self.bcc) if email]

    def send(self, fail_silently: bool = False) -> int:
        """Send the email message."""
        if not self.recipients():
            # Don't bother creating the network connection if there's nobody to
            # send to.
            return 0
        return self.get_connection(fail_silently).send_messages([self])

    def attach(
        self, filename: Any = None, content: Any = None, mimetype: str | None = None
    ) -> None:
        """Attach a file with the given filename and content. The filename can
        be omitted and the mimetype is guessed, if not provided.

        If the first parameter is a MIMEBase subclass, insert it directly
        into the resulting message attachments.

        For a text/* mimetype (guessed or specified), when a bytes object is
        specified as content, decode it as UTF-8. If that fails, set the
        mimetype to DEFAULT_ATTACHMENT_MIME_TYPE and don't decode the content.
        """
        if isinstance(filename, MIMEBase):
            if content is not None or mimetype is not None:
                raise ValueError(
                    "content and mimetype must not be given when a MIMEBase instance is provided."
                )
            self.attachments.append(filename)
        elif content is None:
            raise ValueError("content must be provided.")
        else:
            mimetype = mimetype or mimetypes.guess_type(filename)[0] or DEFAULT_ATTACHMENT_MIME_TYPE
            basetype, subtype = mimetype.split("/", 1)

            if basetype == "text":
                if isinstance(content, FileContent):
                    content = content.read_bytes()
                if isinstance(content, bytes):
                    try:
                        content = content.decode()
                    except UnicodeDecodeError:
                        # If mimetype suggests the file is text but it's
                        # actually binary, read() raises a UnicodeDecodeError.
                        mimetype = DEFAULT_ATTACHMENT_MIME_TYPE

            self.attachments.append(EmailAttachment(filename, content, mimetype))

    def attach_file(self, path: str | os.PathLike[str], mimetype: str | None = None) -> None:
        """Attach a file from the filesystem.

        Set the mimetype to DEFAULT_ATTACHMENT_MIME_TYPE if it isn't specified
        and cannot be guessed.

        For a text/* mimetype (guessed or specified), decode the file's content
        as UTF-8. If that fails, set the mimetype to
        DEFAULT_ATTACHMENT_MIME_TYPE and don't decode the content.

        Other files larger than ATTACH_FILE_READ_LIMIT (1 MiB) are kept as a
        reference (:class:`FileContent`, equal to the file's bytes) and read
        when the message is written, so a large file is streamed rather than
        held in memory: it must still exist then. Smaller files are read now,
        as in Django. The file is opened now in any case, so a missing or
        unreadable file raises here.
        """
        path = Path(path)
        guessed = mimetype or mimetypes.guess_type(path.name)[0] or DEFAULT_ATTACHMENT_MIME_TYPE
        with path.open("rb") as file:
            streamable = guessed.split("/", 1)[0] not in ("text", "message") and "/" in guessed
            if not streamable or os.fstat(file.fileno()).st_size <= ATTACH_FILE_READ_LIMIT:
                content = file.read()
                self.attach(path.name, content, mimetype)
                return
        self.attach(path.name, FileContent(path), mimetype)

    def _create_message(self, msg: Any) -> Any:
        return self._create_attachments(msg)

    def _create_attachments(self, msg: Any) -> Any:
        if self.attachments:
            encoding = self.encoding or settings.DEFAULT_CHARSET
            body_msg = msg
            msg = SafeMIMEMultipart(_subtype=self.mixed_subtype, encoding=encoding)
            if self.body or body_msg.is_multipart():
                msg.attach(body_msg)
            for attachment in self.attachments:
                if isinstance(attachment, MIMEBase):
                    msg.attach(attachment)
                else:
                    msg.attach(self._create_attachment(*attachment))
        return msg

    def _create_mime_attachment(self, content: Any, mimetype: str) -> Any:
        """Convert the content, mimetype pair into a MIME attachment object.

        If the mimetype is message/rfc822, content may be an
        email.Message or EmailMessage object, as well as a str.
        """
        content = _content_bytes(content)
        basetype, subtype = mimetype.split("/", 1)
        if basetype == "text":
            encoding = self.encoding or settings.DEFAULT_CHARSET
            attachment = SafeMIMEText(content, subtype, encoding)
        elif basetype == "message" and subtype == "rfc822":
            # Per RFC 2046 Section 5.2.1, message/rfc822 attachments must not
            # be base64 encoded.
            if isinstance(content, EmailMessage):
                # convert content into an email.Message first
                content = content.message()
            elif not isinstance(content, Message):
                # For compatibility with existing code, parse the message
                # into an email.Message object if it is not one already.
                content = message_from_bytes(force_bytes(content))

            attachment = SafeMIMEMessage(content, subtype)
        else:
            # Encode non-text attachments with base64.
            attachment = MIMEBase(basetype, subtype)
            attachment.set_payload(content)
            Encoders.encode_base64(attachment)
        return attachment

    def _create_attachment(self, filename: Any, content: Any, mimetype: str | None = None) -> Any:
        """Convert the filename, content, mimetype triple into a MIME attachment
        object."""
        if isinstance(filename, str) and ("\n" in filename or "\r" in filename):
            raise BadHeaderError(f"Attachment filenames can't contain newlines (got {filename!r})")
        attachment = self._create_mime_attachment(content, mimetype)
        if filename:
            try:
                filename.encode("ascii")
            except UnicodeEncodeError:
                filename = ("utf-8", "", filename)
            attachment.add_header("Content-Disposition", "attachment", filename=filename)
        return attachment

    def _set_list_header_if_not_empty(self, msg: Any, header: str, values: list[Any]) -> None:
        """Set msg's header, either from self.extra_headers, if present, or from
        the values argument if not empty."""
        try:
            msg[header] = self.extra_headers[header]
        except KeyError:
            if values:
                msg[header] = ", ".join(str(v) for v in values)


class EmailMultiAlternatives(EmailMessage):
    """A version of EmailMessage that makes it easy to send multipart/alternative
    messages. For example, including text and HTML versions of the text is
    made easier."""

    alternative_subtype = "alternative"

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: list[str] | tuple[str, ...] | None = None,
        bcc: list[str] | tuple[str, ...] | None = None,
        connection: Any = None,
        attachments: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        alternatives: list[Any] | None = None,
        cc: list[str] | tuple[str, ...] | None = None,
        reply_to: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(
            subject, body, from_email, to, bcc, connection, attachments, headers, cc, reply_to
        )
        self.alternatives = [EmailAlternative(*alternative) for alternative in (alternatives or [])]

    def attach_alternative(self, content: Any, mimetype: str) -> None:
        """Attach an alternative content representation."""
        if content is None or mimetype is None:
            raise ValueError("Both content and mimetype must be provided.")
        self.alternatives.append(EmailAlternative(content, mimetype))

    def _create_message(self, msg: Any) -> Any:
        return self._create_attachments(self._create_alternatives(msg))

    def _create_alternatives(self, msg: Any) -> Any:
        encoding = self.encoding or settings.DEFAULT_CHARSET
        if self.alternatives:
            body_msg = msg
            msg = SafeMIMEMultipart(_subtype=self.alternative_subtype, encoding=encoding)
            if self.body:
                msg.attach(body_msg)
            for alternative in self.alternatives:
                msg.attach(self._create_mime_attachment(alternative.content, alternative.mimetype))
        return msg

    def body_contains(self, text: str) -> bool:
        """Check that ``text`` occurs in the email body and in all attached MIME
        type text/* alternatives."""
        if text not in self.body:
            return False

        for content, mimetype in self.alternatives:
            if mimetype.startswith("text/") and text not in content:
                return False
        return True
