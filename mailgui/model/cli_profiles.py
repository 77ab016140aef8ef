"""mailgui's profiles for the ``mailcore`` command (``mailcore --profile NAME``).

Registered under the ``mailcore.profiles`` entry point group, so mailcore finds
it without knowing mailgui. The password comes from the keyring, as in the app.
"""

from __future__ import annotations

from typing import Any

from mailgui.model.paths import AppPaths
from mailgui.model.profiles import ProfileStore
from mailgui.model.secrets import KeyringUnavailable, SecretStore

__all__ = ["load_profile"]

# The local test inbox listens on a port of the running app only: not offered to the command.
_NOT_FOR_THE_COMMAND = ("inbox",)


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
    if profile.kind == "smtp":
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
    else:
        result.update(profile.backend_kwargs())
    return result
