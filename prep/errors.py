"""Errors that stop a whole run before any work: reported as one line, exit status 2."""


class UsageError(ValueError):
    """Options or paths that make the whole run impossible."""
