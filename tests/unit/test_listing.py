"""A reopen reuses the folders' listing while no folder changed.

The state keeps what the last scan found with each folder's device, inode, mtime and ctime
(`ScanResult.listing`, meta `listing`). Adding, removing or renaming an entry changes its
folder's mtime, and putting the mtime back changes the ctime: any of them makes the next
open list the folders again. These tests check that the kept listing gives exactly what a
scan gives, that every kind of change is seen, and that a listing that cannot be trusted
(symlinks, a folder changed moments ago, a damaged or forged state) is never used.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_PNG, write_dataset
from tui.core import dataset as dataset_module
from tui.core.dataset import STATE_DIR, scan_dataset
from tui.core.store import STATE_FILE
from tui.core.workspace import Workspace

FILES = {
    "a.png": None,
    "a.txt": "smile, long hair\n",
    "b.png": None,  # no caption
    "c.jpg": None,
    "c.txt": "solo\n",
    "orphan.txt": "window\n",
    "sub/d.png": None,
    "sub/d.txt": "blush\n",
    "sub/deeper/e.webp": None,
    "notes.md": "not a caption\n",
    "caf\udce9.png": None,  # not UTF-8 (b"caf\xe9"): kept as the bytes it is
    "caf\udce9.txt": "latte\n",
    "fifo.png": None,  # its caption is a FIFO (made in `ds`): never opened
    "dotted.folder/name.with.dots.png": None,  # the caption pairs by the last dot only
    "dotted.folder/name.with.dots.txt": "dots\n",
    "new\nline.png": None,
    "new\nline.txt": "newline\n",
}
HOUR_AGO = time.time_ns() - 3600 * 10**9


def backdate(root: Path) -> None:
    """What a test writes is seconds old: a folder changed within 2 s of its listing is
    listed again next time, so the tests that expect a reuse make everything an hour old."""
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if STATE_DIR not in path.parts:
            os.utime(path, ns=(HOUR_AGO, HOUR_AGO), follow_symlinks=False)
    os.utime(root, ns=(HOUR_AGO, HOUR_AGO))


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    root = write_dataset(tmp_path / "ds", FILES)
    os.mkfifo(root / "fifo.txt")
    Workspace.open(root).close()  # makes the state (a new entry in the root folder)
    backdate(root)
    return root


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each scan of a workspace open reused the kept listing."""
    seen: list[bool] = []
    real = dataset_module.scan_dataset

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        seen.append(result.reused)
        return result

    monkeypatch.setattr("tui.core.workspace.scan_dataset", recording)
    return seen


def opened(root: Path) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str]], list[str]]:
    """What an open found: images with their captions, problems, and each image's tags."""
    with Workspace.open(root) as ws:
        return (
            [tuple(e) for e in ws.images],
            [(p.path, p.message) for p in ws.problems],
            [",".join(ws.image_tags(e.image)) for e in ws.images],
        )


def test_a_reopen_reuses_the_listing_and_finds_what_a_scan_finds(
    ds: Path, listings: list[bool]
) -> None:
    first = opened(ds)  # keeps the listing
    again = opened(ds)
    assert listings == [False, True]
    assert again == first
    fresh = scan_dataset(ds)
    assert [tuple(e) for e in fresh.images] == first[0]
    assert ("b.png", "no caption file (b.txt): no source tags") in first[1]
    assert ("orphan.txt", "caption without image: ignored") in first[1]
    assert "sub/deeper/e.webp" in [e[0] for e in first[0]]
    assert "caf\udce9.png" in [e[0] for e in first[0]]
    assert first[2][[e[0] for e in first[0]].index("caf\udce9.png")] == "latte"
    assert any(p == "fifo.txt" and "FIFO" in m for p, m in first[1])
    assert ("dotted.folder/name.with.dots.png", "dotted.folder/name.with.dots.txt", True) in (
        first[0]
    )
    assert first[2][[e[0] for e in first[0]].index("new\nline.png")] == "newline"


@pytest.mark.parametrize(
    "change",
    [
        "add an image",
        "add a caption",
        "remove a caption",
        "rename an image",
        "add in a subfolder",
        "new subfolder",
        "remove a subfolder",
        "mtime put back",
    ],
)
def test_every_change_of_a_folder_is_listed_again(
    ds: Path, listings: list[bool], change: str
) -> None:
    opened(ds)
    if change == "add an image":
        (ds / "new.png").write_bytes(TINY_PNG)
    elif change == "add a caption":
        (ds / "b.txt").write_text("new caption\n")
    elif change == "remove a caption":
        (ds / "a.txt").unlink()
    elif change == "rename an image":
        (ds / "c.jpg").rename(ds / "c2.jpg")
    elif change == "add in a subfolder":
        (ds / "sub" / "deeper" / "f.png").write_bytes(TINY_PNG)
    elif change == "new subfolder":
        (ds / "sub" / "other").mkdir()
        (ds / "sub" / "other" / "g.png").write_bytes(TINY_PNG)
    elif change == "remove a subfolder":
        (ds / "sub" / "deeper" / "e.webp").unlink()
        (ds / "sub" / "deeper").rmdir()
    elif change == "mtime put back":
        (ds / "new.png").write_bytes(TINY_PNG)
        os.utime(ds, ns=(HOUR_AGO, HOUR_AGO))  # as it was listed: the ctime tells
    images, problems, _ = opened(ds)
    assert listings == [False, False]
    fresh = scan_dataset(ds)
    assert images == [tuple(e) for e in fresh.images]
    assert problems[: len(fresh.problems)] == fresh.problems
    if change == "add a caption":  # found; an outside change to adopt, as always
        assert ("b.png", "b.txt", True) in images
        assert ("b.txt", "changed on disk since lora-curator last wrote it") in problems


def test_a_folder_changed_moments_before_its_listing_is_listed_again(
    ds: Path, listings: list[bool]
) -> None:
    (ds / "new.png").write_bytes(TINY_PNG)  # the root folder changes now
    opened(ds)
    opened(ds)
    assert listings == [False, False]  # racy: not kept
    backdate(ds)
    opened(ds)
    opened(ds)
    assert listings[2:] == [False, True]


@pytest.mark.parametrize("link", ["image", "caption", "folder"])
def test_a_listing_with_a_symlink_is_never_kept(
    ds: Path, listings: list[bool], link: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    if link == "image":
        (outside / "x.png").write_bytes(TINY_PNG)
        (ds / "x.png").symlink_to(outside / "x.png")
    elif link == "caption":
        (outside / "b.txt").write_text("linked\n")
        (ds / "b.txt").symlink_to(outside / "b.txt")
    else:
        (outside / "y.png").write_bytes(TINY_PNG)
        (ds / "linked").symlink_to(outside, target_is_directory=True)
    backdate(ds)
    opened(ds)
    opened(ds)
    # What a link leads to can change with no folder changing: every open lists again.
    assert listings == [False, False]
    if link == "image":
        (outside / "x.png").unlink()  # the link breaks; the folder did not change
        images, problems, _ = opened(ds)
        assert "x.png" not in [i[0] for i in images]
        assert ("x.png", "broken link: skipped") in problems


def read_listing(root: Path) -> str | None:
    with sqlite3.connect(root / STATE_DIR / STATE_FILE) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'listing'").fetchone()
    return row[0] if row else None


def write_listing(root: Path, value: str) -> None:
    conn = sqlite3.connect(root / STATE_DIR / STATE_FILE)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'listing'", (value,))
    conn.close()


def forged(listing: str, how: str) -> str:
    data = json.loads(listing)
    if how == "not json":
        return listing[: len(listing) // 2]
    if how == "leaves the dataset":
        data["images"] = "../../etc/passwd.png\0" + data["images"]
    elif how == "absolute":
        data["images"] = "/etc/x.png\0" + data["images"]
    elif how == "empty name":
        data["images"] += "\0"
    elif how == "wrong types":
        data["folders"] = [["", "dev", None, 1, 2]]
    elif how == "another version":
        data["version"] = 999
    elif how == "missing not listed":
        data["missing"] = "ghost.png"
    elif how == "not a file name":  # a lone surrogate no name on disk decodes to
        data["images"] = "bad\ud800.png\0" + data["images"]
    return json.dumps(data)


@pytest.mark.parametrize(
    "how",
    [
        "not json",
        "leaves the dataset",
        "absolute",
        "empty name",
        "wrong types",
        "another version",
        "missing not listed",
        "not a file name",
    ],
)
def test_a_damaged_or_forged_listing_is_ignored(ds: Path, listings: list[bool], how: str) -> None:
    expected = opened(ds)
    kept = read_listing(ds)
    assert kept is not None
    write_listing(ds, forged(kept, how))
    assert opened(ds) == expected  # listed again, as if nothing was kept
    assert listings == [False, False]
    assert read_listing(ds) == kept  # and the good one kept again


def test_another_caption_extension_lists_again(ds: Path, listings: list[bool]) -> None:
    opened(ds)
    kept = read_listing(ds)
    assert kept is not None
    assert scan_dataset(ds, ".caption", reuse=kept).reused is False
    assert scan_dataset(ds, ".txt", reuse=kept).reused is True


def test_a_read_only_open_keeps_nothing(ds: Path) -> None:
    with sqlite3.connect(ds / STATE_DIR / STATE_FILE) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'listing'")
    conn.close()
    Workspace.open(ds, read_only=True).close()
    assert read_listing(ds) is None
    Workspace.open(ds).close()
    assert read_listing(ds) is not None


def test_after_apply_the_folder_is_listed_again_and_right(ds: Path, listings: list[bool]) -> None:
    opened(ds)
    with Workspace.open(ds) as ws:
        ws.set_trigger("kaede")
        ws.apply()
    images, _, tags = opened(ds)
    assert listings == [False, True, False]  # apply wrote into the folders
    assert tags[[i[0] for i in images].index("a.png")] == "smile,long hair"
    assert (ds / "a.txt").read_text().startswith("kaede, ")
