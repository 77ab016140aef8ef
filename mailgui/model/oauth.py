"""OAuth 2.0 logins for SMTP profiles: provider presets, the sign-in in the system browser, the
refresh token in the keyring, fresh access tokens for mailcore. Plain Python, no Qt.

* **Providers** (``PROVIDERS``): Google, Microsoft 365 and a custom issuer (its endpoints
  discovered from ``/.well-known/openid-configuration`` or ``oauth-authorization-server``
  (RFC 8414), or typed in by hand). Each preset also says which SMTP server to use. The client
  ID is the user's own (the README says how to register one); nothing secret is shipped.
* **Sign-in** (``SignIn``): the authorization-code flow with PKCE (RFC 7636, S256) and a
  loopback redirect (RFC 8252 §7.3): a one-shot HTTP listener on 127.0.0.1 at a port the
  system picks, ``state`` checked, one answer served ("you can close this tab"), with a
  timeout and ``cancel()``. The browser is opened through a seam (``webbrowser.open``
  unless told otherwise; tests pass an HTTP client that follows the address).
* **Tokens**: the refresh token is kept ONLY in the system keyring, under the app's service
  and ``key_name(profile.id)`` ("<profile id>:oauth"), with what is needed to use it again
  (client ID, token and revocation endpoints, the account); the access token is held in
  memory with its expiry (``TokenSource``, shared by every send of the process). Nothing of
  a token is ever in a file, a log, a transcript, a repr or an exception's text.
* **Endpoints** must be https, except on a loopback host (a test or a local server); TLS is
  verified with the system's trusted CAs (``SSL_CERT_FILE`` is honoured).
* **Sign out** (``sign_out``): the provider is asked to revoke the refresh token (RFC 7009)
  when it has a revocation endpoint, then the keyring entry goes; also when a profile is
  deleted (``forget``).

Everything that talks to the network or the keyring may block: the controllers run it on the
worker pool. Failures are ``OAuthError`` whose text is a sentence for the person.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import ipaddress
import json
import secrets as _random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringUnavailable, SecretStore

__all__ = [
    "KEY_SUFFIX",
    "PROVIDERS",
    "Endpoints",
    "OAuthError",
    "Provider",
    "SavedSignIn",
    "SignIn",
    "SignInNeeded",
    "TokenSource",
    "apply_provider",
    "client_secret_name",
    "discover",
    "endpoints_for",
    "forget",
    "is_loopback",
    "key_name",
    "pkce_pair",
    "saved_sign_in",
    "sign_out",
    "store_client_secret",
    "stored_client_secret",
]

KEY_SUFFIX = ":oauth"
CLIENT_SECRET_SUFFIX = ":oauth-client-secret"  # noqa: S105 - a keyring entry's name
HTTP_TIMEOUT = 20.0  # seconds for one request to an authorization server
SIGN_IN_TIMEOUT = 300.0  # seconds the browser has to come back
MAX_RESPONSE = 1024 * 1024  # a token or discovery answer is a few KB
REFRESH_MARGIN = 60.0  # refresh this long before the access token expires (or a quarter of
#                        its lifetime, if that is shorter)


# -- providers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """A preset: where to sign in and which SMTP server takes the token."""

    key: str  # "google", "microsoft", "custom"
    label: str
    issuer: str = ""
    auth_url: str = ""  # "": from the issuer (Microsoft: its tenant) or discovery
    token_url: str = ""
    revocation_url: str = ""
    scopes: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    redirect_host: str = "127.0.0.1"  # the host of the loopback redirect
    extra: tuple[tuple[str, str], ...] = ()  # more parameters of the authorization request
    issuers: tuple[str, ...] = ()  # issuers offered in the editor


GOOGLE = Provider(
    "google", "Google (Gmail, Workspace)",
    issuer="https://accounts.google.com",
    auth_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - an address
    revocation_url="https://oauth2.googleapis.com/revoke",
    scopes="https://mail.google.com/",
    smtp_host="smtp.gmail.com",
    # a refresh token only with access_type=offline; prompt=consent gives one at every sign-in
    extra=(("access_type", "offline"), ("prompt", "consent")),
    issuers=("https://accounts.google.com",),
)
MICROSOFT = Provider(
    "microsoft", "Microsoft 365 (Exchange Online)",
    issuer="https://login.microsoftonline.com/common/v2.0",
    scopes="https://outlook.office.com/SMTP.Send offline_access",
    smtp_host="smtp.office365.com",
    # Entra ID matches "http://localhost" registered for a public client on any port
    redirect_host="localhost",
    extra=(("prompt", "select_account"),),
    issuers=("https://login.microsoftonline.com/common/v2.0",
             "https://login.microsoftonline.com/organizations/v2.0"),
)
CUSTOM = Provider("custom", "Other (an OAuth 2.0 or OpenID Connect issuer)")
PROVIDERS: dict[str, Provider] = {p.key: p for p in (GOOGLE, MICROSOFT, CUSTOM)}


def apply_provider(profile: Profile, key: str) -> None:
    """Make ``profile`` an OAuth2 login with the provider ``key``: its issuer, scopes and SMTP
    server (a custom provider keeps what the profile has)."""
    provider = PROVIDERS[key]
    profile.auth = "oauth2"
    profile.oauth_provider = key
    if key == "custom":
        return
    profile.oauth_issuer = provider.issuer
    profile.oauth_scopes = provider.scopes
    profile.oauth_auth_url = profile.oauth_token_url = ""
    profile.host, profile.port, profile.security = (
        provider.smtp_host, provider.smtp_port, provider.smtp_security)


# -- errors --------------------------------------------------------------------------------


class OAuthError(RuntimeError):
    """A sign-in, refresh or revocation failed. The text is a sentence for the person (never
    a token); ``kind`` says what happened: "config", "network", "tls", "refused", "protocol",
    "cancelled", "timeout", "keyring", "browser"; ``error`` is the provider's error code."""

    def __init__(self, sentence: str, kind: str = "refused", error: str = "",
                 description: str = "") -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.kind = kind
        self.error = error
        self.description = description  # the provider's error_description, on one line


class SignInNeeded(OAuthError):
    """No usable saved sign-in (none saved, or the provider refused it): sign in again."""

    def __init__(self, sentence: str, error: str = "") -> None:
        super().__init__(sentence, "signin", error)


# -- small helpers -------------------------------------------------------------------------


def key_name(profile_id: str) -> str:
    """The keyring entry (under the app's service) that holds the profile's saved sign-in."""
    return f"{profile_id}{KEY_SUFFIX}"


def client_secret_name(profile_id: str) -> str:
    """The keyring entry of the profile's client secret (Google's desktop clients have one,
    which Google says is not confidential; still never in a file)."""
    return f"{profile_id}{CLIENT_SECRET_SUFFIX}"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge) for S256 (RFC 7636 §4.1, §4.2): 64 random bytes as 86
    unreserved characters, and the unpadded base64url of their SHA-256."""
    verifier = _b64url(_random.token_bytes(64))
    return verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_loopback(host: str) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """``url`` if it may carry a token: https, or http to a loopback host. OAuthError
    ("config") if not."""
    parts = urllib.parse.urlsplit((url or "").strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OAuthError(f"The {what} \u201c{url}\u201d is not an http(s) address.", "config")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise OAuthError(f"The {what} {url} is not https: mailgui sends sign-in codes and "
                         "tokens only over an encrypted connection (plain http only to this "
                         "computer).", "config")
    if parts.username or parts.password:
        raise OAuthError(f"The {what} must not hold a user name or password.", "config")
    return url.strip()


def _provider_error(data: dict[str, Any]) -> tuple[str, str]:
    """(error code, its description) from an RFC 6749 §5.2 error answer, cut to a line."""
    code = str(data.get("error") or "")[:80]
    description = " ".join(str(data.get("error_description") or "").split())[:300]
    return code, description


def _said(code: str, description: str) -> str:
    if code and description:
        return f"{code}: {description}"
    return code or description


class HTTP:
    """The few HTTP requests OAuth needs, with urllib: TLS verified (the system's CAs, or
    ``context``), no redirects followed, answers of at most MAX_RESPONSE bytes."""

    def __init__(self, context: ssl.SSLContext | None = None,
                 timeout: float = HTTP_TIMEOUT) -> None:
        self.context = context or ssl.create_default_context()
        self.timeout = timeout

        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # a redirect is an answer like any other (an error)

        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.context), _NoRedirect())

    def get_json(self, url: str, what: str) -> dict[str, Any]:
        check_url(url, "address")  # https, or http to this computer: never file: or others
        return self._json(urllib.request.Request(  # noqa: S310 - checked above
            url, headers={"Accept": "application/json"}), what)

    def post_form(self, url: str, form: dict[str, str], what: str) -> dict[str, Any]:
        check_url(url, "address")
        body = urllib.parse.urlencode(form).encode("ascii")
        headers = {"Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded"}
        request = urllib.request.Request(  # noqa: S310 - checked above
            url, data=body, method="POST", headers=headers)
        return self._json(request, what)

    def _json(self, request: urllib.request.Request, what: str) -> dict[str, Any]:
        host = urllib.parse.urlsplit(request.full_url).netloc
        status = 0
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                raw = response.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                raw = exc.read(MAX_RESPONSE + 1)
            except OSError:
                raw = b""
            finally:
                exc.close()
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise OAuthError(f"The certificate of {host} is not trusted "
                                 f"({reason.verify_message}); {what} was not done.",
                                 "tls") from None
            if isinstance(reason, ssl.SSLError):
                raise OAuthError(f"The TLS connection to {host} failed ({reason.reason}); "
                                 f"{what} was not done.", "tls") from None
            if isinstance(reason, TimeoutError):
                raise OAuthError(f"{host} did not answer within {self.timeout:g} seconds; "
                                 f"{what} was not done.", "timeout") from None
            if isinstance(reason, socket.gaierror):
                raise OAuthError(f"The host name {host} could not be found; {what} was not "
                                 "done.", "network") from None
            why = getattr(reason, "strerror", None) or str(reason)
            raise OAuthError(f"Could not reach {host} ({why}); {what} was not done.",
                             "network") from None
        except TimeoutError:
            raise OAuthError(f"{host} did not answer within {self.timeout:g} seconds; "
                             f"{what} was not done.", "timeout") from None
        except OSError as exc:
            raise OAuthError(f"Could not talk to {host} ({exc.strerror or exc}); {what} was "
                             "not done.", "network") from None
        if len(raw) > MAX_RESPONSE:
            raise OAuthError(f"{host} sent an answer too long to be one ({what}).", "protocol")
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OAuthError(f"{host} did not answer with JSON (HTTP {status}); {what} was "
                             "not done. Check the endpoint addresses.", "protocol")
        if status >= 400 or "error" in data:
            code, description = _provider_error(data)
            raise OAuthError(f"{host} refused {what}"
                             f" ({_said(code, description) or f'HTTP {status}'}).",
                             "refused", code, description)
        return data


# -- endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str = ""


def discover(issuer: str, http: HTTP | None = None) -> Endpoints:
    """Worker side. The endpoints of ``issuer`` from its metadata: OpenID Connect's
    ``/.well-known/openid-configuration`` (appended to the issuer), else RFC 8414's
    ``/.well-known/oauth-authorization-server`` (inserted before its path). The metadata
    must name the same issuer (RFC 8414 §3.3)."""
    issuer = check_url(issuer, "issuer").rstrip("/")
    http = http or HTTP()
    parts = urllib.parse.urlsplit(issuer)
    candidates = [
        f"{issuer}/.well-known/openid-configuration",
        urllib.parse.urlunsplit((parts.scheme, parts.netloc,
                                 "/.well-known/oauth-authorization-server" + parts.path, "", "")),
    ]
    failures: list[str] = []
    for url in candidates:
        try:
            meta = http.get_json(url, "the discovery of its endpoints")
        except OAuthError as exc:
            if exc.kind in ("tls", "network", "timeout"):
                raise
            failures.append(exc.sentence)
            continue
        said = str(meta.get("issuer") or "").rstrip("/")
        if said != issuer:
            raise OAuthError(f"The metadata at {url} is for the issuer \u201c{said}\u201d, not "
                             f"{issuer}: it was not used.", "config")
        try:
            return Endpoints(
                check_url(str(meta.get("authorization_endpoint") or ""),
                          "authorization endpoint"),
                check_url(str(meta.get("token_endpoint") or ""), "token endpoint"),
                check_url(str(meta["revocation_endpoint"]), "revocation endpoint")
                if meta.get("revocation_endpoint") else "")
        except OAuthError as exc:
            raise OAuthError(f"The metadata of {issuer} can't be used: {exc.sentence}",
                             "config") from None
    raise OAuthError(f"{issuer} publishes no OAuth metadata (tried openid-configuration and "
                     "oauth-authorization-server). Enter its authorization and token "
                     "endpoints by hand.", "config")


def _microsoft_endpoints(issuer: str) -> Endpoints:
    """login.microsoftonline.com/<tenant>/v2.0 -> its /oauth2/v2.0/ endpoints (common,
    organizations, consumers, or a tenant's ID or domain)."""
    parts = urllib.parse.urlsplit(issuer or MICROSOFT.issuer)
    tenant = parts.path.strip("/").split("/")[0] or "common"
    base = f"{parts.scheme}://{parts.netloc}/{tenant}/oauth2/v2.0"
    return Endpoints(check_url(f"{base}/authorize", "authorization endpoint"),
                     check_url(f"{base}/token", "token endpoint"))


def endpoints_for(profile: Profile, http: HTTP | None = None) -> Endpoints:
    """Worker side (a custom issuer may be asked). Where the profile signs in."""
    key = profile.oauth_provider or "custom"
    if key == "google":
        return Endpoints(GOOGLE.auth_url, GOOGLE.token_url, GOOGLE.revocation_url)
    if key == "microsoft":
        return _microsoft_endpoints(profile.oauth_issuer)
    auth, token = profile.oauth_auth_url.strip(), profile.oauth_token_url.strip()
    if auth and token:
        return Endpoints(check_url(auth, "authorization endpoint"),
                         check_url(token, "token endpoint"))
    if not profile.oauth_issuer.strip():
        raise OAuthError("Enter the issuer of the custom provider, or its authorization and "
                         "token endpoints.", "config")
    found = discover(profile.oauth_issuer, http)
    return Endpoints(auth or found.authorization, token or found.token, found.revocation)


def _provider_of(profile: Profile) -> Provider:
    return PROVIDERS.get(profile.oauth_provider or "custom", CUSTOM)


# -- the saved sign-in (keyring) --------------------------------------------------------------


@dataclass(frozen=True)
class SavedSignIn:
    """What the keyring holds for a profile, but the token: for the editor's line."""

    account: str
    client_id: str
    issuer: str
    scopes: str
    signed_in: str  # ISO date and time
    revocable: bool

    @property
    def sentence(self) -> str:
        who = self.account or "the account you chose"
        return f"Signed in as {who} until revoked."


@dataclass
class _Saved:
    refresh_token: str = field(repr=False)
    client_id: str
    token_url: str
    revocation_url: str = ""
    account: str = ""
    issuer: str = ""
    scopes: str = ""
    signed_in: str = ""

    def public(self) -> SavedSignIn:
        return SavedSignIn(self.account, self.client_id, self.issuer, self.scopes,
                           self.signed_in, bool(self.revocation_url))


def _read_saved(secrets: SecretStore, profile_id: str) -> _Saved | None:
    try:
        text = secrets.get(key_name(profile_id))
    except KeyringUnavailable as exc:
        raise OAuthError(f"The saved sign-in could not be read from the system keyring "
                         f"({exc}).", "keyring") from None
    if text is None:
        return None
    try:
        data = json.loads(text)
        return _Saved(**{k: str(data.get(k) or "") for k in (
            "refresh_token", "client_id", "token_url", "revocation_url", "account",
            "issuer", "scopes", "signed_in")})
    except (ValueError, TypeError, AttributeError):
        return None  # not ours (or damaged): as if there were none


def _write_saved(secrets: SecretStore, profile_id: str, saved: _Saved) -> None:
    payload = json.dumps({"v": 1, **saved.__dict__})
    try:
        secrets.set(key_name(profile_id), payload)
    except KeyringUnavailable as exc:
        raise OAuthError(f"The sign-in could not be saved in the system keyring ({exc}); "
                         "nothing was kept.", "keyring") from None


def saved_sign_in(secrets: SecretStore, profile_id: str) -> SavedSignIn | None:
    """Worker side. The profile's saved sign-in (without its token), or None."""
    saved = _read_saved(secrets, profile_id)
    return saved.public() if saved is not None and saved.refresh_token else None


def store_client_secret(secrets: SecretStore, profile_id: str, value: str) -> None:
    """Worker side. Keep (or, given "", forget) the profile's client secret in the keyring."""
    if value:
        secrets.set(client_secret_name(profile_id), value)
    else:
        try:
            secrets.delete(client_secret_name(profile_id))
        except KeyringUnavailable:
            pass


def stored_client_secret(secrets: SecretStore | None, profile_id: str) -> str:
    """Worker side. The profile's client secret from the keyring, or ""."""
    if secrets is None:
        return ""
    try:
        return secrets.get(client_secret_name(profile_id)) or ""
    except KeyringUnavailable:
        return ""


# -- access tokens in memory -------------------------------------------------------------------


@dataclass
class _Access:
    token: str = field(repr=False)
    expires_at: float | None  # time.monotonic(); None: not said (used until refused)
    lifetime: float | None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class _Cache:
    """The access tokens of this process, by ``_cache_key``; one refresh at a time per
    profile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _Access | None] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def lock_for(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str]) -> _Access | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: tuple[str, str], access: _Access | None) -> None:
        with self._lock:
            self._tokens[key] = access

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


_CACHE = _Cache()


def _cache_key(secrets: SecretStore | None, profile: Profile) -> tuple[str, str]:
    """A profile's access token in memory is for its client ID too (one changed: none)."""
    service = secrets.service if secrets is not None else ""
    return service, f"{profile.id}\n{profile.oauth_client_id.strip()}"


def _access_from(answer: dict[str, Any]) -> _Access:
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError("The provider's answer holds no access token.", "protocol")
    kind = str(answer.get("token_type") or "bearer").lower()
    if kind != "bearer":
        raise OAuthError(f"The provider issued a {kind} token; SMTP takes bearer tokens.",
                         "protocol")
    lifetime: float | None
    try:
        lifetime = float(answer["expires_in"])
    except (KeyError, TypeError, ValueError):
        lifetime = None
    expires = time.monotonic() + lifetime if lifetime is not None else None
    return _Access(token, expires, lifetime)


def _account_from(answer: dict[str, Any]) -> str:
    """The address of the account signed in, from the ID token if the provider sent one
    (OpenID Connect; it came straight from the token endpoint over TLS, OIDC §3.1.3.7)."""
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return ""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return ""
    if not isinstance(claims, dict):
        return ""
    for claim in ("email", "preferred_username", "upn"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value[:200]
    return ""


def _refused_saved(code: str, description: str) -> SignInNeeded:
    said = f" ({code})" if code else ""
    why = f" The provider said: {description}" if description else ""
    return SignInNeeded(f"Sign in again: the provider refused the saved sign-in{said}.{why}"
                        .rstrip(), code)


class TokenSource:
    """A thread-safe callable returning a fresh access token for ``profile``, as mailcore's
    ``oauth_token=`` wants: called on the connection's thread just before AUTH, it returns
    the token held in memory, or refreshes it first with the refresh token from the keyring
    when it expires within ``REFRESH_MARGIN`` (or a quarter of its lifetime). A rotated
    refresh token is saved back to the keyring. ``invalidate()`` drops the token in memory
    (the server said it expired): the next call refreshes.

    Raises ``SignInNeeded`` (no saved sign-in, or the provider refused it: "Sign in again:
    ...") or ``OAuthError`` (network, TLS, keyring), whose text is the sentence to show.
    """

    def __init__(self, profile: Profile, secrets: SecretStore | None, *,
                 http: HTTP | None = None) -> None:
        self.profile = profile
        self.secrets = secrets
        self.http = http
        self.refreshed = 0  # how many refreshes this source made (the transcript says so)
        self._key = _cache_key(secrets, profile)

    def __repr__(self) -> str:
        return f"TokenSource(profile={self.profile.name!r})"

    def invalidate(self) -> None:
        _CACHE.drop(self._key)

    def __call__(self) -> str:
        with _CACHE.lock_for(self._key):
            access = _CACHE.get(self._key)
            if access is not None and not self._expiring(access):
                return access.token
            return self._refresh().token

    @staticmethod
    def _expiring(access: _Access) -> bool:
        if access.expires_at is None:
            return False
        margin = REFRESH_MARGIN
        if access.lifetime:
            margin = min(margin, access.lifetime / 4)
        return time.monotonic() >= access.expires_at - margin

    def _refresh(self) -> _Access:
        name = f"\u201c{self.profile.name}\u201d"
        if self.secrets is None:
            raise SignInNeeded(f"The profile {name} signs in with OAuth2, whose sign-in is kept "
                               "in the system keyring, and no secure keyring is available.")
        saved = _read_saved(self.secrets, self.profile.id)
        if saved is None or not saved.refresh_token:
            raise SignInNeeded(f"The profile {name} is not signed in: open Profiles and press "
                               "\u201cSign in\u2026\u201d.")
        if saved.client_id != self.profile.oauth_client_id.strip():
            raise SignInNeeded(f"Sign in again: the client ID of {name} changed since the last "
                               "sign-in.")
        form = {"grant_type": "refresh_token", "refresh_token": saved.refresh_token,
                "client_id": saved.client_id}
        if self.profile.oauth_scopes.strip():
            form["scope"] = self.profile.oauth_scopes.strip()
        client_secret = stored_client_secret(self.secrets, self.profile.id)
        if client_secret:
            form["client_secret"] = client_secret
        try:
            answer = (self.http or HTTP()).post_form(check_url(saved.token_url, "token endpoint"),
                                                     form, "the token refresh")
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "unauthorized_client", "invalid_client"):
                if exc.error == "invalid_grant":  # revoked or expired for good: of no more use
                    try:
                        _delete(self.secrets, self.profile.id)
                    except OAuthError:
                        pass  # (the sentence below says what matters)
                raise _refused_saved(exc.error, exc.description) from None
            raise
        access = _access_from(answer)
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != saved.refresh_token:
            saved.refresh_token = rotated
            _write_saved(self.secrets, self.profile.id, saved)
        _CACHE.put(self._key, access)
        self.refreshed += 1
        return access


# -- the sign-in --------------------------------------------------------------------------------

_DONE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>mailgui</title></head><body style="font-family:sans-serif;margin:3em">
<h1>{title}</h1><p>{text}</p></body></html>"""


class _Redirect(http.server.ThreadingHTTPServer):
    """The loopback listener: it waits for one answer on "/", with the right ``state``."""

    daemon_threads = True

    def __init__(self, host: str, state: str) -> None:
        super().__init__((host, 0), _RedirectHandler)
        self.state = state
        self.answer: dict[str, str] | None = None
        self.arrived = threading.Event()
        self.answer_lock = threading.Lock()


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    server: _Redirect
    timeout = 10  # a connection that sends nothing (a browser's preconnect) is dropped

    def log_message(self, *args: Any) -> None:  # never log: the query holds the code
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/":
            self._page(404, "Not here", "This address belongs to mailgui's sign-in.")
            return
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        with self.server.answer_lock:
            if self.server.answer is not None:
                self._page(409, "Already answered", "mailgui already has its answer. You "
                           "can close this tab.")
                return
            if not _random.compare_digest(query.get("state", ""), self.server.state):
                query = {"error": "state_mismatch"}
            self.server.answer = query
        if query.get("error"):
            self._page(400, "Sign-in failed", "The sign-in did not complete; mailgui says "
                       "why. You can close this tab.")
        else:
            self._page(200, "Signed in", "mailgui has your sign-in. You can close this tab "
                       "and go back to mailgui.")
        self.server.arrived.set()

    def _page(self, status: int, title: str, text: str) -> None:
        body = _DONE_PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


BrowserOpener = Callable[[str], object]


class SignIn:
    """One sign-in in the browser for ``profile``: ``run()`` (worker side) finds the
    endpoints, listens on the loopback, opens the browser at the authorization address,
    waits for the answer (``timeout`` seconds, or until ``cancel()``), exchanges the code
    for tokens, and keeps the refresh token in the keyring and the access token in memory.
    Returns the ``SavedSignIn``; raises ``OAuthError`` with the sentence to show.
    """

    def __init__(self, profile: Profile, secrets: SecretStore | None, *,
                 open_browser: BrowserOpener | None = None,
                 timeout: float = SIGN_IN_TIMEOUT, http: HTTP | None = None,
                 client_secret: str | None = None) -> None:
        self.profile = profile
        self.secrets = secrets
        self.open_browser = open_browser or webbrowser.open
        self.timeout = timeout
        self.http = http or HTTP()
        self.client_secret = client_secret
        self.authorization_url = ""  # set once run() has built it (shown if no browser opens)
        self._cancelled = threading.Event()
        self._server: _Redirect | None = None

    def __repr__(self) -> str:
        return f"SignIn(profile={self.profile.name!r})"

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop waiting for the browser (thread-safe, never blocks)."""
        self._cancelled.set()
        server = self._server
        if server is not None:
            server.arrived.set()

    def _check(self) -> None:
        if self._cancelled.is_set():
            raise OAuthError("The sign-in was cancelled; nothing was saved.", "cancelled")

    def run(self) -> SavedSignIn:
        profile = self.profile
        client_id = profile.oauth_client_id.strip()
        if not client_id:
            raise OAuthError("Enter the client ID of your app registration (the README says "
                             "how to make one).", "config")
        if self.secrets is None:
            raise OAuthError("No secure keyring is available, so a sign-in can't be kept: "
                             "mailgui keeps refresh tokens only in the system keyring.",
                             "keyring")
        self._check()
        endpoints = endpoints_for(profile, self.http)
        self._check()
        provider = _provider_of(profile)
        verifier, challenge = pkce_pair()
        state = _random.token_urlsafe(24)
        try:
            server = _Redirect("127.0.0.1", state)
        except OSError as exc:
            raise OAuthError(f"mailgui could not listen on this computer for the browser's "
                             f"answer ({exc.strerror or exc}).", "network") from None
        self._server = server
        redirect_uri = f"http://{provider.redirect_host}:{server.server_address[1]}/"
        params = {"response_type": "code", "client_id": client_id,
                  "redirect_uri": redirect_uri, "state": state,
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        if profile.oauth_scopes.strip():
            params["scope"] = " ".join(profile.oauth_scopes.split())
        if profile.username:
            params["login_hint"] = profile.username
        params.update(dict(provider.extra))
        joiner = "&" if urllib.parse.urlsplit(endpoints.authorization).query else "?"
        self.authorization_url = (endpoints.authorization + joiner
                                  + urllib.parse.urlencode(params, quote_via=urllib.parse.quote))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="oauth-redirect", daemon=True)
        thread.start()
        try:
            self._check()
            opened = self.open_browser(self.authorization_url)
            if opened is False:
                raise OAuthError("No web browser could be opened for the sign-in. Open this "
                                 f"address in one: {self.authorization_url}", "browser")
            if not server.arrived.wait(self.timeout):
                raise OAuthError(f"The browser did not come back within {self.timeout:g} "
                                 "seconds; nothing was saved. Press \u201cSign in\u2026\u201d to "
                                 "try again.", "timeout")
            self._check()
            answer = server.answer or {}
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._server = None
        return self._exchange(answer, endpoints, redirect_uri, verifier)

    def _exchange(self, answer: dict[str, str], endpoints: Endpoints, redirect_uri: str,
                  verifier: str) -> SavedSignIn:
        profile = self.profile
        if answer.get("error") == "state_mismatch":
            raise OAuthError("The browser came back with an answer to another sign-in (its "
                             "state did not match); nothing was saved. Sign in again.",
                             "protocol", "state_mismatch")
        if answer.get("error"):
            code, description = _provider_error(answer)
            hint = (" You declined the access mailgui asked for." if code == "access_denied"
                    else "")
            raise OAuthError(f"The provider did not sign you in ({_said(code, description)})."
                             f"{hint}", "refused", code)
        code = answer.get("code", "")
        if not code:
            raise OAuthError("The browser came back without an authorization code; nothing "
                             "was saved.", "protocol")
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "client_id": profile.oauth_client_id.strip(),
                "code_verifier": verifier}
        client_secret = self.client_secret
        if client_secret is None:
            client_secret = stored_client_secret(self.secrets, profile.id)
        if client_secret:
            form["client_secret"] = client_secret
        tokens = self.http.post_form(endpoints.token, form, "the sign-in")
        access = _access_from(tokens)
        refresh = tokens.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            hint = (" Add offline_access to the scopes." if profile.oauth_provider != "google"
                    else "")
            raise OAuthError("The provider signed you in but gave no refresh token, so "
                             f"mailgui could not send again after an hour.{hint}",
                             "protocol")
        saved = _Saved(refresh, profile.oauth_client_id.strip(), endpoints.token,
                       endpoints.revocation, _account_from(tokens) or profile.username,
                       profile.oauth_issuer, " ".join(str(tokens.get("scope") or
                                                          profile.oauth_scopes).split()),
                       time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        assert self.secrets is not None
        _write_saved(self.secrets, profile.id, saved)
        _CACHE.put(_cache_key(self.secrets, profile), access)
        return saved.public()


# -- signing out -------------------------------------------------------------------------------


def sign_out(profile: Profile, secrets: SecretStore, *, http: HTTP | None = None) -> str:
    """Worker side. Ask the provider to revoke the saved refresh token (RFC 7009, when it
    has a revocation endpoint), then remove it from the keyring and the access token from
    memory. Returns the sentence saying what was done; the token is removed from this
    computer even when the provider could not be asked (the sentence says so)."""
    _CACHE.drop(_cache_key(secrets, profile))
    saved = _read_saved(secrets, profile.id)
    if saved is None:
        _delete(secrets, profile.id)
        return "Not signed in."
    sentence = "Signed out: the provider revoked the sign-in and it was removed from the keyring."
    if saved.revocation_url:
        form = {"token": saved.refresh_token, "token_type_hint": "refresh_token",
                "client_id": saved.client_id}
        client_secret = stored_client_secret(secrets, profile.id)
        if client_secret:
            form["client_secret"] = client_secret
        try:
            (http or HTTP()).post_form(check_url(saved.revocation_url, "revocation endpoint"),
                                       form, "the revocation")
        except OAuthError as exc:
            sentence = (f"Signed out on this computer (the sign-in was removed from the "
                        f"keyring), but {exc.sentence[:1].lower()}{exc.sentence[1:]}")
    else:
        sentence = ("Signed out on this computer: the sign-in was removed from the keyring. "
                    "This provider offers no way to revoke it from here; remove mailgui's "
                    "access in your account's security settings to revoke it.")
    _delete(secrets, profile.id)
    return sentence


def _delete(secrets: SecretStore, profile_id: str) -> None:
    try:
        secrets.delete(key_name(profile_id))
    except KeyringUnavailable as exc:
        raise OAuthError(f"The sign-in could not be removed from the system keyring ({exc}).",
                         "keyring") from None


def forget(profile: Profile, secrets: SecretStore, *, http: HTTP | None = None) -> str:
    """Worker side. The profile is deleted: sign out (revoking where possible) and remove its
    client secret too."""
    sentence = sign_out(profile, secrets, http=http)
    store_client_secret(secrets, profile.id, "")
    return sentence
