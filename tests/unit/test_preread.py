"""A large first open has a second process read half of its captions (`tui.core.preread`).

The child only saves time: these tests check that its blocks are used (the open does not
read them itself), that what the open then holds and records is exactly what a plain first
open holds and records (the same tags, with the same ids, the same problems, and a reopen
that reads the same files again), whatever the dataset holds, and that a child that fails,
stalls, ends early or talks nonsense changes nothing but the time, and never outlives the
open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_prestat import fake_python
from tests.unit.test_reopen import backdated_dataset, outcome
from tui.core import helper as helper_module
from tui.core import workspace as workspace_module
from tui.core.dataset import STATE_DIR
from tui.core.preread import Preread
from tui.core.workspace import Workspace

CAPTIONS: dict[str, str | bytes | None] = {}
for _i in range(14):
    CAPTIONS[f"img{_i:02}.png"] = None
    CAPTIONS[f"img{_i:02}.txt"] = f"smile, tag_{_i}, long_hair, Tag_{_i % 3}\n"
CAPTIONS["img03.txt"] = b"caf\xe9, smile\n"  # not UTF-8: read as cp1252, with a warning
CAPTIONS["img05.txt"] = "solo\nhat, smile\n"  # two lines: a warning
CAPTIONS["img06.txt"] = "\ufeffsmile, Smile, (a, b:1.2), hat\n"  # a BOM, a case twin, a weight
CAPTIONS["img08.txt"] = ""  # empty: no tags
del CAPTIONS["img09.txt"]  # no caption file at all
CAPTIONS["img15.png"] = None  # no caption either
CAPTIONS["sub/deep.png"] = None
CAPTIONS["sub/deep.txt"] = "solo, hat\n"


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    root = backdated_dataset(tmp_path / "ds", CAPTIONS)
    (root / "img10.txt").unlink()
    os.mkfifo(root / "img10.txt")  # a FIFO: never opened, by either process
    (root / "img11.txt").unlink()
    (tmp_path / "elsewhere.txt").write_text("from, a, link\n")
    (root / "img11.txt").symlink_to(tmp_path / "elsewhere.txt")  # read by the open only
    (root / "img12.txt").write_text("just, written\n")  # racy: read again by the next open
    (root / "weird\udcff.png").write_bytes((root / "img00.png").read_bytes())
    (root / "weird\udcff.txt").write_bytes(b"odd, name\n")  # a file name that is not UTF-8
    return root


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """Every child started, every block taken from one, and every caption the open read
    itself; blocks of 3 captions, a child from the first caption on, and an open that
    waits for its child to end before it reads (without, it ends first)."""
    seen: dict[str, list[object]] = {"children": [], "taken": [], "own": [], "waited": []}
    real_start, real_take = Preread.start.__func__, Preread.take  # type: ignore[attr-defined]
    real_read = workspace_module.read_caption_stat

    def start(cls, *args: object) -> Preread | None:  # type: ignore[no-untyped-def]
        child = real_start(cls, *args)
        seen["children"].append(child)
        return child

    def take(self, index, intern):  # type: ignore[no-untyped-def]
        if self not in seen["waited"]:
            # A few captions take the open less time than starting the child: the open waits
            # once for it to end (all its blocks fit in the pipe), so it has blocks to take.
            seen["waited"].append(self)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2)
        got = real_take(self, index, intern)
        if got is not None:
            seen["taken"].append(index)
        return got

    def read(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["own"].append(os.path.basename(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(Preread, "start", classmethod(start))
    monkeypatch.setattr(Preread, "take", take)
    monkeypatch.setattr(workspace_module, "read_caption_stat", read)
    monkeypatch.setattr(workspace_module, "_PREREAD_BLOCK", 3)
    monkeypatch.setattr(workspace_module, "PREREAD_MIN", 1)
    return seen


def held(ws: Workspace) -> tuple[object, ...]:
    """What an open holds, down to the ids of its tags and what it warned about."""
    assert ws._parser is not None
    return (
        outcome(ws),
        list(ws._parser.names),
        dict(ws._packed),
        sorted(ws._warned),
        sorted(ws.unreadable),
        sorted(ws.links),
    )


def first_and_reopen(root: Path, spy: dict[str, list[object]]) -> tuple[object, ...]:
    """A first open (the state made anew) and a reopen: what each holds, and which files
    the reopen read again (what the first open recorded of them)."""
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)
    with Workspace.open(root) as ws:
        first = held(ws)
    spy["own"].clear()
    with Workspace.open(root) as ws:
        again = held(ws)
    return first, again, sorted(spy["own"])


def plain(root: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as m:
        m.setattr(workspace_module, "PREREAD_MIN", 10**9)
        return first_and_reopen(root, spy)


def reaped(seen: dict[str, list[object]]) -> bool:
    return all(c is None or c._proc.returncode is not None for c in seen["children"])


def test_the_child_reads_a_first_open_and_the_open_is_a_plain_one(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_child = first_and_reopen(ds, spy)
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert spy["taken"], "the open took blocks the child read"
    assert reaped(spy)
    without = plain(ds, spy, monkeypatch)
    assert len(spy["children"]) == 1  # no child for the plain open
    assert with_child == without
    # The reopen read again what the first open could not vouch for (the file written
    # within the last clock ticks), and not the files it recorded.
    assert "img12.txt" in with_child[2] and "img00.txt" not in with_child[2]


def test_the_open_does_not_read_what_the_child_read(ds: Path, spy: dict[str, list[object]]) -> None:
    shutil.rmtree(ds / STATE_DIR, ignore_errors=True)
    with Workspace.open(ds) as ws:
        captions = {e.caption for e in ws.images}
    assert spy["taken"]
    assert 0 < len(spy["own"]) < len(captions)  # the open read the rest
    # The child left the special files to the open: it read the link; the FIFO never.
    assert "img11.txt" in spy["own"] and "img10.txt" not in spy["own"], spy["own"]


def real_child_piped(through: str) -> str:
    """A shell body running the real child with its answers passed `through` a filter."""
    return f'"{sys.executable}" "$@" | {through}'


@pytest.mark.parametrize(
    "body",
    [
        "exit 3",  # dies at once
        "exec sleep 30",  # stalls
        "printf 'not a frame of this protocol, not at all'",  # garbage
        real_child_piped("head -c 300"),  # ends in the middle of a block
        real_child_piped("tail -c +9"),  # its frames, shifted: every field wrong
        real_child_piped("dd bs=1 count=40 2>/dev/null; cat /dev/zero"),  # then zeros
    ],
    ids=["dies", "stalls", "garbage", "ends-early", "shifted", "zeros"],
)
def test_a_child_that_fails_changes_nothing_but_the_time(
    ds: Path,
    spy: dict[str, list[object]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    body: str,
) -> None:
    expected = plain(ds, spy, monkeypatch)
    monkeypatch.setattr(helper_module.sys, "executable", fake_python(tmp_path, body))
    monkeypatch.setattr(helper_module, "STALL_SECONDS", 0.5)
    assert first_and_reopen(ds, spy) == expected
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert reaped(spy)


def test_a_child_that_cannot_start_is_no_child(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = plain(ds, spy, monkeypatch)
    monkeypatch.setattr(helper_module.sys, "executable", str(ds / "no-such-python"))
    assert first_and_reopen(ds, spy) == expected
    assert spy["children"] == [None]


def test_a_failed_open_still_reaps_its_child(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the open fails")

    monkeypatch.setattr(Workspace, "_take_read", broken)
    with pytest.raises(RuntimeError, match="the open fails"):
        Workspace.open(ds)
    assert len(spy["children"]) == 1 and spy["children"][0] is not None
    assert reaped(spy)


def test_a_folder_replaced_after_the_child_began_is_read_by_the_open(
    ds: Path, spy: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = Preread.start

    def start_then_swap(*args: object) -> Preread | None:
        child = real_start(*args)  # the spy's: the child reads the folder as it is now
        old = ds.with_name("ds-old")
        os.rename(ds, old)
        # Other inodes, and one caption changed (the FIFO made anew: copying one blocks).
        shutil.copytree(old, ds, symlinks=True, ignore=shutil.ignore_patterns("img10.txt"))
        os.mkfifo(ds / "img10.txt")
        (ds / "img13.txt").write_text("hat, other\n")
        return child

    monkeypatch.setattr(Preread, "start", start_then_swap)
    with Workspace.open(ds, read_only=True) as ws:
        assert ws.source_tags("img13.png") == ("hat", "other")
    assert spy["taken"] == []  # its blocks were of the old folder
    assert len(spy["children"]) == 1 and reaped(spy)
