"""Errors that end a command with one line on stderr and a non-zero exit."""


class UsageError(Exception):
    """Bad input from the user: unknown name, malformed config, bad file. Exit 2."""

    exit_code = 2


class DataError(UsageError):
    """A dataset is missing, corrupt or cannot be downloaded."""
