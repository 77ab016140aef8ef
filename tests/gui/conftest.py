"""Fixtures for the mailgui tests: app paths in tmp_path, a real keyring (also one that a test
makes slow or broken), the app itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import SecretStore
from tests.support.keyrings import ControlledKeyring


def tree_items(tree) -> list:  # noqa: ANN001 - a QTreeWidget
    """Every item of a tree widget, nested ones included."""
    items = []
    stack = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        items.append(item)
        stack.extend(item.child(i) for i in range(item.childCount()))
    return items


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "app")


def _fail_if_locked() -> None:
    """Under scripts/sandbox.sh: its gnome-keyring is unlocked whenever D-Bus starts it (also
    again, should it end). A locked collection means some other daemon answers, whose unlock
    prompt has no display to show on: the keyring call would wait for it until the test's
    timeout, test after test. Fail at once, saying so."""
    import os

    if os.environ.get("MAILCORE_TEST_KEYRING") != "secret-service":
        return
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        if collection.is_locked():
            log = os.environ.get("MAILCORE_KEYRING_LOG", "")
            pytest.fail("the sandbox's keyring collection is locked: the Secret Service that "
                        f"answers is not the one scripts/sandbox.sh starts unlocked (its log: "
                        f"{log or 'none'})", pytrace=False)
    finally:
        connection.close()


@pytest.fixture
def secrets() -> Iterator[SecretStore]:
    """The real system keyring (gnome-keyring under scripts/sandbox.sh), own service name."""
    store = SecretStore(service=f"mailgui-test-{uuid.uuid4().hex[:8]}")
    status = store.status()
    if not status.usable:
        # a missing keyring is a broken test setup, never a reason to skip
        pytest.fail(f"no usable keyring here ({status.reason}); run under scripts/sandbox.sh",
                    pytrace=False)
    _fail_if_locked()
    created: list[str] = []
    original_set = store.set

    def tracking_set(profile_id: str, password: str) -> None:
        created.append(profile_id)
        original_set(profile_id, password)

    store.set = tracking_set  # type: ignore[method-assign]
    yield store
    for profile_id in created:
        store.delete(profile_id)


@pytest.fixture
def failing_keyring() -> Iterator[SecretStore]:
    """keyring's own ``fail`` backend, set as the process keyring: no keyring at all."""
    import keyring
    import keyring.backends.fail

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield SecretStore(service="mailgui-test-nokeyring")
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def controlled_keyring(secrets: SecretStore) -> Iterator[ControlledKeyring]:
    """The real system keyring behind a ``ControlledKeyring`` set as the process keyring
    (``keyring.set_keyring``): the test makes its calls wait (``hold``) or raise (``fail``).
    ``secrets`` goes through it; every gate is opened at the end."""
    import keyring

    previous = keyring.get_keyring()
    backend = ControlledKeyring(previous)
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        backend.release()
        keyring.set_keyring(previous)


@pytest.fixture
def make_gui(qtbot, paths):  # noqa: ANN001, ANN201
    """Build MailGui windows on ``paths`` (several, to test restarts); shut down at the end."""
    from mailgui.app import MailGui

    made = []
    warned: list[str] = []  # what quitting would have told the person in a message box

    def make(secrets: SecretStore | None = None, *, start_inbox: bool = True,
             app_paths: AppPaths | None = None, inbox_port: int | None = None) -> MailGui:
        gui = MailGui(app_paths or paths, secrets=secrets, start_inbox=start_inbox,
                      inbox_port=inbox_port)
        gui.controller.warn = warned.append  # a test that expects a warning answers it itself
        qtbot.addWidget(gui.window)
        gui.show()  # as main() does: the window, then the first field's focus
        made.append(gui)
        if start_inbox:
            qtbot.waitUntil(lambda: gui.controller.inbox.port != 0, timeout=10000)
        # the keyring probe runs on the pool; wait for it so tests see a known state
        qtbot.waitUntil(lambda: gui.controller.passwords.broker.keyring_status is not None,
                        timeout=10000)
        return gui

    yield make
    for gui in made:
        gui.shutdown()
    for gui in made:  # quitting returns at once: the writes and the inbox process end behind
        assert gui.finish(30), "a quit left something running"
    assert warned == [], "quitting had to warn"


def add_profile(paths: AppPaths, **fields: object) -> Profile:
    store = ProfileStore(paths)
    if fields.get("kind") == "smtp":
        fields.setdefault("from_email", "Tester <tester@example.com>")
    profile = Profile(**fields)  # type: ignore[arg-type]
    store.upsert(profile)
    return profile
