"""Errors that stop a whole run before any work (one line, exit status 2), and the
wording of the errors that fail a single file."""


class UsageError(ValueError):
    """Options or paths that make the whole run impossible."""


def os_reason(exc: OSError) -> str:
    """An OS error as one readable line: what went wrong, and on which file."""
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
