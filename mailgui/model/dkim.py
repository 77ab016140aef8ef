"""DKIM signing per profile: the key in the keyring, the DNS record to publish, the signer.

Plain Python, no Qt. A profile says whether it signs, with which domain (``d=``) and selector
(``s=``); its private key is kept only in the system keyring, like its password, under the
app's service name and ``key_name(profile.id)`` ("<profile id>:dkim"). The signing itself is
mailcore's (``mailcore.checks.dkim.DKIMSigner``, given to the backend as ``dkim=``), so what is
signed is the very bytes that go out.

Every function marked "worker side" calls the keyring or generates a key and may block: the
controllers run them on the worker pool.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringUnavailable, SecretStore

if TYPE_CHECKING:
    from mailcore.checks.dkim import DKIMSigner

__all__ = [
    "KEY_BITS",
    "DKIMKeyError",
    "DKIMUnavailable",
    "KeyInfo",
    "default_domain",
    "default_selector",
    "domain_of",
    "generate_key",
    "import_key",
    "import_key_file",
    "key_name",
    "new_key",
    "parse_key",
    "name_problem",
    "record_name",
    "remove_key",
    "selector_of",
    "signer_for",
    "store_key",
    "stored_key",
]

KEY_BITS = 2048  # RFC 8301: at least 1024, 2048 recommended (fits one TXT record in 2 strings)
MIN_RSA_BITS = 1024
KEY_SUFFIX = ":dkim"
MAX_KEY_FILE = 64 * 1024  # a PEM private key is a few KB; anything far bigger is not one


class DKIMKeyError(ValueError):
    """The bytes given are not a private key DKIM can sign with; the text says why, in a
    sentence for the person."""


class DKIMUnavailable(RuntimeError):
    """A profile signs with DKIM but its key can't be had (none stored, no keyring, the keyring
    refused): nothing is sent. The text is the sentence to show."""


@dataclass(frozen=True)
class KeyInfo:
    """A private key that can sign: its PEM, its type and size, and its DNS record value."""

    pem: bytes = field(repr=False)  # the private key: never in a repr, log or traceback
    kind: str  # "rsa" (what mailcore signs with)
    bits: int
    record: str  # the TXT record's value: "v=DKIM1; k=rsa; p=MIIB..."

    @property
    def description(self) -> str:
        return f"{self.kind.upper()}, {self.bits} bits"


def key_name(profile_id: str) -> str:
    """The keyring entry (under the app's service) that holds the DKIM key of a profile."""
    return f"{profile_id}{KEY_SUFFIX}"


def default_selector(today: datetime.date | None = None) -> str:
    """A selector that names when the key was made ("s202607"), so a new key can get a new
    selector and both records can be published while mail signed by the old one is delivered."""
    today = today or datetime.date.today()
    return f"s{today:%Y%m}"


def default_domain(profile: Profile) -> str:
    """The domain of the profile's From address, else of its user name (if it is an
    address); "" if neither has one."""
    for text in (profile.from_email, profile.username):
        _local, at, domain = parseaddr(text or "")[1].rpartition("@")
        if at and domain.strip():
            return domain.strip().lower()
    return ""


def domain_of(profile: Profile) -> str:
    """The ``d=`` the profile signs with: its DKIM domain, else ``default_domain``."""
    return (profile.dkim_domain or "").strip().lower() or default_domain(profile)


def selector_of(profile: Profile) -> str:
    return (profile.dkim_selector or "").strip()


def record_name(selector: str, domain: str) -> str:
    """The DNS name of the TXT record ("s202607._domainkey.example.com"); "" if a part is
    missing or is not a domain name (``name_problem`` says which)."""
    return "" if name_problem(selector, domain) else _dns_name(selector, domain)


def _dns_name(selector: str, domain: str) -> str:
    from mailcore.checks.dkim import dns_name

    return dns_name(selector, domain)


def name_problem(selector: str, domain: str) -> str:
    """Why the selector or domain can't name a DKIM key, as a sentence; "" if they can."""
    if not domain.strip():
        return "Enter the domain to sign for with DKIM."
    if not selector.strip():
        return "Enter a DKIM selector (for example s2026)."
    try:
        _dns_name(selector, domain)
    except ValueError as exc:
        return f"{str(exc)[:1].upper()}{str(exc)[1:]}."
    return ""


# -- keys ----------------------------------------------------------------------------------


_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?:RSA )?PRIVATE KEY-----.+?-----END (?:RSA )?PRIVATE KEY-----", re.DOTALL)


def _key_type(data: bytes, source: str) -> tuple[str, bytes]:
    """("rsa", the key alone as PKCS#8 PEM) with the ``cryptography`` package, which names
    the other kinds of key; (``""``, the PEM block) without it (mailcore's parser decides)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        block = _PEM_BLOCK.search(data)
        return "", (block.group(0) + b"\n") if block else data
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DKIMKeyError(f"{source} could not be read as a private key ({exc}).") from exc
    except Exception as exc:  # noqa: BLE001 - an unsupported algorithm, a broken file
        raise DKIMKeyError(f"{source} could not be read as a private key "
                           f"({type(exc).__name__}: {exc}).") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey")
        raise DKIMKeyError(f"{source} is an {kind} key; mailcore signs with RSA keys, the "
                           "kind every DKIM verifier reads. Generate one here, or import an "
                           "RSA key.")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return "rsa", pem


def parse_key(data: bytes, source: str = "The key") -> KeyInfo:
    """Check that ``data`` is a PEM private key DKIM can sign with (RSA of 1024 bits or
    more) and return it as PEM alone, with its record. DKIMKeyError says why not, in a
    sentence naming ``source`` ("The file key.pem")."""
    text = data.decode("ascii", "replace")
    if "-----BEGIN" not in text:
        raise DKIMKeyError(f"{source} is not a PEM file: it has no \u201c-----BEGIN \u2026 "
                           "PRIVATE KEY-----\u201d line.")
    if "PRIVATE KEY-----" not in text:
        what = ("a certificate" if "CERTIFICATE-----" in text
                else "a public key" if "PUBLIC KEY-----" in text else "no private key")
        raise DKIMKeyError(f"{source} holds {what}, not a private key. DKIM signs with the "
                           "private key; the public one goes into the DNS record.")
    if "ENCRYPTED PRIVATE KEY-----" in text or "Proc-Type: 4,ENCRYPTED" in text:
        raise DKIMKeyError(f"{source} is protected by a passphrase. Save it without one "
                           "(openssl pkey -in key.pem -out plain.pem) and import that.")
    if "OPENSSH PRIVATE KEY-----" in text:
        raise DKIMKeyError(f"{source} is an OpenSSH key. Convert it to PEM first "
                           "(ssh-keygen -p -m PEM -f key) or generate a DKIM key here.")
    _kind, pem = _key_type(data, source)
    from mailcore.checks.dkim import key_bits, public_record

    try:
        bits, record = key_bits(pem), public_record(pem)
    except ValueError as exc:
        raise DKIMKeyError(f"{source} could not be read as an RSA private key "
                           f"({exc}).") from exc
    if bits < MIN_RSA_BITS:
        raise DKIMKeyError(f"{source} is an RSA key of {bits} bits: verifiers refuse DKIM "
                           f"keys shorter than {MIN_RSA_BITS} bits (RFC 8301). Use 2048.")
    return KeyInfo(pem, "rsa", bits, record)


def generate_key(bits: int = KEY_BITS) -> KeyInfo:
    """Worker side (a 2048-bit RSA key takes a moment). A new RSA key with its record."""
    from mailcore.checks.dkim import generate_key as make

    return parse_key(make(bits), "The new key")


def import_key_file(path: str | Path) -> KeyInfo:
    """Worker side. The key in a PEM file; DKIMKeyError (a sentence) if it can't be used."""
    path = Path(path)
    source = f"The file {path.name}"
    try:
        size = path.stat().st_size
        if size > MAX_KEY_FILE:
            raise DKIMKeyError(f"{source} is {size:,} bytes, far too big for a private key.")
        data = path.read_bytes()
    except OSError as exc:
        raise DKIMKeyError(f"{source} can't be read ({exc.strerror or exc}).") from exc
    return parse_key(data, source)


# -- the keyring: worker side ----------------------------------------------------------------


def store_key(secrets: SecretStore, profile_id: str, key: KeyInfo) -> KeyInfo:
    """Worker side. Keep ``key`` in the keyring for the profile (KeyringUnavailable if it
    can't be); returns it."""
    secrets.set(key_name(profile_id), key.pem.decode("ascii"))
    return key


def stored_key(secrets: SecretStore, profile_id: str) -> KeyInfo | None:
    """Worker side. The key the keyring holds for the profile, or None. KeyringUnavailable if
    the keyring can't be read; DKIMKeyError if what it holds is not a usable key."""
    pem = secrets.get(key_name(profile_id))
    if pem is None:
        return None
    return parse_key(pem.encode("ascii", "replace"), "The key stored in the keyring")


def remove_key(secrets: SecretStore, profile_id: str) -> None:
    """Worker side. Forget the profile's key (nothing if there is none or no keyring)."""
    try:
        secrets.delete(key_name(profile_id))
    except KeyringUnavailable:
        pass


def signer_for(profile: Profile, secrets: SecretStore | None) -> DKIMSigner | None:
    """Worker side (reads the keyring). The signer for what ``profile`` sends, or None if it
    does not sign. DKIMUnavailable (a sentence) if it signs but can't: no domain or selector,
    no keyring, no key stored, a key that can't be read."""
    if not profile.signs:
        return None
    name = f"\u201c{profile.name}\u201d"
    fix = "Open Profiles to generate or import a key, or untick \u201cSign with DKIM\u201d."
    domain, selector = domain_of(profile), selector_of(profile)
    problem = name_problem(selector, domain)
    if problem:
        raise DKIMUnavailable(f"The profile {name} signs with DKIM, but its settings are not "
                              f"complete. {problem} (in Profiles)")
    if secrets is None:
        raise DKIMUnavailable(f"The profile {name} signs with DKIM, but its key is kept in the "
                              f"system keyring and no secure keyring is available. {fix}")
    try:
        key = stored_key(secrets, profile.id)
    except KeyringUnavailable as exc:
        raise DKIMUnavailable(f"The DKIM key of {name} could not be read from the system "
                              f"keyring ({exc}). Nothing was sent.") from exc
    except DKIMKeyError as exc:
        raise DKIMUnavailable(f"{exc} (profile {name}). {fix}") from exc
    except Exception as exc:  # noqa: BLE001 - a keyring backend may raise anything (D-Bus)
        raise DKIMUnavailable(f"The system keyring failed while reading the DKIM key of {name} "
                              f"({type(exc).__name__}). Try again, or restart the keyring "
                              "service.") from exc
    if key is None:
        raise DKIMUnavailable(f"The profile {name} signs with DKIM, but no DKIM key is stored "
                              f"for it. {fix}")
    from mailcore.checks.dkim import DKIMSigner

    try:
        return DKIMSigner(domain=domain, selector=selector, private_key=key.pem)
    except ValueError as exc:  # (checked above: a last word from mailcore)
        raise DKIMUnavailable(f"The profile {name} can't sign with DKIM: {exc}.") from exc


def new_key(secrets: SecretStore, profile_id: str, bits: int = KEY_BITS) -> KeyInfo:
    """Worker side. Generate a key and keep it in the keyring for the profile (replacing the
    one it had)."""
    return store_key(secrets, profile_id, generate_key(bits))


def import_key(secrets: SecretStore, profile_id: str, path: str | Path) -> KeyInfo:
    """Worker side. Read and check the PEM file, then keep its key in the keyring for the
    profile. DKIMKeyError (a sentence) if it is no usable key: the keyring is not touched."""
    return store_key(secrets, profile_id, import_key_file(path))
