"""``python -m audiostyle_cli`` runs the command line."""

from .app import main

if __name__ == "__main__":
    main()
