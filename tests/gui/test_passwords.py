"""The password broker (``model.passwords``): which password a profile uses, what a refusal
changes, where a password typed in the editor goes. Plain Python with the real keyring (the
test run's gnome-keyring) or keyring's own ``fail`` backend; no QApplication."""

from __future__ import annotations

from mailgui.model.passwords import PasswordBroker, asked_again_sentence
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore


def _profile(**fields: object) -> Profile:
    return Profile("Work", "smtp", host="smtp.example.com", port=587, username="alice",
                   **fields)


def test_with_a_keyring_the_worker_reads_it(secrets: SecretStore) -> None:
    broker = PasswordBroker(secrets)
    profile = _profile()
    assert broker.keyring_usable is None and broker.worker_secrets is secrets
    broker.keyring_known(secrets.status())
    assert broker.keyring_usable is True
    plan = broker.plan(profile)
    assert (plan.password, plan.ask) == (None, "")  # the worker reads the keyring
    assert broker.plan(profile, "typed").password == "typed"
    broker.session_passwords[profile.id] = "remembered"
    assert broker.plan(profile).password == "remembered"
    assert broker.plan(profile, "typed").password == "typed"  # what was typed comes first


def test_without_a_keyring_it_is_asked_and_may_be_remembered(failing_keyring) -> None:  # noqa: ANN001
    broker = PasswordBroker(failing_keyring)
    broker.keyring_known(failing_keyring.status())
    profile = _profile()
    assert broker.keyring_usable is False and broker.worker_secrets is None
    plan = broker.plan(profile)
    assert plan.password is None and "No secure system keyring" in plan.ask
    assert broker.plan(Profile("Open relay", "smtp", host="h")).ask == ""  # needs none
    assert broker.answered(profile, None) is None  # cancelled
    assert broker.answered(profile, ("once", False)) == "once"
    assert profile.id not in broker.session_passwords
    assert broker.answered(profile, ("kept", True)) == "kept"
    assert broker.plan(profile).password == "kept"


def test_a_refused_password_is_asked_again_without_a_keyring(failing_keyring) -> None:  # noqa: ANN001
    profile = _profile()
    broker = PasswordBroker(failing_keyring)
    broker.keyring_known(failing_keyring.status())
    broker.answered(profile, ("typo", True))
    assert broker.refused(profile) is True
    assert profile.id not in broker.session_passwords
    assert broker.plan(profile).ask
    assert broker.prompt_reason(profile, "Why.") == (
        "The server refused the last password you typed. Why.")
    broker.answered(profile, ("right", False))
    assert broker.prompt_reason(profile, "Why.") == "Why."


def test_a_refused_password_gives_way_to_the_keyring(secrets: SecretStore) -> None:
    """The next try takes the keyring's password, which the editor can replace."""
    profile = _profile()
    broker = PasswordBroker(secrets)
    broker.keyring_known(secrets.status())
    broker.session_passwords[profile.id] = "typo"
    assert broker.refused(profile) is False
    assert profile.id not in broker.session_passwords
    assert broker.prompt_reason(profile, "Why.") == "Why."


def test_the_sentence_when_the_password_is_asked_again() -> None:
    assert asked_again_sentence(_profile()) == (
        "The server at smtp.example.com:587 refused the user name or password for alice. "
        "Check the user name in the profile; the next test or send asks for the password "
        "again.")


def test_a_password_typed_before_the_keyring_is_known_waits_for_it(secrets) -> None:  # noqa: ANN001
    broker = PasswordBroker(secrets)
    profile = _profile()
    broker.session_passwords[profile.id] = "old"
    assert broker.password_typed(profile, "new") == "pending"
    assert broker.is_pending(profile.id) and profile.id not in broker.session_passwords
    broker.keyring_known(secrets.status())
    assert broker.take_pending() == [(profile, "new")] and broker.take_pending() == []
    assert broker.password_typed(profile, "newer") == "keyring"
    # worker side: the keyring itself
    broker.store(profile.id, "newer")
    assert broker.has_stored(profile.id) and secrets.get(profile.id) == "newer"
    broker.remove_stored(profile.id)
    assert not broker.has_stored(profile.id)


def test_without_a_keyring_a_typed_password_is_kept_for_the_session(failing_keyring) -> None:  # noqa: ANN001
    broker = PasswordBroker(failing_keyring)
    broker.keyring_known(failing_keyring.status())
    profile = _profile()
    assert broker.password_typed(profile, "typed") == "session"
    assert broker.session_passwords[profile.id] == "typed"
    assert not broker.has_stored(profile.id)  # no keyring to ask: never raises
    broker.remove_stored(profile.id)
    broker.forget(profile.id)
    assert profile.id not in broker.session_passwords
