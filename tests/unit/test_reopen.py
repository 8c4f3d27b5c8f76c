"""Reopening a dataset reads only the caption files that changed since the last open.

The state keeps each caption's stat (size, mtime in ns, inode, mode), the digest of its bytes
and its original's tags as interned ids (`files.seen`, `tag_names`). These tests count the
files a reopen reads, check that a changed one is always read again (and an outside change
still flagged), that an older state is migrated in place, and that tags are interned.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import write_dataset
from tui.core import dataset as dataset_module
from tui.core import workspace as workspace_module
from tui.core.dataset import STATE_DIR
from tui.core.reopen import ReopenRecord, pack_record, parse_record
from tui.core.store import (
    STATE_FILE,
    STATE_SCHEMA,
    CorruptStateError,
    NewerStateError,
    Store,
    content_hash,
)
from tui.core.strategy import CaptionFormat, Strategy
from tui.core.workspace import Workspace, ids_below, pack_ids

CAPTIONS = {
    "a.png": None,
    "a.txt": "smile, long_hair, blush\n",
    "b.png": None,
    "b.txt": "long hair, smile, open mouth\n",
    "sub/c.png": None,
    "sub/c.txt": "solo, smile\n",
    "d.png": None,
    "d.txt": "window, solo\n",
}
HOUR_AGO = time.time_ns() - 3600 * 10**9


def backdate(root: Path) -> None:
    """Files written by a test are seconds old: a reopen reads such racy files again, so the
    tests that expect no read make them an hour old first."""
    for path in root.rglob("*"):
        if path.is_file() and STATE_DIR not in path.parts:
            os.utime(path, ns=(HOUR_AGO, HOUR_AGO))


def backdated_dataset(folder: Path, captions: dict[str, str | None]) -> Path:
    root = write_dataset(folder, captions)
    backdate(root)
    return root


def rewrite(path: Path, text: str) -> None:
    """Another tool rewrites a caption; its mtime is set an hour old plus a second (not
    racy, so only its stat tells the change)."""
    path.write_text(text)
    later = HOUR_AGO + 10**9
    os.utime(path, ns=(later, later))


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return backdated_dataset(tmp_path / "ds", CAPTIONS)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every caption file the workspace reads (by path relative to nothing: as given)."""
    seen: list[str] = []
    real = dataset_module.read_caption_stat

    def counting(path: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(os.path.basename(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(workspace_module, "read_caption_stat", counting)
    return seen


def tags_of(ws: Workspace) -> dict[str, tuple[str, ...]]:
    return {e.image: ws.image_tags(e.image) for e in ws.images}


def test_a_reopen_reads_no_caption_when_nothing_changed(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds) as ws:
        first = tags_of(ws)
        counts = ws.tag_counts()
    assert sorted(reads) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    reads.clear()
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == first
        assert ws.tag_counts() == counts
        assert not ws.changed_on_disk and not ws.problems
    assert reads == []
    with Workspace.open(ds, read_only=True) as ws:  # `tags`, `check`: the same, read-only
        assert tags_of(ws) == first
    assert reads == []


def test_a_reopen_reads_exactly_the_files_whose_stat_changed(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds):
        pass
    a, b, c = ds / "a.txt", ds / "b.txt", ds / "sub/c.txt"
    later = HOUR_AGO + 10**9
    os.utime(a, ns=(later, later))  # touched: same bytes, new mtime
    b.write_text("long hair, smile, closed mouth, hat\n")  # new size
    os.utime(b, ns=(later, later))
    # Same bytes and mtime, but a new file (an editor's save-and-rename): a new inode.
    data = c.read_bytes()
    (ds / "sub/c.tmp").write_bytes(data)
    os.replace(ds / "sub/c.tmp", c)
    os.utime(c, ns=(HOUR_AGO, HOUR_AGO))
    reads.clear()
    with Workspace.open(ds) as ws:
        assert sorted(reads) == ["a.txt", "b.txt", "c.txt"]
        # b.txt changed before any save: it is a new original, so its tags are the new ones.
        assert ws.image_tags("sub/c.png") == ("solo", "smile")
        assert ws.image_tags("a.png") == ("smile", "long hair", "blush")
    reads.clear()
    with Workspace.open(ds):
        pass
    assert reads == []  # what changed was recorded: read once, not at every open


def test_new_and_vanished_files_on_reopen(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds):
        pass
    write_dataset(ds, {"e.png": None, "e.txt": "hat, smile\n"})
    backdate(ds)
    (ds / "d.png").unlink()
    (ds / "d.txt").unlink()
    reads.clear()
    with Workspace.open(ds) as ws:
        assert reads == ["e.txt"]
        assert ws.image_tags("e.png") == ("hat", "smile")
        assert "d.png" not in ws.by_image
        assert any(p.path == "d.txt" and "gone" in p.message for p in ws.problems)
        assert ws.tag_counts()["smile"] == 4


def test_an_outside_change_is_flagged_after_cached_reopens(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds) as ws:
        ws.use_strategy(Strategy(name="kd", trigger="kd"))
        assert len(ws.apply().written) == 4
    backdate(ds)  # our own writes are seconds old: made old, so the next open trusts them
    with Workspace.open(ds):
        pass
    reads.clear()
    with Workspace.open(ds) as ws:  # every stat as recorded: nothing read, nothing flagged
        assert reads == [] and not ws.changed_on_disk
        assert ws.image_tags("b.png") == ("long hair", "smile", "open mouth")
        assert not ws.will_change("b.png")
    (ds / "b.txt").write_text("kd, hat\n")  # another tool
    with Workspace.open(ds) as ws:
        assert reads == ["b.txt"]
        assert ws.changed_on_disk == {"b.txt"}
        assert ws.is_changed_on_disk("b.png")
        report = ws.apply()
        assert "b.txt" in {c for c, _ in report.failed}
    assert (ds / "b.txt").read_text() == "kd, hat\n"  # never overwritten silently
    with Workspace.open(ds) as ws:  # still flagged on the next open, cached or not
        assert ws.changed_on_disk == {"b.txt"}


def test_a_change_in_the_same_tick_as_the_read_is_seen_next_time(tmp_path: Path) -> None:
    """A file read seconds after it was written could be changed again in the same mtime
    tick, keeping size and mtime: its stat is not trusted, so the next open reads it."""
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    with Workspace.open(root) as ws:
        ws.use_strategy(Strategy(name="kd", trigger="kd"))
        ws.apply()
    path = root / "a.txt"
    st = path.stat()
    data = path.read_bytes()
    changed = data.replace(b"kd", b"xx")
    assert len(changed) == len(data) and changed != data
    path.write_bytes(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == {"a.txt"}


def test_a_file_rewritten_with_its_mtime_kept_is_the_accepted_blind_spot(ds: Path) -> None:
    """Documented (README): same size, same mtime, same inode: trusted to be unchanged."""
    with Workspace.open(ds):
        pass
    path = ds / "d.txt"
    st = path.stat()
    with open(path, "r+b") as fh:  # in place: the inode stays
        fh.write(b"wombat")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with Workspace.open(ds) as ws:
        assert ws.image_tags("d.png") == ("window", "solo")


def test_interned_tags_are_one_string_object(ds: Path) -> None:
    for _ in range(2):  # a first open parses, the reopen reads the kept ids
        with Workspace.open(ds) as ws:
            a, b = ws.image_tags("a.png"), ws.image_tags("b.png")
            # "long_hair" and "long hair" are one tag, and one object
            assert a[1] == b[0] == "long hair" and a[1] is b[0]
            assert a[0] is b[1] is ws.image_tags("sub/c.png")[1]
            assert ws.sources["a.txt"][0] is ws.sources["b.txt"][1]


def _downgrade_to_schema_1(root: Path) -> None:
    """The state as lora-curator with schema 1 left it: no `seen`, no tag table."""
    conn = sqlite3.connect(root / STATE_DIR / STATE_FILE, isolation_level=None)
    conn.execute("ALTER TABLE files DROP COLUMN seen")
    conn.execute("DROP TABLE tag_names")
    conn.execute("DELETE FROM meta WHERE key = 'tag_parser'")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.close()


def _schema(root: Path) -> str:
    conn = sqlite3.connect(root / STATE_DIR / STATE_FILE)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    finally:
        conn.close()


def test_an_older_state_is_migrated_in_place(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds) as ws:
        ws.set_buckets([("smile", "context")])
        ws.set_trigger("kd")
        ws.use_strategy(ws.strategy)
        ws.apply()
        ws.edit_image_tags("a.png", remove=["blush"])
        expected = tags_of(ws)
        cursor = ws.store.cursor()
    backdate(ds)
    _downgrade_to_schema_1(ds)
    state = ds / STATE_DIR / STATE_FILE
    before = state.read_bytes()
    with Workspace.open(ds, read_only=True) as ws:  # read-only: read as it is, not changed
        assert tags_of(ws) == expected
    assert state.read_bytes() == before and _schema(ds) == "1"
    reads.clear()
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected
        assert ws.store.cursor() == cursor and ws.strategy.bucket_of("smile") == "context"
        assert not ws.changed_on_disk
        assert len(reads) == 4
    assert _schema(ds) == str(STATE_SCHEMA)
    reads.clear()
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected and not ws.changed_on_disk
        assert ws.undo() and "blush" in ws.image_tags("a.png")
    assert reads == []


def test_a_newer_state_is_still_refused(ds: Path) -> None:
    with Workspace.open(ds):
        pass
    conn = sqlite3.connect(ds / STATE_DIR / STATE_FILE, isolation_level=None)
    conn.execute(f"UPDATE meta SET value = '{STATE_SCHEMA + 1}' WHERE key = 'schema'")
    conn.close()
    with pytest.raises(NewerStateError):
        Workspace.open(ds)


def test_damaged_kept_tags_are_ignored_not_trusted(ds: Path, reads: list[str]) -> None:
    with Workspace.open(ds) as ws:
        expected = tags_of(ws)
    conn = sqlite3.connect(ds / STATE_DIR / STATE_FILE, isolation_level=None)
    # ids past the end of the tag table, and a `seen` cut short
    (seen,) = conn.execute("SELECT seen FROM files WHERE caption = 'a.txt'").fetchone()
    conn.execute("UPDATE files SET seen = ? WHERE caption = 'a.txt'", (seen + b"\xff\xff\xff\x7f",))
    conn.execute("UPDATE files SET seen = substr(seen, 1, 7) WHERE caption = 'b.txt'")
    conn.close()
    reads.clear()
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected
        assert not ws.problems
    assert set(reads) == {"a.txt", "b.txt", "c.txt", "d.txt"}  # read as a first open
    reads.clear()
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected
    assert reads == []  # and recorded again


def test_another_underscore_rule_parses_again(ds: Path) -> None:
    with Workspace.open(ds) as ws:
        assert "long hair" in ws.image_tags("a.png")
    keep = Strategy(name="keep", caption=CaptionFormat(underscores="keep"))
    with Workspace.open(ds, strategy=keep) as ws:
        assert ws.image_tags("a.png") == ("smile", "long_hair", "blush")
    with Workspace.open(ds) as ws:
        assert ws.image_tags("a.png") == ("smile", "long hair", "blush")


def test_a_warning_of_a_caption_is_given_at_every_open(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", {"a.png": None, "a.txt": b"caf\xe9, smile\n"})
    backdate(root)
    for _ in range(2):
        with Workspace.open(root) as ws:
            assert ws.image_tags("a.png") == ("café", "smile")
            assert any("not UTF-8" in p.message for p in ws.problems)


def test_a_reopen_says_it_finds_changed_captions_not_that_it_reads_them(ds: Path) -> None:
    def phases_of_open() -> set[str]:
        seen: set[str] = set()
        Workspace.open(ds, progress=lambda phase, done, total: seen.add(phase)).close()
        return seen

    assert "read" in phases_of_open()  # the first open reads every caption
    again = phases_of_open()
    assert "changed" in again and "read" not in again


# ---- the reopen record: one value instead of every file record --------------------------


@pytest.fixture
def store_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """What an open asks the state for: the file records it reads (None: every one) and
    each check of the original copies."""
    calls: dict[str, list[object]] = {"rows": [], "verify": []}
    real_rows, real_verify = Store.file_rows, Store.verify_originals

    def file_rows(self: Store, captions: list[str] | None = None):  # type: ignore[no-untyped-def]
        calls["rows"].append(None if captions is None else sorted(captions))
        return real_rows(self, captions)

    def verify(self: Store) -> None:
        calls["verify"].append(True)
        real_verify(self)

    monkeypatch.setattr(Store, "file_rows", file_rows)
    monkeypatch.setattr(Store, "verify_originals", verify)
    return calls


def _sql(root: Path, *statements: str) -> None:
    conn = sqlite3.connect(root / STATE_DIR / STATE_FILE, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def outcome(ws: Workspace) -> tuple[object, ...]:
    """Everything an open found that a user sees."""
    return (
        tags_of(ws),
        {e.image: ws.caption_for(e.image) for e in ws.images},
        {e.image: ws.will_change(e.image) for e in ws.images},
        sorted(ws.changed_on_disk),
        dict(ws.disk_hash),
        sorted((p.path, p.message) for p in ws.problems),
        ws.tag_counts(),
    )


def outcome_without_record(root: Path) -> tuple[object, ...]:
    _sql(root, "DELETE FROM reopen")
    with Workspace.open(root, read_only=True) as ws:
        return outcome(ws)


def test_a_reopen_with_nothing_changed_reads_no_record_and_checks_no_copy(
    ds: Path, reads: list[str], store_reads: dict[str, list[object]]
) -> None:
    with Workspace.open(ds) as ws:
        first, counts = tags_of(ws), ws.tag_counts()
    assert store_reads == {"rows": [None], "verify": [True]}
    for read_only in (False, True, False):
        store_reads["rows"].clear()
        store_reads["verify"].clear()
        reads.clear()
        with Workspace.open(ds, read_only=read_only) as ws:
            assert tags_of(ws) == first and ws.tag_counts() == counts
            assert not ws.problems and not ws.changed_on_disk
            assert ws.disk_hash["a.txt"] == content_hash((ds / "a.txt").read_bytes())
        assert reads == [] and store_reads == {"rows": [[]], "verify": []}


def test_a_changed_file_is_read_alone_and_the_record_follows(
    ds: Path, reads: list[str], store_reads: dict[str, list[object]]
) -> None:
    with Workspace.open(ds):
        pass
    rewrite(ds / "b.txt", "hat, smile\n")
    reads.clear()
    with Workspace.open(ds) as ws:
        assert reads == ["b.txt"]
        seen = outcome(ws)
    reads.clear()
    store_reads["verify"].clear()
    with Workspace.open(ds) as ws:
        assert outcome(ws) == seen
    assert reads == [] and store_reads["verify"] == []  # the record held
    assert seen == outcome_without_record(ds)


def test_a_copy_changed_through_sqlite_is_still_refused(ds: Path) -> None:
    for _ in range(2):  # the second open keeps the record, the third would use it
        with Workspace.open(ds):
            pass
    _sql(ds, "UPDATE files SET original = x'00' WHERE caption = 'b.txt'")
    for read_only in (True, False):
        with pytest.raises(CorruptStateError, match="does not match its digest"):
            Workspace.open(ds, read_only=read_only)


def test_without_its_triggers_the_record_is_not_trusted_and_they_come_back(
    ds: Path, store_reads: dict[str, list[object]]
) -> None:
    with Workspace.open(ds):
        pass
    _sql(ds, "DROP TRIGGER reopen_files_update")
    store_reads["verify"].clear()
    with Workspace.open(ds, read_only=True):
        pass
    assert store_reads["verify"] == [True]  # checked: the record is not trusted
    with Workspace.open(ds):  # a writable open puts the trigger back
        pass
    _sql(ds, "UPDATE files SET original = x'00' WHERE caption = 'b.txt'")
    with pytest.raises(CorruptStateError, match="does not match its digest"):
        Workspace.open(ds)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE reopen SET data = x'00'",
        "UPDATE reopen SET data = substr(data, 1, length(data) - 4)",
        "UPDATE reopen SET data = 'text'",
        # the right size, with every stat and tag count scrambled
        "UPDATE reopen SET data = substr(data, 1, 36) || randomblob(length(data) - 36)",
    ],
)
def test_a_damaged_record_is_ignored(ds: Path, damage: str) -> None:
    with Workspace.open(ds) as ws:
        expected = tags_of(ws)
    _sql(ds, damage)
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected and not ws.problems
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected and not ws.problems


def test_saved_adopted_absent_and_gone_captions_open_as_without_the_record(
    ds: Path, reads: list[str], store_reads: dict[str, list[object]]
) -> None:
    write_dataset(ds, {"e.png": None})  # no caption file, until apply writes one
    (ds / "f.png").symlink_to("missing.png")  # a broken link: not an image
    backdate(ds)
    with Workspace.open(ds) as ws:
        ws.use_strategy(Strategy(name="kd", trigger="kd"))
        ws.apply()
    backdate(ds)
    (ds / "d.txt").write_text("kd, hat\n")  # another tool
    (ds / "a.txt").write_text("kd, hat\n")
    (ds / "sub/c.png").unlink()  # its caption is now an orphan, its record gone
    backdate(ds)
    with Workspace.open(ds) as ws:
        assert ws.changed_on_disk == {"a.txt", "d.txt"}
        ws.adopt_disk_version("d.txt")
    for again in (False, True):  # adopting changed a record: the second open has one
        reads.clear()
        store_reads["verify"].clear()
        with Workspace.open(ds) as ws:
            seen = outcome(ws)
            assert ws.changed_on_disk == {"a.txt"}
            assert ws.caption_for("e.png") == "kd\n"
            assert [p.path for p in ws.problems if "gone" in p.message] == ["sub/c.txt"]
        assert reads == [] and store_reads["verify"] == ([] if again else [True])
    assert seen == outcome_without_record(ds)


def test_an_image_without_caption_opens_as_without_the_record(ds: Path, reads: list[str]) -> None:
    write_dataset(ds, {"e.png": None})
    backdate(ds)
    for _ in range(3):
        with Workspace.open(ds) as ws:
            assert ws.image_tags("e.png") == () and ws.disk_hash["e.txt"] is None
    reads.clear()
    (ds / "e.txt").write_text("hat\n")
    os.utime(ds / "e.txt", ns=(HOUR_AGO, HOUR_AGO))
    with Workspace.open(ds) as ws:
        assert reads == ["e.txt"] and ws.changed_on_disk == {"e.txt"}
        seen = outcome(ws)
    assert seen == outcome_without_record(ds)


def forge_record(
    root: Path, edit: Callable[[bytes], bytes] = bytes, **fields: object
) -> ReopenRecord:
    """Put back the kept reopen record with `fields` changed (then `edit`ed as bytes); the
    record as it was is returned."""
    conn = sqlite3.connect(root / STATE_DIR / STATE_FILE, isolation_level=None)
    try:
        (data,) = conn.execute("SELECT data FROM reopen").fetchone()
        kept = parse_record(data)
        assert kept is not None
        new = replace(kept, **fields)
        value = pack_record(
            new.signature, new.names, new.gone, new.unrecorded, new.stats, new.digests,
            new.counts, new.tags, new.tag_counts,
        )  # fmt: skip
        conn.execute("UPDATE reopen SET data = ?", (edit(value),))
    finally:
        conn.close()
    return kept


def test_a_record_with_ids_past_the_tag_table_is_not_trusted(ds: Path) -> None:
    with Workspace.open(ds) as ws:
        expected = tags_of(ws)
    kept = forge_record(ds, tag_counts={0xFFFFFF: 4})
    assert len(kept) == 4
    forge_record(ds, tags=b"\xff\xff\xff\x00" * (len(kept.tags) // 4))  # every id past it
    with Workspace.open(ds) as ws:
        assert tags_of(ws) == expected and not ws.problems


_LIMITS = st.sampled_from([0, 1, 2, 255, 256, 257, 3000, 65536, 65537, 1 << 24, (1 << 24) + 5])


@given(
    limit=_LIMITS | st.integers(0, (1 << 32) - 1),
    ids=st.lists(st.integers(0, (1 << 32) - 1) | st.integers(0, 70000), max_size=30),
)
def test_the_check_of_kept_ids_agrees_with_comparing_each(limit: int, ids: list[int]) -> None:
    near = [max(0, limit - 1 + d) % (1 << 32) for d in (-1, 0, 1)]
    for sample in (ids, [i % max(limit, 1) for i in ids], ids + near, near):
        assert ids_below(pack_ids(sample), limit) == all(i < limit for i in sample)


@pytest.mark.parametrize("which", ["last", "middle"])
def test_a_damaged_page_stops_the_open_before_anything_is_written(ds: Path, which: str) -> None:
    """The integrity check runs beside the open's reading; it still stops the open, with
    its own message, and nothing is written to the state first (the check of each write)."""
    for _ in range(2):
        with Workspace.open(ds):
            pass
    state = ds / STATE_DIR / STATE_FILE
    data = bytearray(state.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    pages = len(data) // size
    page = pages if which == "last" else pages // 2 + 1
    data[(page - 1) * size : page * size] = bytes(range(256)) * (size // 256)
    state.write_bytes(bytes(data))
    (ds / "a.txt").write_text("hat\n")  # a change the open would record
    for read_only in (True, False):
        with pytest.raises(CorruptStateError, match="damaged"):
            Workspace.open(ds, read_only=read_only)
        assert state.read_bytes() == bytes(data)


def test_a_record_whose_stats_are_all_stale_is_made_anew(
    ds: Path, reads: list[str], store_reads: dict[str, list[object]]
) -> None:
    with Workspace.open(ds) as ws:
        expected = outcome(ws)
    kept = forge_record(ds)
    forge_record(ds, stats=b"\x01" * len(kept.stats))  # no file has this stat
    with Workspace.open(ds) as ws:
        assert outcome(ws) == expected
    reads.clear()
    store_reads["rows"].clear()
    with Workspace.open(ds) as ws:
        assert outcome(ws) == expected
    assert reads == [] and store_reads["rows"] == [[]]  # every stat matched the new record


def test_names_that_are_not_utf8_reopen_from_the_record(
    tmp_path: Path, reads: list[str], store_reads: dict[str, list[object]]
) -> None:
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    raw = os.fsencode(root)
    for name, data in ((b"caf\xe9.png", b""), (b"caf\xe9.txt", b"hat, smile\n")):
        with open(raw + b"/" + name, "wb") as fh:
            fh.write(data)
    backdate(root)
    for _ in range(2):
        with Workspace.open(root) as ws:
            expected = outcome(ws)
    store_reads["verify"].clear()
    reads.clear()
    with Workspace.open(root) as ws:
        assert outcome(ws) == expected
        assert ws.image_tags(os.fsdecode(b"caf\xe9.png")) == ("hat", "smile")
    assert reads == [] and store_reads["verify"] == []


def test_a_record_with_names_that_do_not_decode_is_not_used(ds: Path) -> None:
    with Workspace.open(ds) as ws:
        expected = outcome(ws)
    kept = forge_record(ds)
    forge_record(
        ds,
        # the gone name is not UTF-8 either
        lambda value: value.replace(b"\xed\xb3\xbf", b"\xff\xfe\xfd"),
        names=kept.names.replace(b"a.txt", b"\xff.txt"),
        gone=["\udcff"],
        unrecorded=[],
    )
    with Workspace.open(ds) as ws:
        assert outcome(ws) == expected


@pytest.mark.parametrize("was_on", [True, False])
def test_the_collector_pauses_while_a_dataset_loads_and_comes_back_as_it_was(
    ds: Path, monkeypatch: pytest.MonkeyPatch, was_on: bool
) -> None:
    """A load pauses the cyclic collector (its full passes over millions of new objects
    cost a 1M reopen over a second) and leaves it as the caller had it: after an open,
    after an open that fails, and after opens that overlap in threads."""
    import gc
    import threading

    during: list[bool] = []
    real = Workspace._read_captions

    def watched(self: Workspace, *args: object) -> None:
        during.append(gc.isenabled())
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "_read_captions", watched)
    (gc.enable if was_on else gc.disable)()
    try:
        with Workspace.open(ds):
            assert gc.isenabled() == was_on
        failed: list[BaseException] = []

        def reopen() -> None:
            try:
                Workspace.open(ds, read_only=True).close()
            except BaseException as exc:  # reported by the test
                failed.append(exc)

        threads = [threading.Thread(target=reopen) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == [] and gc.isenabled() == was_on

        def broken(self: Workspace, *args: object) -> None:
            during.append(gc.isenabled())
            raise RuntimeError("the open fails")

        monkeypatch.setattr(Workspace, "_read_captions", broken)
        with pytest.raises(RuntimeError, match="the open fails"):
            Workspace.open(ds)
        assert gc.isenabled() == was_on
    finally:
        gc.enable()
    assert len(during) == 5 and not any(during)
