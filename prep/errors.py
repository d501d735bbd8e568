"""Errors that stop a whole run before any work (one line, exit status 2), and the
wording of the errors that fail a single file."""


class UsageError(ValueError):
    """Options or paths that make the whole run impossible."""


class RunError(RuntimeError):
    """What stopped a run midway (a full disk writing its shards): one line, exit status 1."""


def os_reason(exc: OSError) -> str:
    """An OS error as one readable line: what went wrong, and on which file."""
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
