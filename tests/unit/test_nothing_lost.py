"""Nothing lost: undo/redo of every action, a long history that survives a restart, captions
changed by another tool, failed writes, images that come and go, temp files, two instances.

(The real app killed with -9/SIGHUP and killed `apply` runs are in tests/app/test_kill.py and
tests/cli/test_kill_apply.py.)
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tui.core import writer
from tui.core.profile import strategy_to_dict
from tui.core.store import DatasetLockedError, content_hash
from tui.core.strategy import BUCKETS, PATTERNS, Strategy
from tui.core.workspace import Workspace, replay
from tui.core.writer import TEMP_PREFIX

KAEDE = Strategy(
    name="kaede",
    trigger="kaede",
    pattern="absorb",
    buckets={"black hair": "trait", "smile": "context", "blurry": "flaw", "general": "drop"},
)
OTHER = Strategy(name="other", trigger="kd", pattern="keep-all", buckets={"cup": "drop"})
KD_PROFILE = 'schema = 1\nname = "kd"\ntrigger = "kd"\n'


def observe(ws: Workspace) -> dict[str, Any]:
    """Everything an undo step must bring back: strategy, per-image tags (kept, and with the
    removed ones), sources, captions."""
    return {
        "strategy": strategy_to_dict(ws.strategy),
        "tags": {e.image: ws.image_tags(e.image) for e in ws.images},
        "all tags": {e.image: ws.image_tags(e.image, include_removed=True) for e in ws.images},
        "sources": {e.image: ws.source_tags(e.image) for e in ws.images},
        "captions": {e.image: ws.caption_for(e.image) for e in ws.images},
    }


def kd_profile(tmp_path: Path) -> Path:
    path = tmp_path / "kd.toml"
    path.write_text(KD_PROFILE, encoding="utf-8")
    return path


def captions(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.txt"))}


# ---- undo / redo -------------------------------------------------------------------------------


def test_undo_redo_cover_every_action_kind(make_dataset):
    root = make_dataset(
        {"a.png": None, "a.txt": "black hair, smile, cup\n", "b.png": None, "b.txt": "blush\n"}
    )
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)  # the dataset's first strategy: the base, not a step
    (root / "a.txt").write_bytes(b"red hair, standing\n")  # a tagger re-ran on a.png

    steps = [
        ("bucket change", lambda ws: ws.set_buckets([("cup", "drop"), ("smile", "unsorted")])),
        ("per-image remove", lambda ws: ws.edit_image_tags("a.png", remove=["black hair"])),
        ("per-image restore", lambda ws: ws.edit_image_tags("a.png", restore=["black hair"])),
        ("per-image add", lambda ws: ws.edit_image_tags("b.png", add=["window"])),
        ("pattern", lambda ws: ws.set_pattern("keep-all")),
        ("trigger", lambda ws: ws.set_trigger("kd")),
        ("alias", lambda ws: ws.record("alias", {"tag": "blush", "target": "light blush"})),
        ("strategy switch", lambda ws: ws.use_strategy(OTHER, "other.toml")),
        ("adopt", lambda ws: ws.adopt_disk_version("a.txt")),
        ("after adopt", lambda ws: ws.edit_image_tags("a.png", remove=["standing"])),
    ]
    with Workspace.open(root) as ws:
        assert "a.txt" in ws.changed_on_disk
        states = [observe(ws)]
        for name, step in steps:
            step(ws)
            states.append(observe(ws))
            assert states[-1] != states[-2], f"{name} changed nothing"
        assert states[-1]["sources"]["a.png"] == ("red hair", "standing")

        for i in range(len(steps), 0, -1):
            assert ws.undo() is True
            assert observe(ws) == states[i - 1], f"undo of {steps[i - 1][0]}"
        assert ws.undo() is False
        assert ws.sources["a.txt"] == ("black hair", "smile", "cup")  # the old source is back
        for i in range(1, len(steps) + 1):
            assert ws.redo() is True
            assert observe(ws) == states[i], f"redo of {steps[i - 1][0]}"
        assert ws.redo() is False

        # Back to before the adoption, then a restart: the same state, the same history.
        for _ in range(3):
            ws.undo()
    with Workspace.open(root) as ws:
        assert observe(ws) == states[len(steps) - 3]
        for i in range(len(steps) - 2, len(steps) + 1):
            assert ws.redo() is True
            assert observe(ws) == states[i]


def test_a_thousand_undo_steps_survive_a_restart(make_dataset, capsys):
    root = make_dataset(
        {"a.png": None, "a.txt": "black hair, smile, cup\n", "b.png": None, "b.txt": "blush\n"}
    )
    steps = 1000

    def step(ws: Workspace, i: int) -> None:
        # A curating session: mostly bucket assignments, now and then the other kinds.
        kind = i % 10
        if kind < 6:
            ws.set_buckets([(f"tag {i}", BUCKETS[i % 4]), ("cup", BUCKETS[i % 3])])
        elif kind == 6:
            ws.edit_image_tags("a.png", add=[f"extra {i}"], remove=["smile"] if i % 4 else [])
        elif kind == 7:
            ws.set_trigger(f"kd{i}")
        elif kind == 8:
            ws.set_pattern(PATTERNS[i % 3])
        else:
            ws.record("alias", {"tag": "blush", "target": f"blush {i}"})

    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)
        states = [observe(ws)]
        for i in range(steps):
            step(ws, i)
            states.append(observe(ws))
        for i in range(steps, 600, -1):
            assert ws.undo() is True
            assert observe(ws) == states[i - 1]
        assert ws.store is not None
        started = time.perf_counter()
        replayed = replay(ws.base, ws.store.edits(steps))
        replay_seconds = time.perf_counter() - started
        assert strategy_to_dict(replayed.strategy) == states[steps]["strategy"]

    started = time.perf_counter()
    with Workspace.open(root) as ws:
        open_seconds = time.perf_counter() - started
        assert observe(ws) == states[600]  # the cursor survived
        for i in range(601, 604):  # and so did the redo history
            assert ws.redo() is True
            assert observe(ws) == states[i]
        for i in range(603, 0, -1):
            assert ws.undo() is True
            if i % 50 == 0 or i < 5:
                assert observe(ws) == states[i - 1]
        assert ws.undo() is False
        assert observe(ws) == states[0]
    with capsys.disabled():
        print(
            f"\n{steps}-step replay: {replay_seconds * 1000:.1f} ms; "
            f"reopen at step 600: {open_seconds * 1000:.1f} ms"
        )
    assert replay_seconds < 1.0
    assert open_seconds < 2.0


# ---- captions changed by another tool ----------------------------------------------------------


def applied_then_edited_outside(root: Path, cli_main, profile: Path) -> None:
    code, _, err = cli_main("apply", root, "--profile", profile)
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == b"kd, smile, blush\n"
    (root / "a.txt").write_bytes(b"hand, edited\n")


@pytest.fixture
def two_images(make_dataset) -> Path:
    return make_dataset({"a.png": None, "a.txt": "smile, blush\n", "b.png": None, "b.txt": "cup\n"})


def test_apply_skips_a_caption_changed_outside_names_it_and_exits_1(two_images, tmp_path, cli_main):
    root = two_images
    applied_then_edited_outside(root, cli_main, kd_profile(tmp_path))
    code, _, err = cli_main("apply", root, "--trigger", "kd2")
    assert code == 1
    assert "lora-curator: a.txt: changed on disk since lora-curator last wrote it: " in err
    assert (root / "a.txt").read_bytes() == b"hand, edited\n"
    assert (root / "b.txt").read_bytes() == b"kd2, cup\n"  # the rest is written


def test_a_second_apply_still_skips_it(two_images, tmp_path, cli_main):
    root = two_images
    applied_then_edited_outside(root, cli_main, kd_profile(tmp_path))
    assert cli_main("apply", root)[0] == 1
    code, _, err = cli_main("apply", root)  # never overwritten silently, however often asked
    assert code == 1
    assert "lora-curator: a.txt: changed on disk" in err
    assert (root / "a.txt").read_bytes() == b"hand, edited\n"


def test_adopt_takes_its_tags_and_undo_brings_the_old_source_back(two_images, tmp_path, cli_main):
    root = two_images
    applied_then_edited_outside(root, cli_main, kd_profile(tmp_path))
    code, _, err = cli_main("apply", root, "--adopt")
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == b"kd, hand, edited\n"
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()
        assert ws.source_tags("a.png") == ("hand", "edited")
        assert ws.undo() is True
        assert ws.source_tags("a.png") == ("smile", "blush")
        assert ws.caption_for("a.png") == "kd, smile, blush\n"
        assert ws.redo() is True
        assert ws.source_tags("a.png") == ("hand", "edited")
    # `restore` still knows the very first original.
    assert cli_main("restore", root)[0] == 0
    assert (root / "a.txt").read_bytes() == b"smile, blush\n"


def test_overwrite_writes_ours(two_images, tmp_path, cli_main):
    root = two_images
    applied_then_edited_outside(root, cli_main, kd_profile(tmp_path))
    code, _, err = cli_main("apply", root, "--overwrite")
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == b"kd, smile, blush\n"
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()
        assert ws.source_tags("a.png") == ("smile", "blush")


# ---- disk full, permission denied --------------------------------------------------------------


@pytest.mark.parametrize("call", ["replace", "write"])
def test_failed_writes_are_named_the_rest_written_the_state_consistent(
    call, make_dataset, tmp_path, cli_main, monkeypatch
):
    names = "abcdef"
    root = make_dataset({f"{n}.png": None for n in names} | {f"{n}.txt": "smile\n" for n in names})
    failing = {"b.txt": errno.ENOSPC, "e.txt": errno.EACCES}
    real_open, real_write, real_replace = os.open, os.write, os.replace
    fds: dict[int, str] = {}

    def fail_for(path: object) -> None:
        name = Path(os.fspath(path)).name  # type: ignore[arg-type]
        for caption, code in failing.items():
            if name == caption or name.startswith(f"{TEMP_PREFIX}{caption}."):
                raise OSError(code, os.strerror(code), name)

    def tracking_open(path, flags, mode=0o777, **kwargs):
        fd = real_open(path, flags, mode, **kwargs)
        fds[fd] = os.fspath(path)
        return fd

    def failing_write(fd, data):
        if fd in fds:
            fail_for(fds[fd])
        return real_write(fd, data)

    def failing_replace(src, dst, **kwargs):
        fail_for(dst)
        return real_replace(src, dst, **kwargs)

    if call == "replace":
        monkeypatch.setattr(writer.os, "replace", failing_replace)
    else:
        monkeypatch.setattr(writer.os, "open", tracking_open)
        monkeypatch.setattr(writer.os, "write", failing_write)
    code, _, err = cli_main("apply", root, "--profile", kd_profile(tmp_path))
    monkeypatch.undo()

    assert code == 1
    lines = err.splitlines()
    assert "lora-curator: b.txt: not written: No space left on device" in lines
    assert "lora-curator: e.txt: not written: Permission denied" in lines
    assert lines[-1] == "4 written, 0 unchanged, 2 skipped"
    on_disk = captions(root)
    assert on_disk == {f"{n}.txt": b"smile\n" if n in "be" else b"kd, smile\n" for n in names}
    assert [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)] == []

    # The state agrees with the disk: no false "changed on disk", no write left pending.
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()
        assert not [p for p in ws.problems if "changed on disk" in p.message]
        assert ws.store is not None
        for caption, record in ws.store.file_records().items():
            assert record.pending_hash is None
            assert record.known_hash == content_hash(on_disk[caption])
    # Once the disk recovers, a second apply writes exactly the files that failed.
    code, _, err = cli_main("apply", root)
    assert code == 0, err
    assert err.splitlines()[-1] == "2 written, 4 unchanged, 0 skipped"
    assert captions(root) == {f"{n}.txt": b"kd, smile\n" for n in names}
    assert cli_main("restore", root)[0] == 0
    assert captions(root) == {f"{n}.txt": b"smile\n" for n in names}


# ---- images that come and go -------------------------------------------------------------------


def test_new_images_appear_with_their_captions_as_sources(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root, strategy=KAEDE) as ws:
        ws.use_strategy(KAEDE)
        ws.set_trigger("kd")
    (root / "sub").mkdir()
    (root / "sub" / "c.png").write_bytes(b"\x89PNG")
    (root / "sub" / "c.txt").write_bytes(b"blush, cup\r\n")
    (root / "d.png").write_bytes(b"\x89PNG")  # no caption
    with Workspace.open(root) as ws:
        assert [e.image for e in ws.images] == ["a.png", "d.png", "sub/c.png"]
        assert ws.source_tags("sub/c.png") == ("blush", "cup")
        assert ws.caption_for("sub/c.png") == "kd, blush, cup\n"
        assert ws.changed_on_disk == set()
        assert ws.store is not None
        assert ws.store.originals(["sub/c.txt", "d.txt"]) == {
            "sub/c.txt": b"blush, cup\r\n",
            "d.txt": None,
        }
        assert ws.apply().written == ["a.txt", "d.txt", "sub/c.txt"]
        ws.restore()
    assert (root / "sub" / "c.txt").read_bytes() == b"blush, cup\r\n"
    assert not (root / "d.txt").exists()


def test_removed_images_are_reported_and_their_history_kept(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile, blush\n", "b.png": None, "b.txt": "cup\n"})
    with Workspace.open(root, strategy=Strategy(trigger="kd")) as ws:
        ws.use_strategy(ws.strategy)
        ws.edit_image_tags("a.png", remove=["smile"])
        ws.apply()
    assert (root / "a.txt").read_bytes() == b"kd, blush\n"
    image = (root / "a.png").read_bytes()
    (root / "a.png").unlink()
    (root / "a.txt").unlink()

    with Workspace.open(root) as ws:
        assert [e.image for e in ws.images] == ["b.png"]
        gone = [p.message for p in ws.problems if p.path == "a.txt"]
        assert gone == ["its image is gone since the last open; its history is kept"]
        assert ws.store is not None
        assert ws.store.originals(["a.txt"]) == {"a.txt": b"smile, blush\n"}
        assert [e.kind for e in ws.store.edits()] == ["image_tags"]
        assert ws.apply().written == []  # nothing recreated for a gone image

    # The image comes back (without its caption): its original and its edits are still known.
    (root / "a.png").write_bytes(image)
    with Workspace.open(root) as ws:
        assert ws.source_tags("a.png") == ("smile", "blush")
        assert ws.caption_for("a.png") == "kd, blush\n"
        ws.restore()
    assert (root / "a.txt").read_bytes() == b"smile, blush\n"


# ---- temp files, two instances -----------------------------------------------------------------


def test_leftover_temp_files_are_cleaned_on_the_next_open(
    make_dataset, tmp_path, cli_main, tree_snapshot
):
    root = make_dataset(
        {"a.png": None, "a.txt": "smile\n", "sub/b.png": None, "sub/b.txt": "cup\n"}
    )
    stale = [root / f"{TEMP_PREFIX}a.txt.4242", root / "sub" / f"{TEMP_PREFIX}b.txt.77"]
    for path in stale:
        path.write_bytes(b"half a capt")
    (root / "notes.lora-curator-tmp.txt").write_bytes(b"not ours")
    before = tree_snapshot(root)
    assert cli_main("apply", root, "--profile", kd_profile(tmp_path), "--dry-run")[0] == 0
    assert tree_snapshot(root) == before  # a read-only command removes nothing
    with Workspace.open(root) as ws:
        cleaned = sorted(p.path for p in ws.problems if "temp file" in p.message)
    assert cleaned == [f"{TEMP_PREFIX}a.txt.4242", f"sub/{TEMP_PREFIX}b.txt.77"]
    assert not any(path.exists() for path in stale)
    assert (root / "notes.lora-curator-tmp.txt").read_bytes() == b"not ours"
    assert captions(root)["a.txt"] == b"smile\n"


def test_a_second_instance_is_refused_until_the_first_closes(make_dataset, cli_main):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    first = Workspace.open(root, strategy=KAEDE)
    try:
        first.use_strategy(KAEDE)
        with pytest.raises(DatasetLockedError) as info:
            Workspace.open(root)
        message = str(info.value)
        assert str(root) in message
        assert f"pid {os.getpid()}" in message
        assert "close it first" in message
        # Read-only commands still work meanwhile; a writing one fails with one clear line.
        with Workspace.open(root, read_only=True) as ro:
            assert ro.caption_for("a.png") == "kaede, smile\n"
        code, _, err = cli_main("apply", root)
        assert code == 1
        assert err == f"lora-curator: error: {message}\n"
        assert (root / "a.txt").read_bytes() == b"smile\n"
    finally:
        first.close()
    with Workspace.open(root) as ws:
        assert ws.strategy == KAEDE


def test_a_killed_instance_leaves_no_lock(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tui.core.workspace import Workspace\n"
            "ws = Workspace.open(sys.argv[1])\n"
            "print('open', flush=True)\n"
            "time.sleep(60)\n",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(DatasetLockedError, match=f"pid {holder.pid}"):
            Workspace.open(root)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
    with Workspace.open(root) as ws:  # no manual clean-up
        assert [e.image for e in ws.images] == ["a.png"]
