"""A large reopen takes its stats in a second process (`tui.core.prestat`).

The child only saves time: these tests check that its answers are used (the open stats no
block the child found unchanged), that a changed file is still found, and that a child
that fails, stalls or talks nonsense changes nothing but the time: the open is exactly the
open without it, and no child outlives the open.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import write_dataset
from tests.unit.test_reopen import backdated_dataset, outcome, rewrite
from tui.core import helper as helper_module
from tui.core import workspace as workspace_module
from tui.core.prestat import Prestat, stat_keys
from tui.core.store import SEEN_STAT
from tui.core.workspace import Workspace

CAPTIONS: dict[str, str | None] = {}
for _i in range(9):
    CAPTIONS[f"img{_i}.png"] = None
    CAPTIONS[f"img{_i}.txt"] = f"smile, tag_{_i}, long_hair\n"
CAPTIONS["sub/deep.png"] = None
CAPTIONS["sub/deep.txt"] = "solo, hat\n"


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return backdated_dataset(tmp_path / "ds", CAPTIONS)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """Every child started (its `Prestat`), and every block the open stat'ed itself;
    blocks of 3 captions, and a child from the first caption on."""
    seen: dict[str, list[object]] = {"children": [], "own": []}
    real_start, real_keys = Prestat.start.__func__, workspace_module.stat_keys  # type: ignore[attr-defined]

    def start(cls, *args: object) -> Prestat | None:  # type: ignore[no-untyped-def]
        child = real_start(cls, *args)
        seen["children"].append(child)
        return child

    def own(lstat, names, pack):  # type: ignore[no-untyped-def]
        seen["own"].append(list(names))
        return real_keys(lstat, names, pack)

    monkeypatch.setattr(Prestat, "start", classmethod(start))
    monkeypatch.setattr(workspace_module, "stat_keys", own)
    monkeypatch.setattr(workspace_module, "_BLOCK", 3)
    monkeypatch.setattr(workspace_module, "PRESTAT_MIN", 1)
    return seen


def reference(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    """What a read-only reopen without any child finds."""
    with monkeypatch.context() as m:
        m.setattr(workspace_module, "PRESTAT_MIN", 10**9)
        with Workspace.open(root, read_only=True) as ws:
            return outcome(ws)


def reaped(seen: dict[str, list[object]]) -> bool:
    return all(c is None or c._proc.returncode is not None for c in seen["children"])


def test_the_child_stats_a_reopen_and_the_open_uses_its_answers(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(ds):
        pass
    assert spy["children"] == []  # no record yet: a first open reads every file
    with Workspace.open(ds) as ws:
        seen = outcome(ws)
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert spy["own"] == []  # every block answered by the child: none stat'ed here
    assert reaped(spy)
    assert seen == reference(ds, monkeypatch)


def test_a_file_changed_since_is_found_through_the_child(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(ds):
        pass
    rewrite(ds / "img4.txt", "hat, smile\n")
    with Workspace.open(ds) as ws:
        assert ws.changed_on_disk == {"img4.txt"}  # another tool's edit, reported
        seen = outcome(ws)
    assert spy["own"] == []  # the changed block is looked at caption by caption
    assert seen == reference(ds, monkeypatch)


def fake_python(tmp_path: Path, body: str) -> str:
    """An "interpreter" that ignores its arguments and runs the shell `body`."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    "body",
    [
        "exit 3",  # dies at once
        "printf '=='; exit 0",  # answers two blocks of the four, then ends
        "printf 'x=!='",  # not its protocol
        "printf '=x!'",  # one answer, then not its protocol
        "exec sleep 30",  # stalls
    ],
    ids=["dies", "ends-early", "garbage", "goes-wrong", "stalls"],
)
def test_a_child_that_fails_changes_nothing_but_the_time(
    ds: Path,
    spy: dict[str, list[object]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    body: str,
) -> None:
    with Workspace.open(ds):
        pass
    expected = reference(ds, monkeypatch)
    rewrite(ds / "img7.txt", "hat\n")  # a change the child is never asked about
    monkeypatch.setattr(helper_module.sys, "executable", fake_python(tmp_path, body))
    monkeypatch.setattr(helper_module, "STALL_SECONDS", 0.5)
    with Workspace.open(ds) as ws:
        assert ws.changed_on_disk == {"img7.txt"}
        seen = outcome(ws)
    assert spy["own"], "the open stat'ed the blocks the child did not answer"
    assert reaped(spy)
    assert seen == reference(ds, monkeypatch)
    assert seen != expected  # img7 changed: found, not missed


def test_a_child_that_cannot_start_is_no_child(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(ds):
        pass
    monkeypatch.setattr(helper_module.sys, "executable", str(ds / "no-such-python"))
    with Workspace.open(ds) as ws:
        seen = outcome(ws)
    assert spy["children"] == [None]
    assert seen == reference(ds, monkeypatch)


def test_a_failed_open_still_reaps_its_child(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(ds):
        pass

    def broken(*args: object) -> None:
        raise RuntimeError("the open fails")

    monkeypatch.setattr(Workspace, "_read_captions", broken)
    with pytest.raises(RuntimeError, match="the open fails"):
        Workspace.open(ds)
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert reaped(spy)


def test_the_child_answers_block_by_block(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "sub/c.txt", "d.txt"):
        write_dataset(tmp_path, {name: "x\n"})
    (tmp_path / "weird\udcff.txt").write_bytes(b"y\n")  # a name that is not UTF-8
    names = ["a.txt", "b.txt", "weird\udcff.txt", "sub/c.txt", "d.txt", "gone.txt"]
    keys = []
    for name in names:
        try:
            keys.append(stat_keys(os.lstat, [str(tmp_path / name)], SEEN_STAT.pack))
        except FileNotFoundError:
            keys.append(b"\xfe" * SEEN_STAT.size)
    keys[4] = b"\x01" * SEEN_STAT.size  # d.txt: not what the record holds
    joined = "\0".join(names).encode("utf-8", "surrogatepass")
    child = Prestat.start(str(tmp_path), joined, b"".join(keys), 2, SEEN_STAT.format)
    assert child is not None
    try:
        # a b | weird c (both as held) | d gone (d differs, gone cannot be stat'ed) | no more
        answers = [child.next_block() for _ in range(4)]
    finally:
        child.close()
    assert answers == [True, True, False, None]
    assert child._proc.returncode == 0


def test_a_folder_replaced_after_the_child_began_is_stat_ed_by_the_open(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(ds):
        pass
    real_start = Prestat.start

    def start_then_swap(*args: object) -> Prestat | None:
        child = real_start(*args)  # the spy's: it stats the folder as it is now
        old = ds.with_name("ds-old")
        os.rename(ds, old)
        shutil.copytree(old, ds)  # the same names, other inodes: and one caption changed
        (ds / "img4.txt").write_text("hat, smile\n")
        return child

    monkeypatch.setattr(Prestat, "start", start_then_swap)
    with Workspace.open(ds, read_only=True) as ws:
        assert "img4.txt" in ws.changed_on_disk  # the child's "same" was of the old folder
    assert len(spy["children"]) == 1 and reaped(spy)


def test_a_block_the_open_looks_at_itself_still_takes_its_answer(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # img1.txt is a FIFO: its block is looked at caption by caption, and the child's answer
    # for it is used up all the same, or every later answer would be a block off.
    (ds / "img1.txt").unlink()
    os.mkfifo(ds / "img1.txt")
    with Workspace.open(ds):
        pass
    rewrite(ds / "img7.txt", "hat\n")
    with Workspace.open(ds) as ws:
        assert ws.changed_on_disk == {"img7.txt"}
        seen = outcome(ws)
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert seen == reference(ds, monkeypatch)
