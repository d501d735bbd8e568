"""Whether a format folder is complete for this run (its ``format.json`` matches), or to be
(re)written.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum

from manifests import naming
from prep.storage import Location

log = logging.getLogger(__name__)


def _read_format_json(folder: Location) -> dict | None:
    """A format.json as a dict; None (with a warning) when it is not one: the format is
    then treated as not done and rebuilt."""
    path = folder.join("format.json")
    try:
        existing = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
        log.warning("%s: %s; rebuilding %s", path, reason, folder.name)
        return None
    if not isinstance(existing, dict):
        log.warning("%s: not a JSON object; rebuilding %s", path, folder.name)
        return None
    return existing


class FormatState(StrEnum):
    """Where a requested format stands before a run writes it."""

    DONE = "done"
    """Its format.json matches this run's settings and inputs: left as it is."""
    TODO = "todo"
    """To be written (what cannot be reused cleared)."""


def format_state(folder: Location, params: dict, fingerprint: str, overwrite: bool) -> FormatState:
    """Done (format.json matches), or to do after clearing what cannot be reused.

    ``.params.json`` marks a format being written: a run interrupted with the same
    settings leaves files the next one reuses; one with other settings is cleared."""
    fmt_file, params_file = folder.join("format.json"), folder.join(".params.json")
    wanted = json.dumps({"params": params, "input": fingerprint}, sort_keys=True)
    if overwrite:
        folder.remove()
    if fmt_file.exists():
        existing = _read_format_json(folder) or {}
        found = json.dumps(
            {"params": existing.get("params"), "input": existing.get("input")}, sort_keys=True
        )
        if found == wanted:
            return FormatState.DONE
        folder.remove()  # made from other inputs or settings, or unreadable: rebuilt
    elif params_file.exists() and _bytes_or_none(params_file) != wanted.encode("utf-8"):
        folder.remove()  # an interrupted run with other settings
    with naming(params_file.path):
        params_file.write_bytes(wanted.encode("utf-8"))
    return FormatState.TODO


def _bytes_or_none(where: Location) -> bytes | None:
    try:
        return where.read_bytes()
    except OSError:
        return None
