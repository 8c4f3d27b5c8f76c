"""Files on disk (issue 8): every case of the "Files on disk" section of `README.md`.

Each test drives the real CLI (`tui.cli.main` in this process, or `python -m tui` in a
subprocess with a timeout where a hang is the fault: a hang fails the test instead of hanging
pytest) or the real app (pilot or pty), and compares the whole tree before and after, outside
`.lora-curator/`, so a write nobody asked for fails it. The tree is compared by a snapshot of
its own that never opens a FIFO, socket or device and hashes file contents (a 70 MiB sparse
caption is part of some trees).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from tests.app.conftest import WORKED_EXAMPLE, settle
from tui import cli
from tui.app.app import CuratorApp
from tui.core import writer
from tui.core.dataset import STATE_DIR
from tui.core.workspace import MAX_CAPTION_BYTES, Workspace
from tui.core.writer import TEMP_PREFIX

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file kinds")

# A trigger: every caption with a tag changes on apply, so a file left alone is easy to see.
KD = 'schema = 1\nname = "kd"\ntrigger = "kd"\n'
HANG_TIMEOUT = 60  # seconds: far more than any of these commands takes; a hang exceeds it


# ---- the tree, the CLI -------------------------------------------------------------------------


Snapshot = dict[str, tuple[str, object, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every path below `root` (the state folder left out): kind, content (a hash of a file's
    bytes, a link's target), mode and mtime; FIFOs, sockets and devices are never opened."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                out[rel] = ("link", os.readlink(path), mode, st.st_mtime_ns)
            elif stat.S_ISDIR(mode):
                out[rel] = ("dir", None, mode, 0)  # writing a file in it changes its mtime
            elif stat.S_ISREG(mode):
                digest = hashlib.blake2b()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                out[rel] = ("file", digest.hexdigest(), mode, st.st_mtime_ns)
            else:
                out[rel] = ("special", stat.S_IFMT(mode), mode, st.st_mtime_ns)
    return out


def changed(before: Snapshot, after: Snapshot) -> set[str]:
    return {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}


def contents(snap: Snapshot) -> dict[str, object]:
    """What each path holds, without modes and mtimes (a restore changes the mtime)."""
    return {rel: (kind, content) for rel, (kind, content, _, _) in snap.items()}


@pytest.fixture
def run(capsys) -> Callable[..., tuple[int, str, str]]:
    """`lora-curator ARGS...` in this process (monkeypatches apply): (code, out, err)."""

    def call(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([os.fspath(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def subprocess_cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    """`python -m tui ARGS...` in a subprocess; a hang fails (TimeoutExpired), never blocks."""
    return subprocess.run(
        [sys.executable, "-m", "tui", *map(os.fspath, args)],
        capture_output=True,
        timeout=HANG_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def kd(tmp_path: Path) -> Path:
    path = tmp_path / "kd.toml"
    path.write_text(KD, encoding="utf-8")
    return path


def says(err: str, path: str) -> str:
    """The stderr lines naming `path` (at least one)."""
    found = [line for line in err.splitlines() if line.startswith(f"lora-curator: {path}:")]
    assert found, f"stderr does not name {path!r}: {err!r}"
    return " | ".join(found)


def image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


@pytest.fixture
def worked_example(make_dataset) -> Path:
    return make_dataset({"10_kaede/window.png": None, "10_kaede/window.txt": WORKED_EXAMPLE + "\n"})


# ---- 1. large captions ---------------------------------------------------------------------------


def test_a_5_mib_caption_is_read_whole_and_restored_byte_for_byte(make_dataset, kd, run):
    tags = ", ".join(f"tag{i}" for i in range(600_000))
    body = (tags + "\n").encode()
    assert len(body) > 5 << 20
    root = make_dataset({"a.png": None, "a.txt": body, "ok.png": None, "ok.txt": "smile\n"})
    before = snapshot(root)
    code, out, _ = run("apply", root, "--profile", kd, "--dry-run")
    assert code == 0
    assert f"a.png\tkd, {tags}\n" in out  # every tag, the last one too
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == b"kd, " + body
    assert changed(before, snapshot(root)) == {"a.txt", "ok.txt"}
    code, _, err = run("restore", root)
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == body  # the stored original was not cut
    assert contents(snapshot(root)) == contents(before)


def sparse(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)


def test_a_70_mib_sparse_caption_is_refused_never_read_or_snapshotted(make_dataset, kd, run):
    root = make_dataset({"a.png": None, "ok.png": None, "ok.txt": "smile\n"})
    sparse(root / "a.txt", 70 << 20)
    before = snapshot(root)
    code, _, _ = run("tags", root)
    assert code == 0
    code, _, err = run("apply", root, "--profile", kd, "--dry-run")
    assert code == 0
    assert f"larger than the {MAX_CAPTION_BYTES >> 20} MiB" in says(err, "a.txt")
    assert f"({70 << 20:,} bytes)" in says(err, "a.txt")
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 1
    assert "never written" in says(err, "a.txt")
    assert changed(before, snapshot(root)) == {"ok.txt"}
    # Not snapshotted: the state holds no 70 MiB copy, and restore has nothing to put back.
    assert (root / STATE_DIR / "state.sqlite3").stat().st_size < 1 << 20
    code, _, err = run("restore", root)
    assert code == 0, err
    assert (root / "a.txt").stat().st_size == 70 << 20
    assert contents(snapshot(root)) == contents(before)


def test_a_caption_grown_past_the_limit_after_the_first_open_is_left_alone(make_dataset, kd, run):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"})
    code, _, _ = run("apply", root, "--profile", kd)
    assert code == 0
    sparse(root / "a.txt", (MAX_CAPTION_BYTES) + 1)  # another tool wrote a huge file
    before = snapshot(root)
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 1 and "MiB" in says(err, "a.txt")
    code, _, err = run("restore", root)
    assert code == 1 and "MiB" in says(err, "a.txt")  # not restored over it
    assert changed(before, snapshot(root)) == {"ok.txt"}  # ok.txt restored, a.txt untouched
    assert (root / "a.txt").stat().st_size == MAX_CAPTION_BYTES + 1


# ---- 2. links into something that is not this image's caption ----------------------------------


def link_own_image(root: Path) -> None:
    os.symlink("a.png", root / "a.txt")


def link_other_image(root: Path) -> None:
    os.symlink("ok.png", root / "a.txt")


def link_state(root: Path) -> None:
    os.symlink(f"{STATE_DIR}/state.sqlite3", root / "a.txt")


def link_other_caption(root: Path) -> None:
    os.symlink("ok.txt", root / "a.txt")


def link_folder(root: Path) -> None:
    (root / "folder").mkdir()
    os.symlink("folder", root / "a.txt")


def link_not_a_caption(root: Path) -> None:
    (root / "notes.md").write_bytes(b"smile, my notes\n")
    os.symlink("notes.md", root / "a.txt")


def link_dangling_image(root: Path) -> None:
    os.symlink("gone.png", root / "a.txt")  # writing through would create an "image"


def link_both_to_one_file(root: Path) -> None:
    (root / "texts").mkdir()
    (root / "texts" / "shared.txt").write_bytes(b"smile, shared\n")
    os.symlink("texts/shared.txt", root / "a.txt")
    image(root / "b.png")
    os.symlink("texts/shared.txt", root / "b.txt")


def link_into_sub_of_state(root: Path) -> None:
    os.symlink(STATE_DIR, root / "a.txt")


LINKS = {
    "own-image": (link_own_image, "links to an image (a.png)"),
    "other-image": (link_other_image, "links to an image (ok.png)"),
    "state-db": (link_state, f"links into {STATE_DIR}/"),
    "state-folder": (link_into_sub_of_state, f"links into {STATE_DIR}/"),
    "other-caption": (link_other_caption, "the caption of another image"),
    "folder": (link_folder, "is a folder"),
    "not-a-caption": (link_not_a_caption, "not a caption file"),
    "dangling-to-image": (link_dangling_image, "links to an image (gone.png)"),
    "two-captions-one-file": (link_both_to_one_file, "as "),
}


@pytest.mark.parametrize("case", LINKS, ids=list(LINKS))
def test_a_caption_linked_to_what_is_not_its_caption_is_never_written(case, make_dataset, kd, run):
    make, message = LINKS[case]
    root = make_dataset({"a.png": None, "ok.png": None, "ok.txt": "smile\n"})
    make(root)
    before = snapshot(root)
    code, _, _ = run("tags", root)
    assert code == 0
    code, _, _ = run("apply", root, "--profile", kd, "--dry-run")
    assert code == 0
    assert snapshot(root) == before
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 1
    assert message in says(err, "a.txt")
    assert changed(before, snapshot(root)) == {"ok.txt"}
    assert (root / "a.txt").is_symlink()
    code, _, err = run("restore", root)
    assert contents(snapshot(root)) == contents(before)
    if case == "two-captions-one-file":
        assert "as " in says(err, "b.txt") or "b.txt" not in err


def test_a_caption_linked_to_a_caption_file_of_its_own_is_written_through(make_dataset, kd, run):
    # The layout some tools make: captions kept in another folder, linked next to the images.
    root = make_dataset({"a.png": None, "texts/a.txt": "smile\n"})
    os.symlink("texts/a.txt", root / "a.txt")
    before = snapshot(root)
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 0, err
    assert changed(before, snapshot(root)) == {"texts/a.txt"}
    assert (root / "texts" / "a.txt").read_bytes() == b"kd, smile\n"
    assert (root / "a.txt").is_symlink()
    code, _, err = run("restore", root)
    assert code == 0, err
    assert contents(snapshot(root)) == contents(before)


def test_a_caption_turned_into_a_link_while_open_is_not_written_through(make_dataset, run):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "b.png": None, "b.txt": "hat\n"})
    with Workspace.open(root) as ws:
        ws.set_trigger("kd")
        (root / "b.txt").unlink()  # another tool links b's caption to a's meanwhile
        os.symlink("a.txt", root / "b.txt")
        before = snapshot(root)
        report = ws.apply()
        assert "the caption of another image" in dict(report.failed)["b.txt"]
        assert report.written == ["a.txt"]
    assert changed(before, snapshot(root)) == {"a.txt"}
    assert (root / "a.txt").read_bytes() == b"kd, smile\n"  # written once, as itself
    assert os.readlink(root / "b.txt") == "a.txt"


# ---- 3. restore touches only what lora-curator wrote --------------------------------------------


def test_restore_keeps_a_caption_another_tool_created(make_dataset, kd, run):
    root = make_dataset({"a.png": None, "ok.png": None, "ok.txt": "smile\n", "new.png": None})
    code, _, _ = run("apply", root, "--profile", kd)  # a.txt: created by us; new.txt: not
    assert code == 0
    assert (root / "a.txt").read_bytes() == b"kd\n"
    (root / "new.txt").write_bytes(b"made by a tagger\n")
    before = snapshot(root)
    code, _, err = run("restore", root)
    assert code == 1
    assert "not restored (kept as it is)" in says(err, "new.txt")
    assert (root / "new.txt").read_bytes() == b"made by a tagger\n"
    assert not (root / "a.txt").exists()  # ours: removed as it did not exist
    assert (root / "ok.txt").read_bytes() == b"smile\n"
    assert changed(before, snapshot(root)) == {"a.txt", "ok.txt"}


def test_restore_keeps_a_modified_caption_and_puts_back_a_deleted_one(make_dataset, kd, run):
    root = make_dataset(
        {"a.png": None, "a.txt": "smile\n", "b.png": None, "b.txt": "hat\n", "ok.png": None}
    )
    code, _, _ = run("apply", root, "--profile", kd)
    assert code == 0
    (root / "a.txt").write_bytes(b"retagged, by hand\n")
    (root / "b.txt").unlink()
    before = snapshot(root)
    code, _, err = run("restore", root)
    assert code == 1
    assert "changed by another tool" in says(err, "a.txt")
    assert "b.txt" not in err
    assert (root / "a.txt").read_bytes() == b"retagged, by hand\n"
    assert (root / "b.txt").read_bytes() == b"hat\n"  # gone: the original is put back
    assert changed(before, snapshot(root)) == {"b.txt", "ok.txt"}  # ok.txt: ours, removed


def test_restore_keeps_a_caption_changed_before_any_write_of_ours(make_dataset, run):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root):  # the first open: originals snapshotted, nothing written
        pass
    (root / "a.txt").write_bytes(b"newer tags\n")
    before = snapshot(root)
    code, _, err = run("restore", root)
    assert code == 1 and "not restored" in says(err, "a.txt")
    assert snapshot(root) == before


# ---- 4. outside changes while the dataset is open -----------------------------------------------


def test_outside_changes_between_open_and_save_are_flagged_not_overwritten(make_dataset, kd):
    root = make_dataset(
        {
            "changed.png": None,
            "changed.txt": "smile\n",
            "created.png": None,
            "deleted.png": None,
            "deleted.txt": "hat\n",
            "ok.png": None,
            "ok.txt": "smile\n",
        }
    )
    with Workspace.open(root) as ws:
        ws.set_trigger("kd")
        (root / "changed.txt").write_bytes(b"by another tool\n")
        (root / "created.txt").write_bytes(b"made by a tagger\n")
        (root / "deleted.txt").unlink()
        before = snapshot(root)
        report = ws.apply()
        failed = dict(report.failed)
        assert report.written == ["ok.txt"]
        assert ws.changed_on_disk == {"changed.txt", "created.txt", "deleted.txt"}
        assert "not overwritten" in failed["changed.txt"]
        assert "not overwritten" in failed["created.txt"]
        assert "not created again" in failed["deleted.txt"]
        assert changed(before, snapshot(root)) == {"ok.txt"}
        # The user settles them as at open: adopt one, overwrite (re-create) the others.
        ws.adopt_disk_version("changed.txt")
        ws.keep_ours("created.txt")
        ws.keep_ours("deleted.txt")
        report = ws.apply()
        assert report.failed == []
        assert (root / "changed.txt").read_bytes() == b"kd, by another tool\n"
        assert (root / "created.txt").read_bytes() == b"kd\n"
        assert (root / "deleted.txt").read_bytes() == b"kd, hat\n"
    with Workspace.open(root) as ws:
        assert ws.changed_on_disk == set()


def test_a_file_flagged_at_save_is_flagged_again_at_the_next_open(make_dataset, kd, run):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    with Workspace.open(root) as ws:
        ws.set_trigger("kd")
        (root / "a.txt").write_bytes(b"by another tool\n")
        assert ws.apply().written == []
    before = snapshot(root)
    code, _, err = run("apply", root)
    assert code == 1 and "changed on disk" in says(err, "a.txt")
    assert snapshot(root) == before
    code, _, err = run("apply", root, "--overwrite")
    assert code == 0, err
    assert (root / "a.txt").read_bytes() == b"kd, smile\n"


@pytest.mark.parametrize("flag", ["", "--adopt", "--overwrite"])
def test_cli_change_between_open_and_write(flag, make_dataset, kd, run, monkeypatch):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"})
    real_use = Workspace.use_strategy

    def use_then_retag(self, *args, **kwargs):  # runs between the open and the writes
        real_use(self, *args, **kwargs)
        (root / "a.txt").write_bytes(b"retagged\n")

    monkeypatch.setattr(Workspace, "use_strategy", use_then_retag)
    code, _, err = run("apply", root, "--profile", kd, *([flag] if flag else []))
    expected = {"": b"retagged\n", "--adopt": b"kd, retagged\n", "--overwrite": b"kd, smile\n"}
    assert (root / "a.txt").read_bytes() == expected[flag]
    assert (root / "ok.txt").read_bytes() == b"kd, smile\n"
    if flag:
        assert code == 0, err
    else:
        assert code == 1 and "changed on disk" in says(err, "a.txt")


async def test_app_save_does_not_overwrite_a_file_changed_while_open(worked_example: Path):
    caption = worked_example / "10_kaede" / "window.txt"
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.ws is not None
        app.ws.set_trigger("kd")
        caption.write_text("1girl, retagged\n", encoding="utf-8")  # another tool, meanwhile
        before = snapshot(worked_example)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert changed(before, snapshot(worked_example)) == set()
        assert app.ws.by_image[app.image].caption in app.ws.changed_on_disk
        assert app.files.row_text(app.image, 40).plain[1] == "!"
        assert "changed on disk" in str(app.caption.render())
        await pilot.press("A", "ctrl+s")  # adopt its tags, then save
        await settle(pilot, app)
        assert caption.read_text(encoding="utf-8") == "kd, 1girl, retagged\n"


async def test_app_save_does_not_recreate_a_file_deleted_while_open(worked_example: Path):
    caption = worked_example / "10_kaede" / "window.txt"
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.ws is not None
        app.ws.set_trigger("kd")
        caption.unlink()
        before = snapshot(worked_example)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert changed(before, snapshot(worked_example)) == set()
        assert not caption.exists()
        assert app.files.row_text(app.image, 40).plain[1] == "!"
        await pilot.press("O", "ctrl+s")  # the user says: write ours
        await settle(pilot, app)
        assert caption.read_text(encoding="utf-8").startswith("kd, 1girl, bangs")


# ---- 5. disk full in the middle of writing ------------------------------------------------------


def test_enospc_after_some_files_names_the_rest_and_the_next_apply_finishes(
    make_dataset, kd, run, monkeypatch
):
    names = [f"img{i}" for i in range(6)]
    root = make_dataset({f"{n}.png": None for n in names} | {f"{n}.txt": "smile\n" for n in names})
    real_write = writer.os.write
    opened: set[int] = set()
    real_open = writer.os.open
    budget = {"files": 2}

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if os.path.basename(os.fspath(path)).startswith(TEMP_PREFIX):
            opened.add(fd)
            budget["files"] -= 1
        return fd

    def full_disk_write(fd, data):
        if fd in opened and budget["files"] < 0:
            real_write(fd, bytes(data)[:3])  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(writer.os, "open", tracking_open)
    monkeypatch.setattr(writer.os, "write", full_disk_write)
    before = snapshot(root)
    code, _, err = run("apply", root, "--profile", kd)
    monkeypatch.undo()
    assert code == 1
    written = [n for n in names if (root / f"{n}.txt").read_bytes() == b"kd, smile\n"]
    assert written == names[:2]
    for n in names[2:]:
        assert (root / f"{n}.txt").read_bytes() == b"smile\n"  # the old bytes, whole
        assert "No space left on device" in says(err, f"{n}.txt")
    assert err.splitlines()[-1] == "2 written, 0 unchanged, 4 skipped"
    assert not [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert changed(before, snapshot(root)) == {f"{n}.txt" for n in written}
    with Workspace.open(root) as ws:  # the known hashes agree with the disk
        assert ws.changed_on_disk == set()
    code, _, err = run("apply", root)  # space again: the next apply finishes the job
    assert code == 0, err
    assert err.splitlines()[-1] == "4 written, 2 unchanged, 0 skipped"
    code, _, err = run("restore", root)
    assert code == 0, err
    assert contents(snapshot(root)) == contents(before)


# ---- 6. FIFOs, sockets and devices ---------------------------------------------------------------


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A dataset folder with a short path (a socket's path must fit in about 100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="lc-", dir="/tmp"))
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def make_special(root: Path, case: str) -> tuple[str, str]:
    """Plant one special file; (the path named, what the message says)."""
    if case == "fifo-caption":
        os.mkfifo(root / "a.txt")
        return "a.txt", "FIFO"
    if case == "link-to-fifo-caption":
        os.mkfifo(root / "pipe")
        os.symlink("pipe", root / "a.txt")
        return "a.txt", "FIFO"
    if case == "socket-caption":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(root / "a.txt"))
        sock.close()  # the socket file stays
        return "a.txt", "socket"
    if case == "device-caption":
        os.symlink("/dev/zero", root / "a.txt")  # endless bytes
        return "a.txt", "character device"
    if case == "fifo-image":
        os.mkfifo(root / "p.png")
        return "p.png", "FIFO"
    if case == "link-to-fifo-image":
        os.mkfifo(root / "pipe")
        os.symlink("pipe", root / "p.png")
        return "p.png", "FIFO"
    if case == "device-image":
        os.symlink("/dev/zero", root / "p.png")
        return "p.png", "character device"
    raise AssertionError(case)


SPECIAL = [
    "fifo-caption",
    "link-to-fifo-caption",
    "socket-caption",
    "device-caption",
    "fifo-image",
    "link-to-fifo-image",
    "device-image",
]


@pytest.mark.parametrize("case", SPECIAL)
def test_fifo_socket_device_never_opened(case, short_root, tmp_path):
    root = short_root / "ds"
    root.mkdir()
    image(root / "a.png")
    image(root / "ok.png")
    (root / "ok.txt").write_bytes(b"smile\n")
    named, kind = make_special(root, case)
    profile = tmp_path / "kd.toml"
    profile.write_text(KD, encoding="utf-8")
    before = snapshot(root)
    done = subprocess_cli("tags", root)  # finishes (a hang would time out)
    assert done.returncode == 0, done.stderr
    assert b"smile" in done.stdout
    assert kind in says(done.stderr.decode(), named)
    done = subprocess_cli("apply", root, "--profile", profile, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert kind in says(done.stderr.decode(), named)
    assert snapshot(root) == before
    done = subprocess_cli("apply", root, "--profile", profile)
    err = done.stderr.decode()
    assert kind in says(err, named)
    assert done.returncode == (1 if named == "a.txt" else 0)  # a caption not written: exit 1
    after = snapshot(root)
    expected = {"ok.txt"} | ({"a.txt"} if named == "p.png" else set())
    assert changed(before, after) == expected
    done = subprocess_cli("check", root)
    assert done.returncode in (0, 1), done.stderr  # ran to its end (findings or none)
    assert b"Traceback" not in done.stderr
    done = subprocess_cli("restore", root)
    assert b"Traceback" not in done.stderr
    assert contents(snapshot(root)) == contents(before)


def test_the_app_opens_a_dataset_with_a_fifo_caption_and_image(short_root, isolated_config):
    root = short_root / "ds"
    root.mkdir()
    image(root / "a.png")
    os.mkfifo(root / "a.txt")
    os.mkfifo(root / "p.png")
    (root / "ok.txt").write_bytes(b"smile\n")
    image(root / "ok.png")
    before = snapshot(root)
    env = dict(os.environ, TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    child = pexpect.spawn(
        sys.executable, ["-m", "tui", str(root)], env=env, dimensions=(40, 120), timeout=30
    )
    try:
        child.expect("unsorted")  # the status bar: the dataset is open, nothing hangs
        child.send("j")  # move to the image whose caption is a FIFO: the preview loads
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(pexpect.TIMEOUT):
                child.read_nonblocking(65536, timeout=0.2)
        assert child.isalive()
    finally:
        child.sendcontrol("c")
        child.close(force=True)
    assert changed(before, snapshot(root)) == set()


# ---- 7. names that are not valid UTF-8 ----------------------------------------------------------


def test_a_name_that_is_not_utf8_is_curated_like_any_other(tmp_path, run):
    kd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/kd\xff.toml"))  # the profile's too
    kd.write_text(KD, encoding="utf-8")
    root = tmp_path / "ds"
    broot = os.fsencode(root)
    os.makedirs(broot + b"/sub\xe9")
    for name in (b"/a\xff", b"/ok", b"/sub\xe9/b\xfe"):
        image(Path(os.fsdecode(broot + name + b".png")))
    for name in (b"/a\xff", b"/ok"):
        with open(broot + name + b".txt", "wb") as fh:
            fh.write(b"smile, hat\n")
    before = snapshot(root)
    code, out, err = run("apply", root, "--profile", kd, "--dry-run")
    assert code == 0, err
    assert '"a\\xff.png"\tkd, smile, hat' in out.splitlines()  # shown escaped
    assert '"sub\\xe9/b\\xfe.png"\tkd' in out.splitlines()
    assert "sub\\xe9/b\\xfe.png" in err  # its "no caption file" problem, escaped
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 0, err
    assert Path(os.fsdecode(broot + b"/a\xff.txt")).read_bytes() == b"kd, smile, hat\n"
    assert Path(os.fsdecode(broot + b"/sub\xe9/b\xfe.txt")).read_bytes() == b"kd\n"
    assert changed(before, snapshot(root)) == {
        os.fsdecode(b"a\xff.txt"),
        "ok.txt",
        os.fsdecode(b"sub\xe9/b\xfe.txt"),
    }
    with Workspace.open(root) as ws:  # a per-image edit keeps its name through the state
        ws.edit_image_tags(os.fsdecode(b"a\xff.png"), remove=["hat"])
    with Workspace.open(root) as ws:
        assert ws.image_tags(os.fsdecode(b"a\xff.png")) == ("smile",)
        assert ws.changed_on_disk == set()
    done = subprocess_cli("check", root, "--json")  # the real stdout, not a test capture
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(done.stdout)
    images = {os.fsencode(i) for row in rows for i in row["images"]}
    assert b"a\xff.png" in images  # the bytes come back from the JSON
    done = subprocess_cli("check", root)
    assert b'"a\\xff.png"' in done.stdout
    code, _, err = run("restore", root)
    assert code == 0, err
    assert contents(snapshot(root)) == contents(before)


async def test_the_app_saves_an_image_whose_name_is_not_utf8(tmp_path):
    root = tmp_path / "ds"
    broot = os.fsencode(root)
    root.mkdir()
    image(Path(os.fsdecode(broot + b"/a\xff.png")))
    with open(broot + b"/a\xff.txt", "wb") as fh:
        fh.write(b"smile, hat\n")
    before = snapshot(root)
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.ws is not None
        assert app.image == os.fsdecode(b"a\xff.png")
        app.ws.set_trigger("kd")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
    assert changed(before, snapshot(root)) == {os.fsdecode(b"a\xff.txt")}
    with open(broot + b"/a\xff.txt", "rb") as fh:
        assert fh.read() == b"kd, smile, hat\n"


# ---- 8. long names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stem", ["x" * 250, "画" * 83], ids=["250-ascii-bytes", "249-bytes-of-kanji"]
)
def test_a_stem_as_long_as_the_filesystem_allows_is_written(stem, make_dataset, kd, run):
    assert len(os.fsencode(stem + ".txt")) <= 255 < len(os.fsencode(TEMP_PREFIX + stem + ".txt"))
    root = make_dataset({f"{stem}.png": None, f"{stem}.txt": "smile\n", "ok.png": None})
    before = snapshot(root)
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 0, err
    assert (root / f"{stem}.txt").read_bytes() == b"kd, smile\n"
    assert not [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert changed(before, snapshot(root)) == {f"{stem}.txt", "ok.txt"}
    code, _, err = run("restore", root)
    assert code == 0, err
    assert contents(snapshot(root)) == contents(before)


def test_a_temp_file_of_a_long_name_left_by_a_crash_is_cleaned(make_dataset, kd, run):
    stem = "x" * 250
    root = make_dataset({f"{stem}.png": None, f"{stem}.txt": "smile\n"})
    stale = root / writer.temp_name(f"{stem}.txt")
    stale.write_bytes(b"half")
    code, _, err = run("apply", root, "--profile", kd)
    assert code == 0, err
    assert not stale.exists()
    assert "removed a temp file" in err


def test_special_files_are_never_even_opened(short_root, kd, run, monkeypatch):
    # Opening some devices does something (a tape rewinds): they are known by their type
    # first. A guard records any open of a special file (and refuses it, so nothing hangs).
    root = short_root / "ds"
    root.mkdir()
    for name in ("a", "b", "ok"):
        image(root / f"{name}.png")
    os.mkfifo(root / "a.txt")
    os.mkfifo(root / "pipe")
    os.symlink("pipe", root / "b.txt")
    os.mkfifo(root / "p.png")
    (root / "ok.txt").write_bytes(b"smile\n")
    opened: list[str] = []
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        try:  # what this open would reach (O_NOFOLLOW: a link is refused, not followed)
            mode = os.stat(path, follow_symlinks=not flags & os.O_NOFOLLOW).st_mode
        except OSError:
            mode = stat.S_IFREG
        if stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            opened.append(os.fspath(path))
            raise OSError(errno.EPERM, "the test refuses this open", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    before = snapshot(root)
    assert run("tags", root)[0] == 0
    assert run("apply", root, "--profile", kd, "--dry-run")[0] == 0
    assert run("apply", root, "--profile", kd)[0] == 1
    assert run("check", root)[0] in (0, 1)
    assert run("restore", root)[0] == 0
    assert opened == []
    assert contents(snapshot(root)) == contents(before)
