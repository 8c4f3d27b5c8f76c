"""Saving: what `apply` (write_captions) and ctrl+s (save_all) each write, without Textual."""

from __future__ import annotations

import stat
from pathlib import Path

from tui.core.profile import library_dir, load_profile
from tui.core.session import save_all, write_captions
from tui.core.store import StateError
from tui.core.strategy import Strategy
from tui.core.workspace import Workspace

KAEDE = Strategy(
    name="kaede",
    trigger="kaede",
    pattern="absorb",
    buckets={"black hair": "trait", "smile": "context", "window": "context"},
)
FILES = {
    "a.png": None,
    "a.txt": "1girl, black hair, smile, window",
    "b.png": None,
    "b.txt": "black hair, smile",
}


def test_write_captions_writes_records_and_marks_saved(make_dataset) -> None:
    root = make_dataset(FILES)
    with Workspace.open(root, strategy=KAEDE) as ws:
        report = write_captions(ws, KAEDE, "kaede.toml")
        assert sorted(report.written) == ["a.txt", "b.txt"] and not report.failed
        assert not ws.unsaved
    assert (root / "a.txt").read_text() == "kaede, 1girl, smile, window\n"
    # No profile nor guide: apply writes only the captions.
    assert not library_dir().exists() or not any(library_dir().iterdir())
    with Workspace.open(root) as ws:  # the strategy it used is the working one now
        assert ws.strategy.trigger == "kaede" and ws.profile_ref == "kaede.toml"


def test_write_captions_failure_leaves_log_unsaved(make_dataset) -> None:
    root = make_dataset(FILES)
    (root / "b.txt").chmod(stat.S_IRUSR)
    try:
        with Workspace.open(root, strategy=KAEDE) as ws:
            ws.set_trigger("kaede")  # an edit: the log has something to save
            report = write_captions(ws, KAEDE)
            assert [c for c, _ in report.failed] == ["b.txt"]
            assert ws.unsaved
    finally:
        (root / "b.txt").chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_save_all_writes_captions_profile_and_guide(make_dataset) -> None:
    root = make_dataset(FILES)
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.set_pattern("keep-all")
        report = save_all(ws)
        assert not report.failed and not ws.unsaved
        profile = library_dir() / "kaede.toml"
        assert report.profile_path == profile
        assert "profile saved to" in report.summary
        assert ws.profile_ref == str(profile)  # later saves go to the same file
    assert (root / "a.txt").read_text() == "kaede, 1girl, black hair, smile, window\n"
    assert load_profile(profile).pattern == "keep-all"
    assert "kaede" in (library_dir() / "kaede.guide.md").read_text()


def test_save_all_profile_error_keeps_captions(make_dataset, tmp_path: Path) -> None:
    root = make_dataset(FILES)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the profile folder should be")
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE, str(blocked / "kaede.toml"))
        ws.set_trigger("kaede")  # an edit: the log has something to save
        report = save_all(ws)
        assert report.captions is not None and sorted(report.captions.written) == [
            "a.txt",
            "b.txt",
        ]
        assert [p for p, _ in report.failed] == [str(blocked / "kaede.toml")]
        assert "profile not saved" in report.failed[0][1]
        assert ws.unsaved  # something failed: not marked saved
    assert (root / "b.txt").read_text() == "kaede, smile\n"


def test_save_all_marks_the_rendered_position(make_dataset, monkeypatch) -> None:
    """An edit made while the save runs stays unsaved."""
    root = make_dataset(FILES)
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE, "kaede.toml")
        real_apply = ws.apply

        def apply_then_edit(*args: object, **kwargs: object):
            report = real_apply()
            ws.set_trigger("later")  # a key pressed during the save
            return report

        monkeypatch.setattr(ws, "apply", apply_then_edit)
        monkeypatch.chdir(root.parent)
        report = save_all(ws)
        assert not report.failed
        assert ws.unsaved


def test_save_all_state_error_writes_nothing(make_dataset) -> None:
    root = make_dataset(FILES)
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)
        ws.set_trigger("other")

        def no_disk(*args: object, **kwargs: object):
            raise StateError("the disk is full")

        ws.apply = no_disk  # type: ignore[method-assign]
        report = save_all(ws)
        assert report.summary == "not saved" and report.captions is None
        assert report.failed == [("state", "the disk is full")]
    assert (root / "a.txt").read_text() == "1girl, black hair, smile, window"
