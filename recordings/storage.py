"""Where recordings live on disk, how long they stay, and whether they are still intact.

Layout: ``<root>/YYYY/MM/DD/<call_id>.wav``, the date being the UTC day the recording started,
so a day's recordings are one directory (easy to back up, to export, and to expire as a whole).
SIP Call-IDs may hold ``@``, ``/`` or other characters that are unsafe in file names, so they are
mapped to a safe name that stays unique. Retention reads the date from the path, not the file's
modification time, which copies and restores change. The database side (marking rows deleted)
belongs to the recordings service; here each deletion is logged.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

from recordings.recorder import sha256_file

__all__ = [
    "delete_expired",
    "expired",
    "recording_date",
    "recording_path",
    "safe_name",
    "verify",
]

log = structlog.get_logger(__name__)

_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM: Final = 100
_DIGITS: Final = re.compile(r"^\d+$")


def safe_name(call_id: str) -> str:
    """A file-name-safe, collision-free stem for ``call_id``.

    IDs made only of letters, digits, ``.``, ``_`` and ``-`` are kept as they are. Anything else is
    replaced by ``_`` and a short hash of the original is appended, so ``a/b`` and ``a_b`` never
    share a file. Long IDs are cut and hashed the same way.
    """
    if not call_id or not call_id.strip():
        raise ValueError("empty call id: a recording needs the call's id for its file name")
    cleaned = _SAFE.sub("_", call_id).lstrip(".")  # no hidden files, no '..'
    if cleaned == call_id and len(cleaned) <= _MAX_STEM:
        return cleaned
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:10]
    return f"{cleaned[: _MAX_STEM - 11]}-{digest}"


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what}={when.isoformat()} is naive; pass an aware instant such as datetime.now(UTC)")
    return when.astimezone(UTC)


def recording_path(root: str | os.PathLike[str], call_id: str, started_at: datetime) -> Path:
    """``<root>/YYYY/MM/DD/<safe call id>.wav`` for a recording started at ``started_at`` (UTC day)."""
    day = _utc(started_at, "started_at")
    return Path(root) / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}" / f"{safe_name(call_id)}.wav"


def recording_date(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> date | None:
    """The day encoded in ``path`` under ``root``, or None if the path does not follow the layout."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    if len(parts) != 4 or not all(_DIGITS.match(p) for p in parts[:3]):
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def expired(root: str | os.PathLike[str], older_than_days: int, now: datetime) -> list[Path]:
    """Recordings under ``root`` from UTC days before ``now - older_than_days`` (each kept N full days)."""
    if older_than_days < 0:
        raise ValueError(f"older_than_days={older_than_days}: retention must be 0 days or more")
    cutoff = (_utc(now, "now") - timedelta(days=older_than_days)).date()
    base = Path(root)
    if not base.is_dir():
        return []
    found: list[Path] = []
    # Walk the date directories only, so a year of recordings is not stat'ed file by file.
    for year in sorted(p for p in base.iterdir() if p.is_dir() and _DIGITS.match(p.name)):
        if int(year.name) > cutoff.year:
            continue
        for month in sorted(p for p in year.iterdir() if p.is_dir() and _DIGITS.match(p.name)):
            for day in sorted(p for p in month.iterdir() if p.is_dir() and _DIGITS.match(p.name)):
                when = recording_date(base, day / "x.wav")
                if when is not None and when < cutoff:
                    found.extend(sorted(day.glob("*.wav")))
    return found


def delete_expired(
    root: str | os.PathLike[str],
    older_than_days: int,
    now: datetime,
    *,
    dry_run: bool = False,
    on_delete: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Delete the :func:`expired` recordings, logging each one; returns the paths deleted.

    ``on_delete`` is called after each deletion (the service marks the database row). A file that
    cannot be deleted is logged and skipped; emptied day, month and year directories are removed.
    """
    deleted: list[Path] = []
    base = Path(root)
    for path in expired(base, older_than_days, now):
        if dry_run:
            log.info("recording.would_delete", path=str(path))
            deleted.append(path)
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue  # deleted meanwhile by another node sharing the storage
        except OSError as exc:
            log.error("recording.delete_failed", path=str(path), error=exc.strerror, fix="check file permissions")
            continue
        log.info("recording.deleted", path=str(path), size=size, recorded_on=str(recording_date(base, path)))
        deleted.append(path)
        if on_delete is not None:
            on_delete(path)
        _prune(path.parent, base)
    return deleted


def _prune(directory: Path, root: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or gone): stop climbing
        directory = directory.parent


def verify(path: str | os.PathLike[str], sha256: str) -> bool:
    """Whether the file at ``path`` still has the hash recorded when it was closed."""
    try:
        actual = sha256_file(path)
    except FileNotFoundError:
        log.warning("recording.missing", path=str(path))
        return False
    if actual != sha256.lower():
        log.warning("recording.hash_mismatch", path=str(path), expected=sha256, actual=actual)
        return False
    return True
