"""A real OAuth 2.0 authorization server and an SMTP server that takes its tokens, on
127.0.0.1, for the test suites. No mocks: HTTP over loopback sockets, aiosmtpd for SMTP.

Why by hand on ``http.server`` rather than ``authlib``: authlib's server classes need a web
framework integration (Flask, Django, Starlette) and a dozen storage hooks to be written
anyway; what the tests need is small, RFC-shaped and best kept visible in one file:

* RFC 6749 authorization code grant and refresh token grant for public clients (a
  ``client_id``, no secret), with refresh token rotation (on by default: the old refresh token
  stops working when a new one is issued; using it again revokes the whole grant, as OAuth
  2.0 Security BCP section 4.14 advises);
* RFC 7636 PKCE, S256 only and required (``plain`` is refused);
* RFC 8252 loopback redirects: a redirect URI on 127.0.0.1, [::1] or localhost matches a
  registered one whatever its port;
* RFC 7009 ``/revoke``, RFC 7662 ``/introspect``, ``/userinfo``, an empty ``/jwks`` (tokens are
  opaque), and discovery at ``/.well-known/openid-configuration`` and
  ``/.well-known/oauth-authorization-server`` (RFC 8414).

``/authorize`` approves at once for ``default_user`` (or a known ``login_hint``) when
``auto_approve`` is True; otherwise it answers with a small login form (``username``,
``password``, hidden ``request``) that an HTTP client can post: :func:`browse` does exactly
what a browser would (GET the authorization URL, post the form if one comes, follow the
redirect to the application's loopback listener). Set ``deny = True`` to have the user say no
(``error=access_denied``).

Tests control time and state without sleeping: :meth:`AuthServer.expire` (one token) and
:meth:`AuthServer.expire_access_tokens` (all), :meth:`AuthServer.revoke` (a refresh token
revokes its access tokens too), :meth:`AuthServer.issue` (tokens without the browser step),
and they can look at :attr:`AuthServer.grants` (the grant types asked for, in order) and
:attr:`AuthServer.requests` (method and path of every request; never a query or a body).

:class:`OAuthSMTPServer` is an aiosmtpd server (see ``tests.support.servers.SMTPServer``)
with the SASL mechanisms XOAUTH2 and OAUTHBEARER (RFC 7628) as ``auth_NAME`` methods of its
handler. Each token is checked with the authorization server's introspection endpoint; a
refused one gets the RFC 7628 JSON error challenge (``{"status": "invalid_token", ...}`` for
OAUTHBEARER, Google's ``{"status": "401", "schemes": "Bearer", "scope": ...}`` for XOAUTH2),
then, once the client has answered it, ``535 5.7.8``. ``oauth_attempts`` records each
exchange: mechanism, user, whether it passed, the status sent, and what the client answered
to the error challenge.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session

from tests.support.servers import LOCALHOST, RecordingHandler, SMTPServer

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_SCOPE",
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
]

TEST_MAILBOX = "alice@example.test"
TEST_MAILBOX_PASSWORD = "wonderland"  # the login form's password (not an SMTP password)
DEFAULT_CLIENT_ID = "mailcore-test-client"
DEFAULT_SCOPE = "https://mail.example.test/smtp"
_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "::1", "localhost")
_CODE_LIFETIME = 120.0


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 section 4.2)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, _s256(verifier)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class _Token:
    value: str
    kind: str  # "access" or "refresh"
    user: str
    client_id: str
    scope: str
    expires_at: float
    grant: str  # the grant (one sign-in) it belongs to
    active: bool = True


@dataclass
class _Code:
    user: str
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str
    expires_at: float
    grant: str
    used: bool = False


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

    ``clients`` maps each client_id to its registered redirect URIs (loopback ones match any
    port; an empty list takes any loopback redirect); ``users`` maps mailbox to login-form
    password. Lifetimes are in seconds. ``issuer`` is known once started.
    """

    def __init__(
        self,
        *,
        access_token_lifetime: float = 3600.0,
        refresh_token_lifetime: float = 30 * 86400.0,
        rotate_refresh_tokens: bool = True,
        clients: Mapping[str, Sequence[str]] | None = None,
        users: Mapping[str, str] | None = None,
        default_user: str = TEST_MAILBOX,
        auto_approve: bool = True,
        scopes_supported: Sequence[str] = ("openid", "email", "offline_access", DEFAULT_SCOPE),
    ) -> None:
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.clients: dict[str, list[str]] = {
            k: list(v) for k, v in (clients or {DEFAULT_CLIENT_ID: []}).items()}
        self.users = dict(users or {TEST_MAILBOX: TEST_MAILBOX_PASSWORD})
        self.default_user = default_user
        self.auto_approve = auto_approve
        self.deny = False  # the user refuses the consent: error=access_denied
        self.scopes_supported = list(scopes_supported)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, _Code] = {}
        self._pending: dict[str, dict[str, str]] = {}  # login form requests
        self._revoked_grants: set[str] = set()
        self.grants: list[str] = []  # the grant_type of each /token request, in order
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.introspections = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> AuthServer:
        if self._httpd is not None:
            raise RuntimeError("already started")
        server = self

        class Handler(_Handler):
            auth = server

        self._httpd = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._httpd.daemon_threads = True
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
    def issuer(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def endpoint(self, name: str) -> str:
        """The URL of "authorize", "token", "revoke", "introspect", "userinfo" or "jwks"."""
        return f"{self.issuer}/{name}"

    def metadata(self) -> dict[str, Any]:
        """The discovery document (RFC 8414 / OpenID Connect Discovery)."""
        return {
            "issuer": self.issuer,
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
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": list(self.scopes_supported),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["none"],
        }

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
            return self._issue(user, client_id, scope, secrets.token_hex(8))

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
        """What ``/introspect`` says of ``token``."""
        with self._lock:
            return self._introspect(token)

    def active_tokens(self, kind: str | None = None) -> list[str]:
        """The tokens still valid (``kind`` "access" or "refresh" to choose)."""
        now = time.time()
        with self._lock:
            return [t.value for t in self._tokens.values()
                    if t.active and t.expires_at > now and kind in (None, t.kind)]

    # -- inside (under the lock) -------------------------------------------------------------
    def _issue(self, user: str, client_id: str, scope: str, grant: str,
               refresh: bool = True) -> dict[str, Any]:
        now = time.time()
        access = _Token(secrets.token_urlsafe(32), "access", user, client_id, scope,
                        now + self.access_token_lifetime, grant)
        self._tokens[access.value] = access
        answer: dict[str, Any] = {
            "access_token": access.value, "token_type": "Bearer",
            "expires_in": int(self.access_token_lifetime) or 1, "scope": scope,
        }
        if refresh:
            item = _Token(secrets.token_urlsafe(32), "refresh", user, client_id, scope,
                          now + self.refresh_token_lifetime, grant)
            self._tokens[item.value] = item
            answer["refresh_token"] = item.value
        return answer

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

    def _valid(self, token: str, kind: str) -> _Token | None:
        item = self._tokens.get(token)
        if item is None or item.kind != kind or not item.active:
            return None
        if item.expires_at <= time.time() or item.grant in self._revoked_grants:
            return None
        return item

    def _introspect(self, token: str) -> dict[str, Any]:
        self.introspections += 1
        item = self._tokens.get(token)
        if item is None or self._valid(token, item.kind) is None:
            return {"active": False}
        return {"active": True, "scope": item.scope, "client_id": item.client_id,
                "username": item.user, "sub": item.user, "token_type": "Bearer"
                if item.kind == "access" else "refresh_token", "exp": int(item.expires_at),
                "iss": self.issuer}

    def _redirect_ok(self, client_id: str, redirect_uri: str) -> bool:
        registered = self.clients.get(client_id)
        if registered is None:
            return False
        parts = urllib.parse.urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname is None or parts.fragment:
            return False
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if host not in _LOOPBACK_HOSTS:
            return False
        if not registered:
            return True
        for uri in registered:  # RFC 8252 section 7.3: any port on a loopback redirect
            other = urllib.parse.urlsplit(uri)
            if (other.scheme, other.hostname, other.path or "/") == (
                    parts.scheme, parts.hostname, parts.path or "/"):
                return True
        return False


class _Handler(http.server.BaseHTTPRequestHandler):
    auth: AuthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's
        pass  # no request line on stderr: it may hold a code or a token in a query

    # -- plumbing ----------------------------------------------------------------------------
    def _record(self) -> str:
        path = urllib.parse.urlsplit(self.path).path
        with self.auth._lock:
            self.auth.requests.append((self.command, path))
        return path

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {k: v[-1] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}

    def _query(self) -> dict[str, str]:
        query = urllib.parse.urlsplit(self.path).query
        return {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json", headers)

    def _error(self, status: int, error: str, description: str) -> None:
        self._json(status, {"error": error, "error_description": description})

    def _redirect(self, uri: str, params: Mapping[str, str]) -> None:
        sep = "&" if urllib.parse.urlsplit(uri).query else "?"
        location = uri + sep + urllib.parse.urlencode({k: v for k, v in params.items() if v})
        self._send(302, b"", "text/plain", {"Location": location})

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self._record()
        if path in ("/.well-known/openid-configuration",
                    "/.well-known/oauth-authorization-server"):
            self._json(200, self.auth.metadata())
        elif path == "/authorize":
            self._authorize(self._query())
        elif path == "/jwks":
            self._json(200, {"keys": []})
        elif path == "/userinfo":
            self._userinfo()
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path = self._record()
        form = self._form()
        if path == "/authorize":
            self._login(form)
        elif path == "/token":
            self._token(form)
        elif path == "/revoke":
            with self.auth._lock:
                if form.get("token"):
                    self.auth._revoke(form["token"])
            self._send(200, b"", "text/plain")  # RFC 7009: 200 whatever the token was
        elif path == "/introspect":
            self._json(200, self.auth.introspect(form.get("token", "")))
        else:
            self._send(404, b"not found", "text/plain")

    def _authorize(self, query: dict[str, str]) -> None:
        auth = self.auth
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if not auth._redirect_ok(client_id, redirect_uri):
            # RFC 6749 section 4.1.2.1: never redirect to an unverified URI
            self._send(400, b"unknown client or redirect URI", "text/plain")
            return
        state = query.get("state", "")
        if query.get("response_type") != "code":
            self._redirect(redirect_uri, {"error": "unsupported_response_type", "state": state})
            return
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            self._redirect(redirect_uri, {"error": "invalid_request", "state": state,
                                          "error_description": "PKCE with S256 is required"})
            return
        scope = query.get("scope", "")
        unknown = [s for s in scope.split() if s not in auth.scopes_supported]
        if unknown:
            self._redirect(redirect_uri, {"error": "invalid_scope", "state": state})
            return
        if auth.auto_approve:
            hint = query.get("login_hint", "")
            self._approve(query, hint if hint in auth.users else auth.default_user)
            return
        request_id = secrets.token_urlsafe(16)
        with auth._lock:
            auth._pending[request_id] = dict(query)
        self._login_form(request_id, query.get("login_hint", ""), "")

    def _login_form(self, request_id: str, user: str, problem: str) -> None:
        note = f"<p class=error>{html.escape(problem)}</p>" if problem else ""
        page = (
            "<!doctype html><title>Sign in</title><h1>Sign in to the test issuer</h1>"
            f"{note}<form method=post action=/authorize>"
            f"<input type=hidden name=request value='{html.escape(request_id)}'>"
            f"<label>Email <input name=username value='{html.escape(user)}'></label>"
            "<label>Password <input type=password name=password></label>"
            "<button type=submit>Sign in</button></form>"
        )
        self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _login(self, form: dict[str, str]) -> None:
        auth = self.auth
        request_id = form.get("request", "")
        with auth._lock:
            query = auth._pending.get(request_id)
        if query is None:
            self._send(400, b"unknown or finished sign-in request", "text/plain")
            return
        user = form.get("username", "")
        if auth.users.get(user) != form.get("password") or user not in auth.users:
            self._login_form(request_id, user, "Wrong email or password.")
            return
        with auth._lock:
            auth._pending.pop(request_id, None)
        self._approve(query, user)

    def _approve(self, query: dict[str, str], user: str) -> None:
        auth = self.auth
        redirect_uri = query["redirect_uri"]
        state = query.get("state", "")
        if auth.deny:
            self._redirect(redirect_uri, {"error": "access_denied", "state": state})
            return
        code = secrets.token_urlsafe(24)
        with auth._lock:
            auth._codes[code] = _Code(user, query["client_id"], redirect_uri,
                                      query.get("scope", ""), query["code_challenge"],
                                      time.time() + _CODE_LIFETIME, secrets.token_hex(8))
        self._redirect(redirect_uri, {"code": code, "state": state})

    def _token(self, form: dict[str, str]) -> None:
        auth = self.auth
        grant_type = form.get("grant_type", "")
        with auth._lock:
            auth.grants.append(grant_type)
        client_id = form.get("client_id", "")
        if client_id not in auth.clients:
            self._json(401, {"error": "invalid_client", "error_description": "unknown client"},
                       {"WWW-Authenticate": 'Basic realm="token"'})
            return
        if grant_type == "authorization_code":
            self._code_grant(form, client_id)
        elif grant_type == "refresh_token":
            self._refresh_grant(form, client_id)
        else:
            self._error(400, "unsupported_grant_type", f"grant_type {grant_type!r}")

    def _code_grant(self, form: dict[str, str], client_id: str) -> None:
        auth = self.auth
        with auth._lock:
            code = auth._codes.get(form.get("code", ""))
            if code is None or code.client_id != client_id or code.expires_at <= time.time():
                problem = "unknown, expired or another client's code"
            elif code.used:  # RFC 6749 section 4.1.2: revoke what the code gave
                auth._revoke_grant(code.grant)
                problem = "the code was already used"
            elif form.get("redirect_uri", "") != code.redirect_uri:
                problem = "redirect_uri differs from the authorization request's"
            elif not form.get("code_verifier") or _s256(form["code_verifier"]) != code.challenge:
                problem = "PKCE verification failed"
            else:
                code.used = True
                answer = auth._issue(code.user, client_id, code.scope, code.grant)
                problem = ""
        if problem:
            self._error(400, "invalid_grant", problem)
        else:
            self._json(200, answer)

    def _refresh_grant(self, form: dict[str, str], client_id: str) -> None:
        auth = self.auth
        with auth._lock:
            value = form.get("refresh_token", "")
            item = auth._tokens.get(value)
            valid = auth._valid(value, "refresh")
            if item is not None and item.kind == "refresh" and not item.active and (
                    auth.rotate_refresh_tokens and item.grant not in auth._revoked_grants):
                auth._revoke_grant(item.grant)  # a rotated-out token came back: stolen?
            if valid is None or valid.client_id != client_id:
                answer, problem = None, "the refresh token is invalid, expired or revoked"
            else:
                scope = form.get("scope") or valid.scope
                if not set(scope.split()) <= set(valid.scope.split()):
                    answer, problem = None, "scope wider than granted"
                else:
                    problem = ""
                    answer = auth._issue(valid.user, client_id, scope, valid.grant,
                                         refresh=auth.rotate_refresh_tokens)
                    if auth.rotate_refresh_tokens:
                        valid.active = False
                    else:
                        answer["refresh_token"] = valid.value
        if problem:
            self._error(400, "invalid_grant" if "scope" not in problem else "invalid_scope",
                        problem)
        else:
            self._json(200, answer)

    def _userinfo(self) -> None:
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        info = self.auth.introspect(token)
        if not info.get("active") or info.get("token_type") != "Bearer":
            self._json(401, {"error": "invalid_token"},
                       {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        self._json(200, {"sub": info["sub"], "email": info["username"],
                         "email_verified": True})


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
        action = urllib.parse.urljoin(final, "/authorize")
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
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.auth.endpoint("introspect"), data=data.encode("ascii"), method="POST")
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
