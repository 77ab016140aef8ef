"""The password broker: which password a profile uses now, and what happened to the last one.

Plain Python, no Qt. One ``PasswordBroker`` per window knows

* where a password comes from: one kept for this session (typed with "Remember until mailgui
  quits", or saved in the editor when no keyring can hold it), else the system keyring (read
  by the worker, see ``sending.resolve_password``), else it must be asked for;
* what the server refused: a refused password is never tried again by itself, and when no
  keyring holds it the next prompt says the last one was refused;
* where a password saved in the editor goes (the keyring, the session, or held until the
  keyring check at start is done);
* what to hand a worker job (``worker_secrets``).

The keyring itself is only touched by the methods marked "worker side"; they may block
(D-Bus, an unlock prompt), so controllers run them on the worker pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgui.model.errors import ErrorInfo, refused_login
from mailgui.model.profiles import Profile
from mailgui.model.secrets import KeyringStatus, KeyringUnavailable, SecretStore

__all__ = ["ASKED_AGAIN_HINT", "PasswordBroker", "PasswordPlan", "asked_again",
           "asked_again_sentence"]

# The hint for a refused password that no keyring holds: the editor has no password field
# then, so only the user name can be checked there.
ASKED_AGAIN_HINT = ("Check the user name in the profile; the next test or send asks for the "
                    "password again.")


@dataclass(frozen=True)
class PasswordPlan:
    """What to do about the password of one send or connection test."""

    password: str | None  # None: the worker reads the keyring (or the profile needs none)
    ask: str = ""  # not empty: ask the person first; this says why


def asked_again(info: ErrorInfo) -> ErrorInfo:
    """A refused login whose password no keyring holds: the same sentence, and the hint that
    the password is asked for again (``describe_error``'s hint says to check both in the
    profile, which fits a profile whose password the editor can replace)."""
    return info.with_hint(ASKED_AGAIN_HINT)


def asked_again_sentence(profile: Profile) -> str:
    """``asked_again`` of the refused login of ``profile``, on one line."""
    return asked_again(refused_login(profile)).sentence


class PasswordBroker:
    """Session passwords, refusals and the keyring status of one window (GUI thread only,
    except the worker-side methods, which touch nothing but the keyring)."""

    def __init__(self, secrets: SecretStore) -> None:
        self.secrets = secrets
        self.keyring_status: KeyringStatus | None = None  # None until the probe at start is done
        self.session_passwords: dict[str, str] = {}  # profile id -> password, in memory only
        self._refused: set[str] = set()  # profiles whose typed password the server refused
        self._pending: dict[str, tuple[Profile, str]] = {}  # typed before the keyring was known

    # -- the keyring ---------------------------------------------------------------------------
    @property
    def keyring_usable(self) -> bool | None:
        """True or False once the keyring was checked; None before."""
        return None if self.keyring_status is None else self.keyring_status.usable

    @property
    def worker_secrets(self) -> SecretStore | None:
        """The keyring for a worker job to read a password from (None: there is none)."""
        return self.secrets if self.keyring_usable is not False else None

    def keyring_known(self, status: KeyringStatus) -> None:
        """The keyring check at start is done."""
        self.keyring_status = status

    def take_pending(self) -> list[tuple[Profile, str]]:
        """The passwords saved in the editor before the keyring check was done, to be stored
        now (``password_typed`` says where each goes)."""
        pending, self._pending = list(self._pending.values()), {}
        return pending

    # -- which password now --------------------------------------------------------------------
    def plan(self, profile: Profile, given: str | None = None) -> PasswordPlan:
        """The password for ``profile`` now: ``given`` (typed in the form, or answered), else the
        session's, else the keyring's (read by the worker); asked for when there is no keyring."""
        password = given if given is not None else self.session_passwords.get(profile.id)
        if profile.needs_password and password is None and self.keyring_usable is False:
            assert self.keyring_status is not None
            return PasswordPlan(None, ask=self.keyring_status.sentence)
        return PasswordPlan(password)

    def prompt_reason(self, profile: Profile, reason: str) -> str:
        """What the password prompt says (it says so when the last typed one was refused)."""
        if profile.id in self._refused:
            return f"The server refused the last password you typed. {reason}"
        return reason

    def answered(self, profile: Profile, answer: tuple[str, bool] | None) -> str | None:
        """The person answered the prompt with (password, remember for the session), or
        cancelled it (None). Returns the password to use now."""
        if answer is None:
            return None
        password, remember = answer
        self._refused.discard(profile.id)
        if remember:
            self.session_passwords[profile.id] = password
        return password

    def refused(self, profile: Profile) -> bool:
        """The server refused the password of ``profile`` (a send or a connection test): it is
        never tried again by itself. True if the next try asks for it (no keyring holds it;
        the sentence to show is then ``asked_again_sentence``), False if it takes the
        keyring's, which the editor can replace."""
        self.session_passwords.pop(profile.id, None)
        if self.keyring_usable is not False:
            return False
        self._refused.add(profile.id)
        return True

    # -- passwords typed in the editor ---------------------------------------------------------
    def password_typed(self, profile: Profile, password: str) -> str:
        """A password was saved in the editor: where it goes. "keyring" (the caller stores it,
        on the worker), "session" (kept in memory: there is no keyring), or "pending" (the
        keyring check is not done yet; ``keyring_known`` hands it back)."""
        # a new password replaces one remembered for this session (which was tried first)
        self.session_passwords.pop(profile.id, None)
        if self.keyring_status is None:
            self._pending[profile.id] = (profile, password)
            return "pending"
        if self.keyring_usable:
            return "keyring"
        self.session_passwords[profile.id] = password
        return "session"

    def is_pending(self, profile_id: str) -> bool:
        return profile_id in self._pending

    def forget(self, profile_id: str) -> None:
        """The profile was deleted: nothing of its password stays in memory."""
        self.session_passwords.pop(profile_id, None)
        self._pending.pop(profile_id, None)
        self._refused.discard(profile_id)

    # -- worker side: these call the keyring and may block -------------------------------------
    def store(self, profile_id: str, password: str) -> None:
        """Worker side. KeyringUnavailable (with the reason) if it can't be stored."""
        self.secrets.set(profile_id, password)

    def has_stored(self, profile_id: str) -> bool:
        """Worker side. Whether the keyring holds a password for the profile (False if the
        keyring can't be read: the note then says none is saved)."""
        try:
            return self.secrets.get(profile_id) is not None
        except Exception:  # noqa: BLE001 - KeyringUnavailable, or a backend's D-Bus error
            return False

    def remove_stored(self, profile_id: str) -> None:
        """Worker side. Deletes the stored password, if the keyring is there to ask."""
        try:
            self.secrets.delete(profile_id)
        except KeyringUnavailable:
            pass
