"""Entry script for the mailcore command inside the PyInstaller bundle."""

from mailcore.cli import main

if __name__ == "__main__":
    main()
