"""The command line, in one place: every command is one call into a library function."""

from preprocessing.cli.main import main

__all__ = ["main"]
