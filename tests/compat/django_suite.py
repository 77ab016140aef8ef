"""Run Django 5.2's own mail test suite (tests/mail/tests.py from the Django
sdist, fetched by scripts/bootstrap.sh) against mailcore.

``django.core.mail`` and its submodules are replaced by mailcore's, and
mailcore's settings read Django's settings, so ``override_settings`` in those
tests drives mailcore. Usage: python django_suite.py DIR [unittest args]
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path


def main() -> int:
    suite_dir = Path(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.path.insert(0, str(suite_dir))

    import django
    from django.conf import settings as django_settings

    django_settings.configure(
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        INSTALLED_APPS=[],
        USE_TZ=True,
        SECRET_KEY="django-mail-suite",
    )
    django.setup()

    import django.core

    import mailcore
    import mailcore.backends.base
    import mailcore.backends.console
    import mailcore.backends.dummy
    import mailcore.backends.filebased
    import mailcore.backends.locmem
    import mailcore.backends.smtp
    import mailcore.conf
    import mailcore.message
    import mailcore.utils

    class DjangoBackedSettings(mailcore.conf.Settings):
        def __getattr__(self, name):
            if name in mailcore.conf.DEFAULTS and hasattr(django_settings, name):
                return getattr(django_settings, name)
            return super().__getattr__(name)

    object.__setattr__(mailcore.conf.settings, "__class__", DjangoBackedSettings)
    modules = {
        "": mailcore,
        ".message": mailcore.message,
        ".utils": mailcore.utils,
        ".backends": mailcore.backends,
        ".backends.base": mailcore.backends.base,
        ".backends.smtp": mailcore.backends.smtp,
        ".backends.console": mailcore.backends.console,
        ".backends.filebased": mailcore.backends.filebased,
        ".backends.locmem": mailcore.backends.locmem,
        ".backends.dummy": mailcore.backends.dummy,
    }
    for suffix, module in modules.items():
        sys.modules["django.core.mail" + suffix] = module
    django.core.mail = mailcore

    import django.test.utils

    django.test.utils.setup_test_environment()
    from mail import tests  # the suite's module, now importing mailcore

    program = unittest.main(module=tests, argv=["django-mail-suite", *sys.argv[2:]], exit=False)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
