"""`python -m ginmi` runs the command-line interface."""

from ginmi.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
