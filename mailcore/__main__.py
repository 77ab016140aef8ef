"""``python -m mailcore``: the mailcore command (see mailcore.cli)."""

from mailcore.cli import main

if __name__ == "__main__":
    main()
