"""A real OAuth 2.0 authorization server and an SMTP server that takes its tokens, on
127.0.0.1, for the test suites. No mocks: HTTP over loopback sockets, aiosmtpd for SMTP.

The protocol is **authlib**'s (``authlib.oauth2``: the same server classes its Flask and
Django integrations are built on), bound here to ``http.server`` the way authlib's docs
describe a custom framework integration: :class:`_OAuth2Server` subclasses
``authlib.oauth2.AuthorizationServer`` (``create_oauth2_request``, ``create_json_request``,
``handle_response``, ``send_signal``, ``query_client``, ``save_token``). This file only
stores clients, codes and tokens in memory and draws the login page; authlib decides what is
valid and what each endpoint answers:

* RFC 6749 authorization code grant (``AuthorizationCodeGrant``) and refresh token grant
  (``RefreshTokenGrant``), for public clients (``token_endpoint_auth_method`` "none": a
  ``client_id``, no secret) and confidential ones (``client_secret_basic``/``_post``);
  refresh token rotation is on by default (``rotate_refresh_tokens``: the old refresh token
  stops working when a new one is issued; using it again revokes the whole grant, as OAuth
  2.0 Security BCP section 4.14 advises), a reused code revokes what it gave (RFC 6749
  section 4.1.2);
* RFC 7636 PKCE with authlib's ``CodeChallenge`` extension, S256 only and required at the
  authorization endpoint too (``plain`` or no challenge is refused there);
* RFC 8252 loopback redirects: a redirect URI on 127.0.0.1, [::1] or localhost matches a
  registered one whatever its port (the client model's ``check_redirect_uri``);
* RFC 7009 ``/revoke`` (``RevocationEndpoint``), RFC 7662 ``/introspect``
  (``IntrospectionEndpoint``), ``/userinfo`` behind authlib's ``ResourceProtector`` with a
  ``BearerTokenValidator``, an empty ``/jwks`` (tokens are opaque, from
  ``BearerTokenGenerator``), and discovery at ``/.well-known/openid-configuration`` and
  ``/.well-known/oauth-authorization-server`` (RFC 8414), checked by authlib's
  ``AuthorizationServerMetadata``.

``/authorize`` approves at once for ``default_user`` (or a known ``login_hint``) when
``auto_approve`` is True; otherwise it answers with a small login form (``username``,
``password``, hidden ``request``) that an HTTP client can post: :func:`browse` does exactly
what a browser would (GET the authorization URL, post the form if one comes, follow the
redirect to the application's loopback listener). Set ``deny = True`` to have the user say no
(``error=access_denied`` with no description, as Google sends it; a string is sent as the
``error_description``).

Tests control time and state without sleeping: :meth:`AuthServer.expire` (one token) and
:meth:`AuthServer.expire_access_tokens` (all), :meth:`AuthServer.revoke` (a refresh token
revokes its access tokens too), :meth:`AuthServer.issue` (tokens without the browser step),
and they can look at :attr:`AuthServer.grants` (the grant types asked for, in order) and
:attr:`AuthServer.requests` (method and path of every request; never a query or a body).

:class:`OAuthSMTPServer` is an aiosmtpd server (see ``tests.support.servers.SMTPServer``)
with the SASL mechanisms XOAUTH2 and OAUTHBEARER (RFC 7628) as ``auth_NAME`` methods of its
handler. Each token is checked with the authorization server's introspection endpoint (as a
resource server: a confidential client, HTTP Basic); a refused one gets the RFC 7628 JSON
error challenge (``{"status": "invalid_token", ...}`` for OAUTHBEARER, Google's
``{"status": "401", "schemes": "Bearer", "scope": ...}`` for XOAUTH2), then, once the client
has answered it, ``535 5.7.8``. ``oauth_attempts`` records each exchange: mechanism, user,
whether it passed, the status sent, and what the client answered to the error challenge.

pytest fixtures ``auth_server`` and ``oauth_smtp_server`` (both function-scoped) are defined
at the end; import them into a conftest or a test module.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session
from authlib.oauth2 import AuthorizationServer, OAuth2Error, ResourceProtector
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from tests.support.servers import LOCALHOST, RecordingHandler, SMTPServer

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_SCOPE",
    "RESOURCE_SERVER_ID",
    "TEST_MAILBOX",
    "TEST_MAILBOX_PASSWORD",
    "AuthServer",
    "BrowseResult",
    "OAuthHandler",
    "OAuthSMTPServer",
    "auth_server",
    "browse",
    "code_flow",
    "oauth_smtp_server",
    "pkce_pair",
    "refresh",
    "token_request",
]

TEST_MAILBOX = "alice@example.test"
TEST_MAILBOX_PASSWORD = "wonderland"  # the login form's password (not an SMTP password)
DEFAULT_CLIENT_ID = "mailcore-test-client"
DEFAULT_SCOPE = "https://mail.example.test/smtp"
RESOURCE_SERVER_ID = "mailcore-test-smtp"  # the SMTP server, when it introspects a token
_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "::1", "localhost")
_CODE_LIFETIME = 120.0
_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 section 4.2)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, _s256(verifier)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- the storage: authlib's model mixins over plain objects in memory --------------------------


@dataclass
class _Client(ClientMixin):
    client_id: str
    redirect_uris: list[str]  # loopback ones match any port; empty: any loopback redirect
    secret: str = ""  # "" for a public client (token_endpoint_auth_method "none")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # a native app always names its loopback redirect

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""  # the server's scopes_supported is checked by authlib

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        parts = urllib.parse.urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname is None or parts.fragment:
            return False
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if host not in _LOOPBACK_HOSTS:
            return False
        if not self.redirect_uris:
            return True
        for uri in self.redirect_uris:  # RFC 8252 section 7.3: any port on a loopback redirect
            other = urllib.parse.urlsplit(uri)
            if (other.scheme, other.hostname, other.path or "/") == (
                    parts.scheme, parts.hostname, parts.path or "/"):
                return True
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret) and secrets.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.secret:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code(AuthorizationCodeMixin):
    user: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float
    grant: str  # the grant (one sign-in) it belongs to
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class _Token(TokenMixin):
    value: str = field(repr=False)
    kind: str  # "access" or "refresh"
    user: str
    client_id: str
    scope: str
    expires_at: float
    grant: str
    issued_at: float = field(default_factory=time.time)
    active: bool = True
    revoked_grants: set[str] = field(default_factory=set, repr=False)  # the server's set

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - self.issued_at))

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return not self.active or self.grant in self.revoked_grants

    def get_user(self) -> str:
        return self.user


# -- authlib, bound to http.server ---------------------------------------------------------------


class _Payload(OAuth2Payload):
    def __init__(self, lists: Mapping[str, list[str]]) -> None:
        self._lists = defaultdict(list, {k: list(v) for k, v in lists.items()})
        self._data = {k: v[0] for k, v in lists.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list]:
        return self._lists


class _Request(OAuth2Request):
    """An OAuth2Request from what http.server read: the query and the form, kept apart."""

    def __init__(self, method: str, uri: str, headers: Any, body: bytes = b"") -> None:
        super().__init__(method, uri, headers=headers)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query, keep_blank_values=True)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        self._args = {k: v[0] for k, v in query.items()}
        self._form = {k: v[0] for k, v in form.items()}
        merged: dict[str, list[str]] = {k: list(v) for k, v in query.items()}
        for key, values in form.items():
            merged.setdefault(key, []).extend(values)
        self.payload = _Payload(merged)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):
    def __init__(self, body: bytes) -> None:
        self._body = body

    @property
    def data(self) -> Any:
        return json.loads(self._body or b"{}")


class _OAuth2Server(AuthorizationServer):
    """authlib's AuthorizationServer with storage in :class:`AuthServer` (``auth``)."""

    def __init__(self, auth: AuthServer) -> None:
        super().__init__(scopes_supported=auth.scopes_supported)
        self.auth = auth

    def query_client(self, client_id: str) -> _Client | None:
        return self.auth._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.refresh_token is not None:
            grant = request.refresh_token.grant
        elif request.authorization_code is not None:
            grant = request.authorization_code.grant
        else:
            grant = secrets.token_hex(8)
        self.auth._store(token, request.user, request.client.get_client_id(), grant)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        method, uri, headers, body = request
        return _Request(method, uri, headers, body)

    def create_json_request(self, request: Any) -> JsonRequest:
        method, uri, headers, body = request
        json_request = JsonRequest(method, uri, headers)
        json_request.payload = _JsonPayload(body)
        return json_request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list]:
        return status, body, list(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # no signal system: the tests look at the storage


class _PKCE(CodeChallenge):
    """authlib's PKCE extension, S256 only; a challenge is required at /authorize too (authlib
    checks ``required`` only at the token endpoint)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if self.required and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE with S256 is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method'")
        super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = _AUTH_METHODS

    @property
    def auth(self) -> AuthServer:
        return self.server.auth

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        deny = self.auth.deny
        if not grant_user or deny:
            description = deny if isinstance(deny, str) else ""
            raise AccessDeniedError(description=description, redirect_uri=redirect_uri)
        return super().create_authorization_response(redirect_uri, grant_user)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.auth._codes[code] = _Code(
            request.user, request.client.get_client_id(), request.payload.redirect_uri or "",
            request.scope or "", data.get("code_challenge", ""),
            data.get("code_challenge_method", ""), time.time() + _CODE_LIFETIME,
            secrets.token_hex(8))

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        item = self.auth._codes.get(code)
        if item is None or item.client_id != client.client_id or item.expires_at <= time.time():
            return None
        if item.used:  # RFC 6749 section 4.1.2: revoke what the code gave
            self.auth._revoke_grant(item.grant)
            return None
        return item

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        authorization_code.used = True  # kept, so that a second use is recognised

    def authenticate_user(self, authorization_code: _Code) -> str:
        return authorization_code.user


class _RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = _AUTH_METHODS

    @property
    def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # noqa: N802 - authlib's name
        return self.server.auth.rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        auth = self.server.auth
        item = auth._tokens.get(refresh_token)
        if item is None or item.kind != "refresh":
            return None
        if not item.active and auth.rotate_refresh_tokens and (
                item.grant not in auth._revoked_grants):
            auth._revoke_grant(item.grant)  # a rotated-out token came back: stolen?
            return None
        if item.is_revoked() or item.is_expired():
            return None
        return item

    def authenticate_user(self, refresh_token: _Token) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        if self.server.auth.rotate_refresh_tokens:
            refresh_token.active = False


class _TokenQueries:
    server: _OAuth2Server
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return self.server.auth._tokens.get(token_string)


class _Revocation(_TokenQueries, RevocationEndpoint):
    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        self.server.auth._revoke(token.value)


class _Introspection(_TokenQueries, IntrospectionEndpoint):
    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        self.server.auth.introspections += 1
        return super().query_token(token_string, token_type_hint)

    def check_permission(self, token: _Token, client: _Client, request: OAuth2Request) -> bool:
        return client.client_id in (RESOURCE_SERVER_ID, token.client_id)

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        return {"active": True, "scope": token.scope, "client_id": token.client_id,
                "username": token.user, "sub": token.user,
                "token_type": "Bearer" if token.kind == "access" else "refresh_token",
                "exp": int(token.expires_at), "iat": int(token.issued_at),
                "iss": self.server.auth.issuer}


class _AccessTokens(BearerTokenValidator):
    def __init__(self, auth: AuthServer) -> None:
        super().__init__()
        self.auth = auth

    def authenticate_token(self, token_string: str) -> _Token | None:
        item = self.auth._tokens.get(token_string)
        return item if item is not None and item.kind == "access" else None


@dataclass
class BrowseResult:
    """What :func:`browse` ended on: the last URL, its status and body, and the query of the
    redirect to the application (``code``, ``state``, or ``error``)."""

    url: str
    status: int
    body: str
    redirect_query: dict[str, str] = field(default_factory=dict)


class AuthServer:
    """An OAuth 2.0 authorization server on 127.0.0.1 (see the module's notes).

    ``clients`` maps each public client_id to its registered redirect URIs (loopback ones
    match any port; an empty list takes any loopback redirect); ``confidential_clients`` maps
    a client_id to its secret (any loopback redirect). ``users`` maps mailbox to login-form
    password. Lifetimes are in seconds, read at each issue. ``issuer`` is known once started.
    """

    def __init__(
        self,
        *,
        access_token_lifetime: float = 3600.0,
        refresh_token_lifetime: float = 30 * 86400.0,
        rotate_refresh_tokens: bool = True,
        clients: Mapping[str, Sequence[str]] | None = None,
        confidential_clients: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        default_user: str = TEST_MAILBOX,
        auto_approve: bool = True,
        scopes_supported: Sequence[str] = ("openid", "email", "offline_access", DEFAULT_SCOPE),
        path: str = "",
        revocation: bool = True,
        claimed_issuer: str = "",
        record_forms: bool = False,
    ) -> None:
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.clients: dict[str, list[str]] = {
            k: list(v) for k, v in (clients or {DEFAULT_CLIENT_ID: []}).items()}
        self.users = dict(users or {TEST_MAILBOX: TEST_MAILBOX_PASSWORD})
        self.default_user = default_user
        self.auto_approve = auto_approve
        # the user refuses the consent: error=access_denied (a string: its error_description)
        self.deny: bool | str = False
        self.scopes_supported = list(scopes_supported)
        self.path = path.rstrip("/")  # an issuer with a path ("/tenant"): RFC 8414 discovery only
        self.revocation = revocation  # False: no revocation endpoint (as Entra ID)
        self.claimed_issuer = claimed_issuer  # the metadata names this issuer (misconfigured)
        # the form of each POST, by path, when asked (they hold codes, verifiers and tokens:
        # in this process's memory only, for tests that check what a client sent)
        self.forms: list[tuple[str, dict[str, str]]] | None = [] if record_forms else None
        self._lock = threading.RLock()
        self._clients: dict[str, _Client] = {
            k: _Client(k, v) for k, v in self.clients.items()}
        for client_id, secret in (confidential_clients or {}).items():
            self._clients[client_id] = _Client(client_id, [], secret)
        # the SMTP server's own credentials for /introspect (RFC 7662 section 2.1)
        self._resource_secret = secrets.token_urlsafe(24)
        self._clients[RESOURCE_SERVER_ID] = _Client(RESOURCE_SERVER_ID, [],
                                                    self._resource_secret)
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, _Code] = {}
        self._pending: dict[str, dict[str, str]] = {}  # login form requests
        self._revoked_grants: set[str] = set()
        self.grants: list[str] = []  # the grant_type of each /token request, in order
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.introspections = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._oauth = self._build()

    def _build(self) -> _OAuth2Server:
        server = _OAuth2Server(self)
        bearer = BearerTokenGenerator(
            lambda **_: secrets.token_urlsafe(32), lambda **_: secrets.token_urlsafe(32),
            lambda client, grant_type: int(self.access_token_lifetime))

        def generate(**kwargs: Any) -> dict[str, Any]:
            token = bearer(**kwargs)
            token["expires_in"] = int(self.access_token_lifetime)  # authlib leaves out a 0
            return token

        server.register_token_generator("default", generate)
        server.register_grant(_CodeGrant, [_PKCE(required=True)])
        server.register_grant(_RefreshGrant)
        server.register_endpoint(_Revocation)
        server.register_endpoint(_Introspection)
        self._userinfo = ResourceProtector()
        self._userinfo.register_token_validator(_AccessTokens(self))
        return server

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> AuthServer:
        if self._httpd is not None:
            raise RuntimeError("already started")
        server = self

        class Handler(_Handler):
            auth = server

        self._httpd = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._httpd.daemon_threads = True
        document = self.metadata()
        document["issuer"] = self.issuer  # a claimed_issuer is wrong on purpose
        AuthorizationServerMetadata(document).validate()  # RFC 8414, by authlib
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="AuthServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("not started")
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        """The server's address without the issuer's path."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base + self.path

    def endpoint(self, name: str) -> str:
        """The URL of "authorize", "token", "revoke", "introspect", "userinfo" or "jwks"."""
        return f"{self.issuer}/{name}"

    @property
    def resource_server_credentials(self) -> tuple[str, str]:
        """(client_id, secret) a resource server authenticates with at ``/introspect``."""
        return RESOURCE_SERVER_ID, self._resource_secret

    def metadata(self) -> dict[str, Any]:
        """The discovery document (RFC 8414 / OpenID Connect Discovery)."""
        auth_methods = ["none", "client_secret_basic", "client_secret_post"]
        document = {
            "issuer": self.claimed_issuer or self.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "revocation_endpoint": self.endpoint("revoke"),
            "introspection_endpoint": self.endpoint("introspect"),
            "userinfo_endpoint": self.endpoint("userinfo"),
            "jwks_uri": self.endpoint("jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": list(self.scopes_supported),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["none"],
        }
        if not self.revocation:
            for key in ("revocation_endpoint", "revocation_endpoint_auth_methods_supported"):
                del document[key]
        return document

    def authorization_url(self, *, client_id: str = DEFAULT_CLIENT_ID, redirect_uri: str,
                          scope: str = DEFAULT_SCOPE, state: str = "", code_challenge: str,
                          login_hint: str = "") -> str:
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                 "scope": scope, "state": state, "code_challenge": code_challenge,
                 "code_challenge_method": "S256"}
        if login_hint:
            query["login_hint"] = login_hint
        return self.endpoint("authorize") + "?" + urllib.parse.urlencode(query)

    # -- test controls -----------------------------------------------------------------------
    def issue(self, user: str = TEST_MAILBOX, *, scope: str = DEFAULT_SCOPE,
              client_id: str = DEFAULT_CLIENT_ID) -> dict[str, Any]:
        """Tokens for ``user`` as the token endpoint would answer, without the browser."""
        with self._lock:
            client = self._clients[client_id]
            token = self._oauth.generate_token("authorization_code", client, user, scope)
            self._store(token, user, client_id, secrets.token_hex(8))
            return token

    def expire(self, token: str) -> None:
        """Make one token (access or refresh) expired from now on."""
        with self._lock:
            item = self._tokens.get(token)
            if item is not None:
                item.expires_at = 0.0

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        with self._lock:
            for item in self._tokens.values():
                if item.kind == "access":
                    item.expires_at = 0.0

    def revoke(self, token: str) -> None:
        """RFC 7009 from the server's side: a refresh token revokes its whole grant."""
        with self._lock:
            self._revoke(token)

    def introspect(self, token: str) -> dict[str, Any]:
        """What ``/introspect`` says of ``token`` (asked of authlib's endpoint in-process,
        as the resource server)."""
        basic = base64.b64encode(
            f"{RESOURCE_SERVER_ID}:{self._resource_secret}".encode()).decode("ascii")
        body = urllib.parse.urlencode({"token": token}).encode("ascii")
        request = _Request("POST", "http://127.0.0.1/introspect",
                           {"Authorization": f"Basic {basic}"}, body)
        with self._lock:
            _status, answer, _headers = self._oauth.create_endpoint_response(
                IntrospectionEndpoint.ENDPOINT_NAME, request)
        return dict(answer)

    def active_tokens(self, kind: str | None = None) -> list[str]:
        """The tokens still valid (``kind`` "access" or "refresh" to choose)."""
        with self._lock:
            return [t.value for t in self._tokens.values()
                    if not t.is_revoked() and not t.is_expired() and kind in (None, t.kind)]

    # -- inside (under the lock) -------------------------------------------------------------
    def _store(self, token: dict[str, Any], user: str, client_id: str, grant: str) -> None:
        now = time.time()
        scope = token.get("scope", "")
        self._tokens[token["access_token"]] = _Token(
            token["access_token"], "access", user, client_id, scope,
            now + self.access_token_lifetime, grant, now, revoked_grants=self._revoked_grants)
        if "refresh_token" in token:
            self._tokens[token["refresh_token"]] = _Token(
                token["refresh_token"], "refresh", user, client_id, scope,
                now + self.refresh_token_lifetime, grant, now,
                revoked_grants=self._revoked_grants)

    def _revoke(self, token: str) -> None:
        item = self._tokens.get(token)
        if item is None:
            return
        item.active = False
        if item.kind == "refresh":
            self._revoke_grant(item.grant)

    def _revoke_grant(self, grant: str) -> None:
        self._revoked_grants.add(grant)
        for other in self._tokens.values():
            if other.grant == grant:
                other.active = False


class _Handler(http.server.BaseHTTPRequestHandler):
    auth: AuthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's
        pass  # no request line on stderr: it may hold a code or a token in a query

    # -- plumbing ----------------------------------------------------------------------------
    def _record(self) -> str:
        """Note the request; its path as a route (without the issuer's path)."""
        auth = self.auth
        path = urllib.parse.urlsplit(self.path).path
        with auth._lock:
            auth.requests.append((self.command, path))
        if auth.path and path == "/.well-known/oauth-authorization-server" + auth.path:
            return "/.well-known/oauth-authorization-server"  # RFC 8414 section 3.1
        if auth.path:
            if not path.startswith(auth.path + "/"):
                return ""
            path = path[len(auth.path):]
            if path.startswith("/.well-known/"):
                return ""  # an issuer with a path: only RFC 8414's form
        return path

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _request(self, body: bytes = b"") -> _Request:
        return _Request(self.command, self.auth.base + self.path, self.headers, body)

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        if "content-type" not in names:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if "cache-control" not in names:
            self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json")

    def _answer(self, response: tuple[int, Any, list] | None) -> None:
        """Write what authlib answered: (status, body, headers)."""
        if response is None:
            self._send(204, b"", "text/plain")
            return
        status, body, headers = response
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode("utf-8")
        else:
            data = (body or "").encode("utf-8")
        self._send(status, data, "application/json", headers)

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self._record()
        if path in ("/.well-known/openid-configuration",
                    "/.well-known/oauth-authorization-server"):
            self._json(200, self.auth.metadata())
        elif path == "/authorize":
            self._authorize(self._request())
        elif path == "/jwks":
            self._json(200, {"keys": []})
        elif path == "/userinfo":
            self._userinfo()
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path = self._record()
        body = self._body()
        oauth = self.auth._oauth
        if self.auth.forms is not None:
            form = urllib.parse.parse_qsl(body.decode("utf-8", "replace"))
            with self.auth._lock:
                self.auth.forms.append((path, dict(form)))
        if path == "/authorize":
            self._login(self._request(body))
            return
        if path == "/token":
            request = self._request(body)
            with self.auth._lock:
                self.auth.grants.append(request.form.get("grant_type", ""))
                response = oauth.create_token_response(request)
        elif path == "/revoke" and self.auth.revocation:
            with self.auth._lock:
                response = oauth.create_endpoint_response(
                    RevocationEndpoint.ENDPOINT_NAME, self._request(body))
        elif path == "/introspect":
            with self.auth._lock:
                response = oauth.create_endpoint_response(
                    IntrospectionEndpoint.ENDPOINT_NAME, self._request(body))
        else:
            self._send(404, b"not found", "text/plain")
            return
        self._answer(response)

    def _authorize(self, request: _Request) -> None:
        auth = self.auth
        with auth._lock:
            try:
                auth._oauth.get_consent_grant(request)
            except OAuth2Error as error:
                # a verified redirect URI gets the error (RFC 6749 section 4.1.2.1), an unknown
                # client or redirect URI a page of its own
                self._answer(auth._oauth.handle_error_response(request, error))
                return
        if auth.auto_approve:
            hint = request.payload.data.get("login_hint", "")
            self._approve(request, hint if hint in auth.users else auth.default_user)
            return
        request_id = secrets.token_urlsafe(16)
        with auth._lock:
            auth._pending[request_id] = dict(request.args)
        self._login_form(request_id, request.payload.data.get("login_hint", ""), "")

    def _login_form(self, request_id: str, user: str, problem: str) -> None:
        note = f"<p class=error>{html.escape(problem)}</p>" if problem else ""
        page = (
            "<!doctype html><title>Sign in</title><h1>Sign in to the test issuer</h1>"
            f"{note}<form method=post action=authorize>"
            f"<input type=hidden name=request value='{html.escape(request_id)}'>"
            f"<label>Email <input name=username value='{html.escape(user)}'></label>"
            "<label>Password <input type=password name=password></label>"
            "<button type=submit>Sign in</button></form>"
        )
        self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _login(self, posted: _Request) -> None:
        auth = self.auth
        form = posted.form
        request_id = form.get("request", "")
        with auth._lock:
            query = auth._pending.get(request_id)
        if query is None:
            self._send(400, b"unknown or finished sign-in request", "text/plain")
            return
        user = form.get("username", "")
        if user not in auth.users or auth.users[user] != form.get("password"):
            self._login_form(request_id, user, "Wrong email or password.")
            return
        with auth._lock:
            auth._pending.pop(request_id, None)
        uri = auth.endpoint("authorize") + "?" + urllib.parse.urlencode(query)
        self._approve(_Request("GET", uri, self.headers), user)

    def _approve(self, request: _Request, user: str) -> None:
        oauth = self.auth._oauth
        with self.auth._lock:
            try:
                grant = oauth.get_consent_grant(request, end_user=user)
            except OAuth2Error as error:
                self._answer(oauth.handle_error_response(request, error))
                return
            self._answer(oauth.create_authorization_response(request, user, grant))

    def _userinfo(self) -> None:
        request = self._request()
        auth = self.auth
        with auth._lock:
            try:
                token = auth._userinfo.validate_request(None, request)
            except OAuth2Error as error:
                self._answer(error())
                return
        self._json(200, {"sub": token.user, "email": token.user, "email_verified": True})


# -- the browser's part ----------------------------------------------------------------------


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self) -> None:
        self.locations: list[str] = []

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        self.locations.append(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def browse(url: str, *, username: str | None = None, password: str | None = None,
           timeout: float = 10.0) -> BrowseResult:
    """Do what the system browser does with an authorization URL: GET it, post the login
    form if one comes (with ``username``/``password``, by default the server's test user),
    and follow the redirects, to the application's loopback redirect URI included (which
    should be listening; if nothing is, ``status`` is 0). Returns where it ended."""
    redirects = _KeepRedirects()
    opener = urllib.request.build_opener(redirects)

    def fetch(request: urllib.request.Request | str) -> tuple[str, int, str]:
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.geturl(), response.status, response.read().decode(
                    "utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.geturl(), exc.code, exc.read().decode("utf-8", "replace")
        except urllib.error.URLError:
            # nothing listens where a redirect pointed (an application that is not there):
            # status 0, and the redirect is still in ``redirect_query``
            return (redirects.locations[-1] if redirects.locations else str(request)), 0, ""

    final, status, body = fetch(url)
    if "name=request" in body and "<form" in body:
        start = body.index("name=request value='") + len("name=request value='")
        request_id = html.unescape(body[start:body.index("'", start)])
        form = urllib.parse.urlencode({
            "request": request_id, "username": username or TEST_MAILBOX,
            "password": password if password is not None else TEST_MAILBOX_PASSWORD,
        }).encode("ascii")
        action = urllib.parse.urljoin(final, "authorize")  # the form's relative action
        final, status, body = fetch(
            urllib.request.Request(action, data=form, method="POST"))  # noqa: S310 - loopback
    query: dict[str, str] = {}
    for location in redirects.locations:
        if not location.startswith(urllib.parse.urljoin(url, "/")):
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    return BrowseResult(final, status, body, query)


class _RedirectCatcher(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, str]]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.received.append(query)
        body = b"You can close this window."
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def code_flow(auth: AuthServer, *, client_id: str = DEFAULT_CLIENT_ID,
              scope: str = DEFAULT_SCOPE, username: str | None = None,
              password: str | None = None) -> dict[str, Any]:
    """A whole sign-in as an application does it (RFC 8252): a loopback listener for the
    redirect, the authorization URL with PKCE and state, the browser's part, then the code
    exchanged at the token endpoint. Returns the token endpoint's JSON answer."""
    received: list[dict[str, str]] = []

    class Catcher(_RedirectCatcher):
        pass

    Catcher.received = received
    listener = http.server.HTTPServer((LOCALHOST, 0), Catcher)
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        redirect_uri = f"http://{LOCALHOST}:{listener.server_address[1]}/callback"
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        browse(auth.authorization_url(client_id=client_id, redirect_uri=redirect_uri,
                                      scope=scope, state=state, code_challenge=challenge),
               username=username, password=password)
    finally:
        listener.shutdown()
        listener.server_close()
    if not received or received[-1].get("state") != state or "code" not in received[-1]:
        raise AssertionError(f"the sign-in did not come back with a code: {received}")
    return token_request(auth, {"grant_type": "authorization_code", "code": received[-1]["code"],
                                "redirect_uri": redirect_uri, "client_id": client_id,
                                "code_verifier": verifier})


def token_request(auth: AuthServer, form: Mapping[str, str]) -> dict[str, Any]:
    """POST ``form`` to the token endpoint; the JSON answer (an error's too)."""
    data = urllib.parse.urlencode(form).encode("ascii")
    request = urllib.request.Request(  # noqa: S310 - loopback
        auth.endpoint("token"), data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}")


def refresh(auth: AuthServer, refresh_token: str,
            client_id: str = DEFAULT_CLIENT_ID) -> dict[str, Any]:
    """The refresh token grant, over HTTP."""
    return token_request(auth, {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                "client_id": client_id})


# -- SMTP with XOAUTH2 and OAUTHBEARER ----------------------------------------------------------


@dataclass
class OAuthAttempt:
    """One XOAUTH2/OAUTHBEARER exchange as the server saw it (never the token)."""

    mechanism: str
    user: str
    ok: bool
    status: str = ""  # the JSON error status sent, "" if none
    answer: bytes | None = None  # what the client sent back to the error challenge (decoded)
    initial_response: bool = True  # the token came with AUTH (not after an empty 334)


class OAuthHandler(RecordingHandler):
    """A RecordingHandler whose ``auth_XOAUTH2`` and ``auth_OAUTHBEARER`` methods check each
    token with the authorization server's introspection endpoint, over HTTP."""

    def __init__(self, auth: AuthServer, *, required_scope: str | None = DEFAULT_SCOPE,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.auth = auth
        self.required_scope = required_scope
        self._oauth: list[OAuthAttempt] = []

    @property
    def oauth_attempts(self) -> list[OAuthAttempt]:
        with self._cond:
            return list(self._oauth)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        lines = list(responses)
        if self.pipelining:
            lines.insert(len(lines) - 1, "250-PIPELINING")
        return lines

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Any, args: list[str]):
        if args and args[0].upper() in ("LOGIN", "PLAIN") and not self.credentials:
            return "504 5.5.4 Unrecognized authentication type"
        return MISSING

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._oauth_exchange(server, "XOAUTH2", args)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._oauth_exchange(server, "OAUTHBEARER", args)

    async def _oauth_exchange(self, server: SMTP, mechanism: str, args: list[str]) -> AuthResult:
        initial = len(args) > 1
        if initial:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            response = await server.challenge_auth("")
            if response is MISSING:
                return AuthResult(success=False, handled=True)
            blob = bytes(response)
        user, token = _parse_oauth(mechanism, blob)
        if token is None:
            await server.push("501 5.5.2 Malformed " + mechanism + " initial response")
            return AuthResult(success=False, handled=True)
        import asyncio

        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, self._introspect, token)
        status = ""
        if not info.get("active"):
            status = "invalid_token" if mechanism == "OAUTHBEARER" else "401"
        elif user.lower() != str(info.get("username", "")).lower():
            status = "invalid_request" if mechanism == "OAUTHBEARER" else "400"
        elif self.required_scope and self.required_scope not in str(
                info.get("scope", "")).split():
            status = "insufficient_scope" if mechanism == "OAUTHBEARER" else "403"
        if not status:
            self._note(OAuthAttempt(mechanism, user, True, initial_response=initial))
            return AuthResult(success=True, auth_data=user)
        error: dict[str, str] = {"status": status}
        if mechanism == "XOAUTH2":
            error["schemes"] = "Bearer"
        error["scope"] = self.required_scope or DEFAULT_SCOPE
        if mechanism == "OAUTHBEARER":
            error["openid-configuration"] = self.auth.issuer + "/.well-known/openid-configuration"
        answer = await server.challenge_auth(json.dumps(error))
        self._note(OAuthAttempt(mechanism, user, False, status,
                                None if answer is MISSING else bytes(answer), initial))
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")

    def _introspect(self, token: str) -> dict[str, Any]:
        data = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
        # RFC 7662 section 2.1: the resource server authenticates (HTTP Basic, RFC 6749 2.3.1)
        client_id, secret = self.auth.resource_server_credentials
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.auth.endpoint("introspect"), data=data.encode("ascii"), method="POST",
            headers={"Authorization": f"Basic {basic}"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def _note(self, attempt: OAuthAttempt) -> None:
        with self._cond:
            self._oauth.append(attempt)
            self._login_attempts.append((attempt.mechanism, attempt.user, attempt.ok))


def _parse_oauth(mechanism: str, blob: bytes) -> tuple[str, str | None]:
    """(user, token) from an initial response; token None if it is malformed."""
    text = blob.decode("utf-8", "replace")
    user = ""
    if mechanism == "OAUTHBEARER":  # gs2-header "n,a=user," then kvpairs (RFC 7628 3.1)
        header, sep, rest = text.partition("\x01")
        if not sep or not header.startswith(("n,", "y,")):
            return "", None
        for part in header.split(",")[1:]:
            if part.startswith("a="):
                user = part[2:].replace("=2C", ",").replace("=3D", "=")
        pairs = rest
    else:
        pairs = text
    token = None
    if not pairs.endswith("\x01\x01") and mechanism == "XOAUTH2":
        return user, None
    for pair in pairs.split("\x01"):
        key, _, value = pair.partition("=")
        if key == "user":
            user = value
        elif key == "auth" and value.startswith("Bearer "):
            token = value[len("Bearer "):]
    return user, token


class OAuthSMTPServer(SMTPServer):
    """An aiosmtpd SMTP server (``SMTPServer``, any mode) that offers XOAUTH2 and OAUTHBEARER
    (``mechanisms`` to offer fewer; add "PLAIN"/"LOGIN" with ``auth=`` credentials), with
    tokens checked by ``auth_server``. ``oauth_attempts`` records each exchange."""

    def __init__(self, auth_server: AuthServer, mode: str = "plain", *,
                 mechanisms: Sequence[str] = ("XOAUTH2", "OAUTHBEARER"),
                 required_scope: str | None = DEFAULT_SCOPE, **kwargs: Any) -> None:
        handler = OAuthHandler(auth_server, required_scope=required_scope)
        kwargs.setdefault("auth_require_tls", mode == "starttls")
        super().__init__(mode, handler=handler, auth_mechanisms=tuple(mechanisms), **kwargs)
        self.auth_server = auth_server

    @property
    def oauth_attempts(self) -> list[OAuthAttempt]:
        return self.handler.oauth_attempts  # type: ignore[attr-defined]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    """An AuthServer (test user alice@example.test, client mailcore-test-client), started."""
    with AuthServer() as server:
        yield server


@pytest.fixture
def oauth_smtp_server(auth_server: AuthServer) -> Iterator[OAuthSMTPServer]:
    """A plain-mode OAuthSMTPServer (XOAUTH2 and OAUTHBEARER) on ``auth_server``'s tokens."""
    with OAuthSMTPServer(auth_server, pipelining=True) as server:
        yield server
