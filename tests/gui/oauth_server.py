"""A small OAuth 2.0 authorization server on 127.0.0.1 for the mailgui OAuth2 tests.

Real HTTP on a loopback port (``http.server``), speaking RFC 6749 (authorization code and
refresh token grants), RFC 7636 (PKCE, S256 only), RFC 8252 §7.3 (loopback redirects on any
port), RFC 8414 / OpenID discovery, RFC 7009 revocation and RFC 7662 introspection. It signs in
one auto-approved test user (``ACCOUNT``), or refuses (``deny``). Access tokens live
``access_lifetime`` seconds; refresh tokens until revoked (``revoke_refresh_tokens``), and are
rotated on use when ``rotate`` is set. Tests read what it saw (``requests``, ``grants``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "alice@example.test"
CLIENT_ID = "mailgui-test-client"


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires: float


@dataclass
class _Refresh:
    client_id: str
    scope: str
    active: bool = True


@dataclass
class _AccessToken:
    client_id: str
    scope: str
    expires: float
    refresh: str
    active: bool = True


@dataclass
class LoopbackAuthServer:
    """Start with ``start()`` (or as a context manager); ``issuer`` is its base address."""

    access_lifetime: float = 3600.0
    rotate: bool = False
    deny: bool = False
    with_revocation: bool = True
    path: str = ""  # an issuer with a path ("/tenant"): discovery per RFC 8414 only
    id_token: bool = True  # send an (unsigned, test-only) ID token naming ACCOUNT
    client_id: str = CLIENT_ID
    client_secret: str = ""  # required at /token and /revoke when set
    claimed_issuer: str = ""  # the metadata names this issuer instead (a misconfigured server)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)  # grant_type of each successful /token

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _AccessToken] = {}
        self._httpd: ThreadingHTTPServer | None = None

    # -- running --------------------------------------------------------------------------
    def start(self) -> LoopbackAuthServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.base + self.path

    # -- what a test does -----------------------------------------------------------------
    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            for token in self._refresh.values():
                token.active = False
            for access in self._access.values():
                access.active = False

    def expire_access_tokens(self) -> None:
        with self._lock:
            for access in self._access.values():
                access.expires = 0.0

    def token_active(self, token: str) -> bool:
        """Introspection, as the SMTP server does it (RFC 7662's ``active``)."""
        with self._lock:
            access = self._access.get(token)
            return bool(access and access.active and access.expires > time.time())

    def refresh_active(self, token: str) -> bool:
        with self._lock:
            refresh = self._refresh.get(token)
            return bool(refresh and refresh.active)

    @property
    def refresh_tokens(self) -> list[str]:
        with self._lock:
            return list(self._refresh)

    @property
    def access_tokens(self) -> list[str]:
        with self._lock:
            return list(self._access)

    # -- HTTP -------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        form: dict[str, str] = {}
        if method == "POST":
            length = int(request.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(request.rfile.read(length).decode()))
        self.requests.append((method, parts.path, form or query))
        path = parts.path
        if path.startswith(self.path) and self.path:
            path = path[len(self.path):] or "/"
        routes = {
            ("GET", "/.well-known/openid-configuration"): self._discovery_oidc,
            ("GET", "/.well-known/oauth-authorization-server" + self.path): self._discovery,
            ("GET", "/authorize"): lambda: self._authorize(query),
            ("POST", "/token"): lambda: self._token(form),
            ("POST", "/revoke"): lambda: self._revoke(form),
            ("POST", "/introspect"): lambda: self._introspect(form),
        }
        # RFC 8414 inserts the well-known part before the issuer's path
        route = routes.get((method, parts.path)) or routes.get((method, path))
        if route is None:
            self._send(request, 404, {"error": "not_found"})
            return
        status, body, location = route()
        if location:
            request.send_response(302)
            request.send_header("Location", location)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        self._send(request, status, body)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _metadata(self) -> dict[str, Any]:
        base = self.base + self.path
        meta = {"issuer": self.claimed_issuer or self.issuer,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "introspection_endpoint": f"{base}/introspect",
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"]}
        if self.with_revocation:
            meta["revocation_endpoint"] = f"{base}/revoke"
        return meta

    def _discovery_oidc(self) -> tuple[int, dict, str]:
        if self.path:  # only RFC 8414's form for an issuer with a path
            return 404, {"error": "not_found"}, ""
        return 200, self._metadata(), ""

    def _discovery(self) -> tuple[int, dict, str]:
        return 200, self._metadata(), ""

    def _authorize(self, q: dict[str, str]) -> tuple[int, dict, str]:
        redirect = q.get("redirect_uri", "")
        target = urllib.parse.urlsplit(redirect)
        loopback = target.scheme == "http" and target.hostname in ("127.0.0.1", "localhost")
        if q.get("client_id") != self.client_id or not loopback:
            return 400, {"error": "invalid_request",
                         "error_description": "unknown client or redirect"}, ""

        def back(**params: str) -> tuple[int, dict, str]:
            params["state"] = q.get("state", "")
            return 302, {}, f"{redirect}?{urllib.parse.urlencode(params)}"

        if self.deny:
            return back(error="access_denied", error_description="The user said no")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or (
                not q.get("code_challenge")):
            return back(error="invalid_request", error_description="PKCE S256 required")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Code(self.client_id, redirect, q["code_challenge"],
                                      q.get("scope", ""), time.time() + 60)
        return back(code=code)

    def _client_ok(self, form: dict[str, str]) -> bool:
        return form.get("client_id") == self.client_id and (
            not self.client_secret or form.get("client_secret") == self.client_secret)

    def _issue(self, client_id: str, scope: str, refresh: str | None) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        new_refresh = refresh
        if refresh is None or self.rotate:
            new_refresh = secrets.token_urlsafe(32)
            if refresh is not None:
                self._refresh[refresh].active = False
            self._refresh[new_refresh] = _Refresh(client_id, scope)
        assert new_refresh is not None
        self._access[access] = _AccessToken(client_id, scope,
                                            time.time() + self.access_lifetime, new_refresh)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": self.access_lifetime, "scope": scope}
        if new_refresh != refresh:
            answer["refresh_token"] = new_refresh
        if self.id_token and refresh is None:
            claims = json.dumps({"iss": self.issuer, "sub": "1", "aud": client_id,
                                 "email": ACCOUNT}).encode()
            payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
            answer["id_token"] = f"eyJhbGciOiJub25lIn0.{payload}."
        return answer

    def _token(self, form: dict[str, str]) -> tuple[int, dict, str]:
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}, ""
        grant = form.get("grant_type")
        with self._lock:
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (code is None or code.expires < time.time()
                        or code.redirect_uri != form.get("redirect_uri")
                        or code.challenge != challenge):
                    return 400, {"error": "invalid_grant",
                                 "error_description": "bad code, redirect or verifier"}, ""
                self.grants.append(grant)
                return 200, self._issue(code.client_id, code.scope, None), ""
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                refresh = self._refresh.get(token)
                if refresh is None or not refresh.active or refresh.client_id != (
                        form.get("client_id")):
                    return 400, {"error": "invalid_grant",
                                 "error_description": "The refresh token was revoked"}, ""
                self.grants.append(grant)
                return 200, self._issue(refresh.client_id, refresh.scope, token), ""
        return 400, {"error": "unsupported_grant_type"}, ""

    def _revoke(self, form: dict[str, str]) -> tuple[int, dict, str]:
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}, ""
        with self._lock:
            token = form.get("token", "")
            if token in self._refresh:
                self._refresh[token].active = False
                for access in self._access.values():
                    if access.refresh == token:
                        access.active = False
            elif token in self._access:
                self._access[token].active = False
        return 200, {}, ""

    def _introspect(self, form: dict[str, str]) -> tuple[int, dict, str]:
        token = form.get("token", "")
        if self.token_active(token):
            access = self._access[token]
            return 200, {"active": True, "scope": access.scope, "client_id": access.client_id,
                         "username": ACCOUNT, "exp": int(access.expires)}, ""
        return 200, {"active": False}, ""


def follow(url: str) -> bool:
    """The test's "browser": follow the authorization address, through the server's redirect,
    to the loopback redirect of the app (urllib follows the 302 as a browser would)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - loopback
            response.read()
    except urllib.error.HTTPError as exc:  # the app's page for a refusal is a 400
        exc.read()
        exc.close()
    return True
