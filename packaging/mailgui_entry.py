"""Entry script for the PyInstaller bundle of mailgui."""

import sys

from mailgui.app import main

if __name__ == "__main__":
    sys.exit(main())
