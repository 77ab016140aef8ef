"""``python -m mailgui``."""

import sys

from mailgui.app import main

sys.exit(main())
