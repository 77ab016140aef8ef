"""mailgui's profiles for the ``mailcore`` command (``mailcore --profile NAME``).

Registered under the ``mailcore.profiles`` entry point group, so mailcore finds
it without knowing mailgui. The password comes from the keyring, as in the app. An OAuth2
profile brings ``oauth_token``: a ``mailgui.model.oauth.TokenSource`` that turns the refresh
token in the keyring into an access token just before AUTH (``oauth_problem`` says why there
is none to use: not signed in, no keyring).
"""

from __future__ import annotations

from typing import Any

from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import KeyringUnavailable, SecretStore

__all__ = ["load_profile"]

# The local test inbox listens on a port of the running app only: not offered to the command.
_NOT_FOR_THE_COMMAND = ("inbox", "queue")


def load_profile(
    name: str, paths: AppPaths | None = None, secrets: SecretStore | None = None
) -> dict[str, Any]:
    """Backend arguments for the profile called ``name`` (or with that id).

    Raises LookupError, with the names there are, if there is no such profile.
    """
    store = ProfileStore(paths or AppPaths.default())
    candidates = [p for p in store.all() if p.kind not in _NOT_FOR_THE_COMMAND]
    wanted = name.strip().casefold()
    matches = [p for p in candidates if p.name.casefold() == wanted or p.id == name]
    if not matches:
        known = ", ".join(repr(p.name) for p in candidates) or "none"
        raise LookupError(f"no mailgui profile named {name!r} (profiles: {known})")
    profile = matches[0]
    result: dict[str, Any] = {"backend": profile.backend_name, "profile_name": profile.name}
    if profile.from_email:
        result["from_email"] = profile.from_email
    if profile.kind != "smtp":
        result.update(profile.backend_kwargs())
        return result
    if profile.uses_oauth:
        result.update(_oauth(profile, secrets))
    else:
        password = None
        if profile.needs_password:
            try:
                password = (secrets or SecretStore()).get(profile.id)
            except KeyringUnavailable as exc:
                result["password_problem"] = f"no usable keyring ({exc})"
            else:
                if password is None:
                    result["password_problem"] = "no password saved in the keyring"  # noqa: S105
        kwargs = profile.backend_kwargs(password)
        if not password:
            kwargs.pop("password", None)
        result.update(kwargs)
    if profile.signs:  # the profile signs with DKIM: its key is in the keyring too
        from mailgui.model.dkim import DKIMUnavailable, signer_for

        try:
            store = secrets or SecretStore()
        except KeyringUnavailable:
            store = None
        try:
            result["dkim"] = signer_for(profile, store)
        except DKIMUnavailable as exc:
            result["dkim_problem"] = str(exc)
    return result


def _oauth(profile: Profile, secrets: SecretStore | None) -> dict[str, Any]:
    """The backend arguments of an OAuth2 profile: its token source (the refresh token stays
    in the keyring; the access token is fetched just before AUTH), and ``oauth_problem`` if
    it has no saved sign-in to use."""
    from mailgui.model.oauth import OAuthError, TokenSource, saved_sign_in

    store: SecretStore | None = secrets or SecretStore()
    result: dict[str, Any] = {}
    try:
        if saved_sign_in(store, profile.id) is None:
            result["oauth_problem"] = (
                f"profile {profile.name!r} is not signed in: sign in once in mailgui "
                "(Profiles, OAuth2, \u201cSign in\u2026\u201d)")
    except OAuthError as exc:
        result["oauth_problem"] = str(exc)
        store = None
    kwargs = profile.backend_kwargs(oauth_token=TokenSource(profile, store))
    kwargs.pop("password", None)
    result.update(kwargs)
    return result
