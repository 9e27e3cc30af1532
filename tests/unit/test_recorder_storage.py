"""Recording storage: date layout, safe names, retention with logged deletions, hash verification."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

from recordings.storage import delete_expired, expired, recording_date, recording_path, safe_name, verify

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def make(root, call_id, when, content=b"RIFF"):
    path = recording_path(root, call_id, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_layout_is_by_utc_day(tmp_path):
    # 01:30 in UTC+3 on July 1st is still June 30th in UTC.
    when = datetime(2025, 7, 1, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    path = recording_path(tmp_path, "abc-123", when)
    assert path == tmp_path / "2025" / "06" / "30" / "abc-123.wav"
    assert recording_date(tmp_path, path) == datetime(2025, 6, 30).date()
    with pytest.raises(ValueError, match="naive"):
        recording_path(tmp_path, "x", datetime(2025, 1, 1))


def test_safe_names_are_safe_and_distinct():
    assert safe_name("a84b4c76e66710@pc33.atlanta.com") != safe_name("a84b4c76e66710_pc33.atlanta.com")
    for call_id in ["../../etc/passwd", "a/b", "a b", "x" * 300, ".hidden", "ü@日本"]:
        name = safe_name(call_id)
        assert "/" not in name and not name.startswith(".") and len(name) <= 100
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert safe_name("plain-id_1.2") == "plain-id_1.2"
    with pytest.raises(ValueError, match="empty call id"):
        safe_name("  ")


def test_retention_selects_days_before_cutoff(tmp_path):
    old = make(tmp_path, "old", NOW - timedelta(days=31))
    edge = make(tmp_path, "edge", NOW - timedelta(days=30))  # the cutoff day itself is kept
    new = make(tmp_path, "new", NOW - timedelta(days=1))
    (tmp_path / "2020" / "notes").mkdir(parents=True)  # not a recording directory: ignored
    (tmp_path / "2020" / "notes" / "x.wav").write_bytes(b"")
    assert expired(tmp_path, 30, NOW) == [old]
    assert sorted(expired(tmp_path, 0, NOW)) == sorted([old, edge, new])
    assert expired(tmp_path / "missing", 30, NOW) == []
    with pytest.raises(ValueError, match="0 days or more"):
        expired(tmp_path, -1, NOW)


def test_delete_expired_logs_each_deletion_and_prunes(tmp_path):
    old1 = make(tmp_path, "a", NOW - timedelta(days=40))
    old2 = make(tmp_path, "b", NOW - timedelta(days=40))
    keep = make(tmp_path, "c", NOW)
    assert delete_expired(tmp_path, 30, NOW, dry_run=True) == [old1, old2]
    assert old1.exists()
    seen = []
    with capture_logs() as logs:
        deleted = delete_expired(tmp_path, 30, NOW, on_delete=seen.append)
    assert deleted == [old1, old2] == seen
    assert not old1.exists() and not old2.exists() and keep.exists()
    assert [e["path"] for e in logs if e["event"] == "recording.deleted"] == [str(old1), str(old2)]
    assert not (tmp_path / "2025" / "05").exists()  # emptied month directory removed
    assert (tmp_path / "2025" / "06").is_dir()


def test_verify(tmp_path):
    path = make(tmp_path, "v", NOW, b"some audio")
    digest = hashlib.sha256(b"some audio").hexdigest()
    assert verify(path, digest)
    assert verify(path, digest.upper())
    path.write_bytes(b"tampered")
    with capture_logs() as logs:
        assert not verify(path, digest)
        assert not verify(tmp_path / "gone.wav", digest)
    assert [e["event"] for e in logs] == ["recording.hash_mismatch", "recording.missing"]
