"""A dataset opened for curation: state, apply, restore, the edit log, the working strategy."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from tui.core.strategy import CaptionFormat, Strategy
from tui.core.workspace import Workspace
from tui.core.writer import TEMP_PREFIX

STATE = Path(".lora-curator") / "state.sqlite3"

KAEDE = Strategy(
    name="kaede",
    trigger="kaede",
    pattern="absorb",
    buckets={
        "black hair": "trait",
        "short hair": "trait",
        "smile": "context",
        "sitting": "context",
        "blurry": "flaw",
        "general": "drop",
    },
    aliases={"gray pants": "grey pants"},
)


def apply_with(root: Path, strategy: Strategy | None = None, ref: str = ""):
    """What `lora-curator apply` does: make `strategy` the working one and write captions."""
    with Workspace.open(root, strategy=strategy) as ws:
        if strategy is not None:
            ws.use_strategy(strategy, ref)
        return ws.apply()


def captions_of(root: Path) -> dict[str, str]:
    with Workspace.open(root, read_only=True) as ws:
        return {e.image: c for e, c in ws.render_all()}


def set_old_mtime(path: Path) -> int:
    """Put the file's mtime in the past, so a rewrite cannot go unnoticed; return it (ns)."""
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return path.stat().st_mtime_ns


def replace_pattern(strategy: Strategy, pattern: str) -> Strategy:
    return replace(strategy, pattern=pattern)


# ---- the state ---------------------------------------------------------------------------------


def test_first_open_creates_state_and_snapshots_originals(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": b"smile, blush\r\n", "b.png": None})
    assert not (root / ".lora-curator").exists()
    with Workspace.open(root) as ws:
        assert (root / STATE).is_file()
        assert ws.store is not None
        assert ws.store.originals() == {"a.txt": b"smile, blush\r\n", "b.txt": None}
        assert ws.has_strategy is False


def test_originals_are_taken_once(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    apply_with(root, replace_pattern(KAEDE, "keep-all"))
    assert (root / "a.txt").read_bytes() == b"kaede, smile\n"
    # Later opens and applies do not take the written file for the original.
    apply_with(root, replace_pattern(KAEDE, "absorb"))
    with Workspace.open(root) as ws:
        ws.restore()
    assert (root / "a.txt").read_bytes() == b"smile\n"


ODD_FILES: dict[str, bytes] = {
    "bom.txt": b"\xef\xbb\xbfblack_hair, smile\r\n",
    "u16.txt": b"\xff\xfe" + "café, naïve\r\n".encode("utf-16-le"),
    "cp.txt": "café, smile\n".encode("cp1252"),
    "cr.txt": b"smile\rblush\r",
    "nonl.txt": b"smile, blush",
    "spaces.txt": b"  smile ,  blush  \n\n",
    "sub/deep.txt": b"sitting,smile",
}


def odd_dataset(make_dataset) -> Path:
    files: dict[str, bytes | str | None] = dict(ODD_FILES)
    for caption in ODD_FILES:
        files[caption[: -len(".txt")] + ".png"] = None
    files["new.png"] = None  # no caption file: apply creates one, restore removes it
    return make_dataset(files)


def test_apply_writes_utf8_lf_captions(make_dataset):
    root = odd_dataset(make_dataset)
    report = apply_with(root, Strategy(trigger="kaede"))
    assert sorted(report.written) == sorted([*ODD_FILES, "new.txt"])
    assert (root / "bom.txt").read_bytes() == b"kaede, black hair, smile\n"
    assert (root / "u16.txt").read_bytes() == "kaede, café, naïve\n".encode()
    assert (root / "cp.txt").read_bytes() == "kaede, café, smile\n".encode()
    assert (root / "cr.txt").read_bytes() == b"kaede, smile, blush\n"
    assert (root / "nonl.txt").read_bytes() == b"kaede, smile, blush\n"
    assert (root / "spaces.txt").read_bytes() == b"kaede, smile, blush\n"
    assert (root / "sub/deep.txt").read_bytes() == b"kaede, sitting, smile\n"
    assert (root / "new.txt").read_bytes() == b"kaede\n"


def test_restore_puts_back_originals_byte_for_byte(make_dataset, tree_snapshot):
    root = odd_dataset(make_dataset)
    before = {rel: data for rel, (kind, data, *_rest) in tree_snapshot(root).items()}
    apply_with(root, Strategy(trigger="kaede"))
    assert (root / "new.txt").exists()
    with Workspace.open(root) as ws:
        report = ws.restore()
    assert sorted(report.written) == sorted([*ODD_FILES, "new.txt"])
    after = {
        rel: data
        for rel, (kind, data, *_rest) in tree_snapshot(root).items()
        if not rel.startswith(".lora-curator")
    }
    assert after == before
    assert not (root / "new.txt").exists()
    # Restoring again changes nothing.
    with Workspace.open(root) as ws:
        again = ws.restore()
    assert again.written == []
    assert sorted(again.unchanged) == sorted([*ODD_FILES, "new.txt"])


def test_sources_stay_the_originals_after_apply(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "1girl, black hair, smile, general\n"})
    apply_with(root, KAEDE)
    assert (root / "a.txt").read_bytes() == b"kaede, 1girl, smile\n"
    # The absorbed trait is not lost: switching pattern re-renders from the original tags.
    keep_all = replace_pattern(KAEDE, "keep-all")
    with Workspace.open(root, strategy=keep_all) as ws:
        assert ws.source_tags("a.png") == ("1girl", "black hair", "smile", "general")
        assert ws.caption_for("a.png") == "kaede, 1girl, black hair, smile\n"


# ---- apply -------------------------------------------------------------------------------------


def test_apply_writes_only_files_whose_bytes_change(make_dataset):
    root = make_dataset(
        {"a.png": None, "a.txt": "kaede, smile\n", "b.png": None, "b.txt": "smile, blush"}
    )
    a_mtime = set_old_mtime(root / "a.txt")
    report = apply_with(root, Strategy(trigger="kaede"))
    assert report.written == ["b.txt"]
    assert report.unchanged == ["a.txt"]
    assert (root / "a.txt").stat().st_mtime_ns == a_mtime
    assert (root / "b.txt").read_bytes() == b"kaede, smile, blush\n"

    b_mtime = set_old_mtime(root / "b.txt")
    second = apply_with(root)  # the working strategy, from the state
    assert second.written == []
    assert sorted(second.unchanged) == ["a.txt", "b.txt"]
    assert second.summary() == "0 written, 2 unchanged, 0 skipped"
    assert (root / "b.txt").stat().st_mtime_ns == b_mtime


def test_apply_keeps_mode_bits(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "b.png": None, "b.txt": "blush\n"})
    os.chmod(root / "a.txt", 0o600)
    os.chmod(root / "b.txt", 0o664)
    apply_with(root, Strategy(trigger="kaede"))
    assert (root / "a.txt").read_bytes() == b"kaede, smile\n"
    assert stat.S_IMODE((root / "a.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "b.txt").stat().st_mode) == 0o664


def test_failed_write_leaves_old_caption_and_is_reported(make_dataset, monkeypatch):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "b.png": None, "b.txt": "blush\r\n"})
    real_replace = os.replace

    def replace_failing_for_b(src, dst):
        if Path(dst).name == "b.txt":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_for_b)
    report = apply_with(root, Strategy(trigger="kaede"))
    assert report.written == ["a.txt"]
    assert [path for path, _ in report.failed] == ["b.txt"]
    assert "No space left on device" in report.failed[0][1]
    assert report.summary() == "1 written, 0 unchanged, 1 skipped"
    assert (root / "b.txt").read_bytes() == b"blush\r\n"
    assert (root / "a.txt").read_bytes() == b"kaede, smile\n"
    assert [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)] == []

    # Once the disk recovers, the next apply writes it and restore still knows the original.
    monkeypatch.setattr(os, "replace", real_replace)
    retry = apply_with(root)
    assert retry.written == ["b.txt"]
    assert retry.failed == []
    with Workspace.open(root) as ws:
        ws.restore()
    assert (root / "b.txt").read_bytes() == b"blush\r\n"


def test_never_writes_through_a_caption_link_leaving_the_dataset(make_dataset, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"smile, precious\n")
    root = make_dataset({"a.png": None, "b.png": None, "b.txt": "blush\n"})
    os.symlink(outside, root / "a.txt")
    report = apply_with(root, Strategy(trigger="kaede"))
    assert [path for path, _ in report.failed] == ["a.txt"]
    assert report.written == ["b.txt"]
    assert outside.read_bytes() == b"smile, precious\n"
    assert (root / "a.txt").is_symlink()
    with Workspace.open(root) as ws:
        restored = ws.restore()
    assert "a.txt" in [path for path, _ in restored.failed]
    assert outside.read_bytes() == b"smile, precious\n"
    assert (root / "b.txt").read_bytes() == b"blush\n"


def test_empty_caption_is_never_written(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "general, sensitive\n", "b.png": None})
    mtime = set_old_mtime(root / "a.txt")
    strategy = Strategy(buckets={"general": "drop", "sensitive": "drop"})
    report = apply_with(root, strategy)
    skipped = dict(report.skipped)
    assert set(skipped) == {"a.png", "b.png"}
    assert all("empty caption" in why for why in skipped.values())
    assert report.written == []
    assert (root / "a.txt").read_bytes() == b"general, sensitive\n"
    assert (root / "a.txt").stat().st_mtime_ns == mtime
    assert not (root / "b.txt").exists()


def test_stem_collision_is_not_written(make_dataset):
    root = make_dataset(
        {"a.png": None, "a.jpg": None, "a.txt": "smile\n", "b.png": None, "b.txt": "blush\n"}
    )
    report = apply_with(root, Strategy(trigger="kaede"))
    assert (root / "a.txt").read_bytes() == b"smile\n"
    assert report.written == ["b.txt"]
    assert [(p, "collision" in why) for p, why in report.skipped] == [("a.txt", True)]


def test_caption_changed_on_disk_is_not_overwritten(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    apply_with(root, Strategy(trigger="kaede"))
    (root / "a.txt").write_bytes(b"hand, edited\n")
    with Workspace.open(root) as ws:
        assert "a.txt" in [p.path for p in ws.problems]
        ws.set_trigger("kd")
        report = ws.apply()
        assert [p for p, _ in report.failed] == ["a.txt"]
        assert (root / "a.txt").read_bytes() == b"hand, edited\n"
        forced = ws.apply(overwrite_changed=True)
        assert forced.written == ["a.txt"]
    assert (root / "a.txt").read_bytes() == b"kd, smile\n"


def test_open_removes_temp_files_of_an_interrupted_save(make_dataset):
    root = make_dataset({"sub/a.png": None, "sub/a.txt": "smile\n"})
    stale = root / "sub" / f"{TEMP_PREFIX}a.txt.4242"
    stale.write_bytes(b"half a caption")
    with Workspace.open(root) as ws:
        assert not stale.exists()
        assert any(p.path == f"sub/{stale.name}" for p in ws.problems)


def test_read_only_open_creates_nothing(make_dataset, tree_snapshot):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "b.png": None})
    before = tree_snapshot(root)
    with Workspace.open(root, strategy=KAEDE, read_only=True) as ws:
        assert ws.caption_for("a.png") == "kaede, smile\n"
        assert ws.caption_for("b.png") == "kaede\n"
    assert tree_snapshot(root) == before
    assert not (root / ".lora-curator").exists()


def test_read_only_open_of_an_existing_state_changes_nothing(make_dataset, tree_snapshot):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    apply_with(root, KAEDE)
    before = tree_snapshot(root)
    with Workspace.open(root, read_only=True) as ws:
        assert ws.caption_for("a.png") == "kaede, smile\n"
    after = tree_snapshot(root)
    assert sorted(after) == sorted(before)  # no new file (e.g. a -wal or -shm)
    assert after == before


# ---- the working strategy ----------------------------------------------------------------------


def test_no_strategy_on_a_new_dataset(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root) as ws:
        assert ws.has_strategy is False


def test_working_strategy_persists_across_reopen(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile, gray pants\n"})
    report = apply_with(root, KAEDE, ref="kaede.toml")
    assert report.written == ["a.txt"]
    with Workspace.open(root) as ws:
        assert ws.has_strategy is True
        assert ws.strategy == KAEDE
        assert ws.caption_for("a.png") == "kaede, smile, grey pants\n"


def test_a_new_profile_replaces_the_working_strategy(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    apply_with(root, KAEDE)
    other = Strategy(name="other", trigger="kd", pattern="traits-only", buckets=KAEDE.buckets)
    apply_with(root, other)
    assert (root / "a.txt").read_bytes() == b"kd, black hair\n"
    with Workspace.open(root) as ws:
        assert ws.strategy == other


def test_edits_persist_across_reopen(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)
        ws.set_pattern("keep-all")
        ws.set_buckets([("smile", "drop")])
    with Workspace.open(root) as ws:
        assert ws.strategy.pattern == "keep-all"
        assert ws.strategy.bucket_of("smile") == "drop"
        assert ws.caption_for("a.png") == "kaede, black hair\n"


def test_frequency_order_uses_dataset_counts(make_dataset):
    root = make_dataset(
        {
            "a.png": None,
            "a.txt": "window, smile, solo\n",
            "b.png": None,
            "b.txt": "smile, solo\n",
            "c.png": None,
            "c.txt": "smile\n",
        }
    )
    strategy = Strategy(caption=CaptionFormat(order="frequency"))
    with Workspace.open(root, strategy=strategy, read_only=True) as ws:
        assert ws.caption_for("a.png") == "smile, solo, window\n"


def test_frequency_order_counts_tags_as_written_after_aliases(make_dataset):
    # `gray pants` is written `grey pants`: the written tag is on 3 captions, `smile` on 2.
    root = make_dataset(
        {
            "a.png": None,
            "a.txt": "smile, gray pants\n",
            "b.png": None,
            "b.txt": "smile, gray pants\n",
            "c.png": None,
            "c.txt": "grey pants\n",
        }
    )
    strategy = Strategy(
        aliases={"gray pants": "grey pants"}, caption=CaptionFormat(order="frequency")
    )
    with Workspace.open(root, strategy=strategy, read_only=True) as ws:
        assert ws.caption_for("a.png") == "grey pants, smile\n"


# ---- undo / redo -------------------------------------------------------------------------------


def test_undo_redo(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile, cup\n"})
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)  # the dataset's first strategy: the base, not an undo step
        assert ws.undo() is False
        c0 = ws.caption_for("a.png")
        assert c0 == "kaede, smile, cup\n"
        ws.set_pattern("keep-all")
        c1 = ws.caption_for("a.png")
        assert c1 == "kaede, black hair, smile, cup\n"
        ws.set_trigger("  kd ")
        c2 = ws.caption_for("a.png")
        assert c2 == "kd, black hair, smile, cup\n"
        ws.set_buckets([("cup", "drop"), ("smile", "unsorted")])
        c3 = ws.caption_for("a.png")
        assert c3 == "kd, black hair, smile\n"

        assert ws.undo() is True
        assert ws.caption_for("a.png") == c2
        assert ws.undo() is True
        assert ws.caption_for("a.png") == c1
        assert ws.undo() is True
        assert ws.caption_for("a.png") == c0
        assert ws.undo() is False
        assert ws.caption_for("a.png") == c0

        assert ws.redo() is True
        assert ws.caption_for("a.png") == c1
        assert ws.redo() is True
        assert ws.redo() is True
        assert ws.caption_for("a.png") == c3
        assert ws.redo() is False

        # A new edit after undo drops the redo history.
        ws.undo()
        ws.undo()
        assert ws.caption_for("a.png") == c1
        ws.set_pattern("traits-only")
        assert ws.redo() is False
        assert ws.caption_for("a.png") == "kaede, black hair, cup\n"

    # The cursor is persisted: reopening gives the same working state.
    with Workspace.open(root) as ws:
        assert ws.caption_for("a.png") == "kaede, black hair, cup\n"
        assert ws.undo() is True
        assert ws.caption_for("a.png") == c1


def test_undo_of_a_profile_switch(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    apply_with(root, KAEDE)
    other = Strategy(name="other", trigger="kd")
    with Workspace.open(root, strategy=other) as ws:
        ws.use_strategy(other)
        assert ws.caption_for("a.png") == "kd, black hair, smile\n"
        assert ws.undo() is True
        assert ws.strategy == KAEDE
        assert ws.caption_for("a.png") == "kaede, smile\n"


def test_unsaved_follows_the_cursor(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)
        assert ws.unsaved is False
        ws.set_pattern("keep-all")
        assert ws.unsaved is True
        ws.apply()
        ws.store.mark_saved()
        assert ws.unsaved is False
        ws.undo()
        assert ws.unsaved is True
        ws.redo()
        assert ws.unsaved is False


def test_per_image_tag_edits_and_undo(make_dataset):
    root = make_dataset(
        {"a.png": None, "a.txt": "smile, blush\n", "b.png": None, "b.txt": "smile, blush\n"}
    )
    with Workspace.open(root, strategy=Strategy(trigger="kaede")) as ws:
        ws.use_strategy(ws.strategy)
        ws.edit_image_tags("a.png", remove=["Smile"], add=["window"])
        assert ws.caption_for("a.png") == "kaede, blush, window\n"
        assert ws.caption_for("b.png") == "kaede, smile, blush\n"
        assert ws.tag_counts()["smile"] == 1
        assert ws.tag_counts()["window"] == 1
        ws.undo()
        assert ws.caption_for("a.png") == "kaede, smile, blush\n"
        assert ws.tag_counts()["smile"] == 2
        assert ws.tag_counts()["window"] == 0


def test_unknown_pattern_or_bucket_is_refused(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root, strategy=KAEDE) as ws:
        with pytest.raises(ValueError):
            ws.set_pattern("absorb-all")
        with pytest.raises(ValueError):
            ws.set_buckets([("smile", "keep")])
