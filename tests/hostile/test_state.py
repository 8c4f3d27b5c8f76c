"""A hostile state database: every case of "State database (issue 8)" in README.md.

Each case starts from a curated dataset (a profile applied, so every caption differs from its
original; a few edits in the log), tampers with `.lora-curator/state.sqlite3` the way a bad
disk, a bad copy or a curious user would, and runs every command that reads the state (and the
app). Each must exit 1 with one line saying what is wrong, that the captions are untouched and
how to start over, never a traceback; and nothing outside `.lora-curator/` may change.

The threads, busy and disk-full cases drive the real store (`Workspace`) and the real CLI.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import snapshot_tree, write_dataset
from tui import cli
from tui.app.app import CuratorApp
from tui.core import store as store_module
from tui.core.dataset import STATE_DIR
from tui.core.store import (
    STATE_FILE,
    CorruptStateError,
    NewerStateError,
    StateBusyError,
    StateError,
    StateWriteError,
)
from tui.core.workspace import Workspace

KD = 'schema = 1\nname = "kd"\ntrigger = "kd"\n'

CAPTIONS = {
    "a.png": None,
    "a.txt": "smile, blush, long hair\n",
    "b.png": None,
    "b.txt": "smile, open mouth\n",
    "sub/c.png": None,
    "sub/c.txt": "long hair, solo\n",
}


# ---- running the CLI, watching the tree --------------------------------------------------------


def outside_state(root: Path) -> dict:
    """The tree's bytes, modes and mtimes, without `.lora-curator/` (and its backups)."""
    return {
        rel: entry
        for rel, entry in snapshot_tree(root).items()
        if not (rel == STATE_DIR or rel.startswith(STATE_DIR + "/"))
        and not rel.startswith(STATE_DIR + ".bak-")
    }


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("lora-curator: error: "), err
    return lines[0]


@pytest.fixture
def curated(tmp_path: Path) -> Path:
    """A dataset with a profile applied (every caption rewritten), then three more edits."""
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    profile = tmp_path / "kd.toml"
    profile.write_text(KD)
    assert cli.main(["apply", str(root), "--profile", str(profile)]) == 0
    with Workspace.open(root) as ws:
        ws.set_buckets([("smile", "context"), ("blush", "drop")])
        ws.set_trigger("kd2")
        ws.edit_image_tags("a.png", remove=["long hair"])
        ws.undo()  # one edit left as redo history
    return root


def db_of(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


def sql(root: Path, *statements: str) -> None:
    """Tamper with the state through SQLite itself (a row, a table, a meta value)."""
    conn = sqlite3.connect(db_of(root), isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def overwrite_page(root: Path, page: int) -> None:
    data = bytearray(db_of(root).read_bytes())
    size = int.from_bytes(data[16:18], "big")
    start = size * (page - 1)
    assert len(data) >= start + size, "the state is smaller than expected"
    data[start : start + size] = random.Random(page).randbytes(size)
    db_of(root).write_bytes(bytes(data))


def page_count(root: Path) -> int:
    data = db_of(root).read_bytes()
    return len(data) // int.from_bytes(data[16:18], "big")


# case → how to damage the state; what the one line must say besides the usual
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (
        lambda r: os.truncate(db_of(r), os.path.getsize(db_of(r)) // 2),
        "damaged",
    ),
    "zero bytes": (lambda r: os.truncate(db_of(r), 0), "empty"),
    "random bytes": (
        lambda r: db_of(r).write_bytes(random.Random(8).randbytes(8192)),
        "damaged",
    ),
    "a folder": (lambda r: (db_of(r).unlink(), db_of(r).mkdir()), "folder"),
    "bad page (the last)": (lambda r: overwrite_page(r, page_count(r)), "damaged"),
    "bad page (the first)": (lambda r: overwrite_page(r, 1), "damaged"),
    "bad JSON in base": (
        lambda r: sql(r, "UPDATE meta SET value = '{\"name\": ' WHERE key = 'base'"),
        "not valid JSON",
    ),
    "base not an object": (
        lambda r: sql(r, "UPDATE meta SET value = '[1, 2]' WHERE key = 'base'"),
        "not an object",
    ),
    "base an invalid strategy": (
        lambda r: sql(
            r, 'UPDATE meta SET value = \'{"schema": 1, "pattern": "nope"}\' WHERE key = \'base\''
        ),
        "working strategy is not valid",
    ),
    "base a blob": (
        lambda r: sql(r, "UPDATE meta SET value = x'00ff' WHERE key = 'base'"),
        "not text",
    ),
    "payload not JSON": (
        lambda r: sql(r, "UPDATE edits SET payload = '{\"changes\": [' WHERE seq = 1"),
        "edit 1",
    ),
    "payload not an object": (
        lambda r: sql(r, "UPDATE edits SET payload = '[]' WHERE seq = 1"),
        "edit 1",
    ),
    "payload a number": (lambda r: sql(r, "UPDATE edits SET payload = 5 WHERE seq = 2"), "edit 2"),
    "unknown kind with a bad payload": (
        lambda r: sql(r, "UPDATE edits SET kind = 'zzz', payload = '\"x\"' WHERE seq = 2"),
        "edit 2",
    ),
    "changes not a list": (
        lambda r: sql(r, 'UPDATE edits SET payload = \'{"changes": "abc"}\' WHERE seq = 1'),
        "'changes' is not a list",
    ),
    "changes not pairs": (
        lambda r: sql(r, 'UPDATE edits SET payload = \'{"changes": [["smile"]]}\' WHERE seq = 1'),
        "not a pair",
    ),
    "unknown bucket": (
        lambda r: sql(
            r,
            'UPDATE edits SET payload = \'{"changes": [["smile", "hat"]]}\' WHERE seq = 1',
        ),
        "unknown bucket",
    ),
    "trigger value an int": (
        lambda r: sql(r, "UPDATE edits SET payload = '{\"value\": 3}' WHERE seq = 2"),
        "'value' is not text",
    ),
    "damaged edit in the redo history": (
        lambda r: sql(r, "UPDATE edits SET payload = '{\"image\": 7}' WHERE seq = 3"),
        "edit 3",
    ),
    "cursor abc": (
        lambda r: sql(r, "UPDATE meta SET value = 'abc' WHERE key = 'cursor'"),
        "not a number",
    ),
    "cursor beyond the last edit": (
        lambda r: sql(r, "UPDATE meta SET value = '9' WHERE key = 'cursor'"),
        "outside the edit log",
    ),
    "negative cursor": (
        lambda r: sql(r, "UPDATE meta SET value = '-2' WHERE key = 'cursor'"),
        "outside the edit log",
    ),
    "no cursor": (lambda r: sql(r, "DELETE FROM meta WHERE key = 'cursor'"), "no cursor"),
    "saved not a number": (
        lambda r: sql(r, "UPDATE meta SET value = '1.5' WHERE key = 'saved'"),
        "not a number",
    ),
    "a gap in the edit log": (lambda r: sql(r, "DELETE FROM edits WHERE seq = 1"), "gaps"),
    "edits table missing": (lambda r: sql(r, "DROP TABLE edits"), "edits table is missing"),
    "files table missing": (lambda r: sql(r, "DROP TABLE files"), "files table is missing"),
    "meta table missing": (lambda r: sql(r, "DROP TABLE meta"), "meta table is missing"),
    "no schema": (lambda r: sql(r, "DELETE FROM meta WHERE key = 'schema'"), "no schema"),
    "schema 0": (lambda r: sql(r, "UPDATE meta SET value = '0' WHERE key = 'schema'"), "schema"),
    "original copy changed": (
        lambda r: sql(r, "UPDATE files SET original = x'00' WHERE caption = 'b.txt'"),
        "does not match its digest",
    ),
    "original copy stored as text": (
        lambda r: sql(r, "UPDATE files SET original = 'smile' WHERE caption = 'b.txt'"),
        "does not match its digest",
    ),
    "a hash not a digest": (
        lambda r: sql(r, "UPDATE files SET known_hash = 'abc' WHERE caption = 'a.txt'"),
        "record of caption 'a.txt'",
    ),
}

COMMANDS = {
    "apply": lambda root, profile: ["apply", root],
    "apply --profile": lambda root, profile: ["apply", root, "--profile", profile],
    "apply --dry-run": lambda root, profile: ["apply", root, "--dry-run"],
    "tags": lambda root, profile: ["tags", root],
    "restore": lambda root, profile: ["restore", root],
    "check": lambda root, profile: ["check", root],
    "suggest": lambda root, profile: ["suggest", root],
    "guide": lambda root, profile: ["guide", root],
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_state_is_refused_by_every_command(case, curated, cli_main, tmp_path):
    damage, detail = DAMAGE[case]
    damage(curated)
    before = outside_state(curated)
    for command, args in COMMANDS.items():
        code, out, err = cli_main(*args(curated, tmp_path / "kd.toml"))
        line = one_error_line(err)
        assert code == 1, (command, err)
        assert out == "", command
        assert STATE_FILE in line and "damaged" in line and detail in line, (command, line)
        assert "caption files are untouched" in line
        assert f"lora-curator reset-state {curated}" in line
        assert outside_state(curated) == before, f"{command} wrote something"


async def _app_fatal(root: Path) -> tuple[int | None, str]:
    app = CuratorApp(root)
    async with app.run_test() as pilot:
        for _ in range(200):
            await pilot.pause(0.02)
            if app.fatal or app.ws is not None:
                break
    return app.return_value, app.fatal


@pytest.mark.parametrize("case", DAMAGE)
async def test_a_damaged_state_stops_the_app_with_the_message(case, curated):
    damage, detail = DAMAGE[case]
    damage(curated)
    before = outside_state(curated)
    code, fatal = await _app_fatal(curated)
    assert code == 1
    assert "damaged" in fatal and detail in fatal and "reset-state" in fatal
    assert "\n" not in fatal
    assert outside_state(curated) == before


@pytest.mark.parametrize(
    ("schema", "said"), [("99", "has schema 99, newer"), ("x", "has an unknown schema 'x'")]
)
def test_a_newer_state_is_refused_and_left_as_it_is(schema, said, curated, cli_main, tmp_path):
    sql(
        curated,
        f"UPDATE meta SET value = '{schema}' WHERE key = 'schema'",
        "UPDATE meta SET value = 'lora-curator 9.0' WHERE key = 'written_by'",
        "CREATE TABLE future (x)",  # a newer version may have tables this one does not know
    )
    state_before = snapshot_tree(curated / STATE_DIR)
    before = outside_state(curated)
    for command, args in COMMANDS.items():
        code, _, err = cli_main(*args(curated, tmp_path / "kd.toml"))
        line = one_error_line(err)
        assert code == 1, (command, err)
        assert said in line and "created by lora-curator 9.0" in line
        assert "upgrade lora-curator" in line and "not used or changed" in line
        assert outside_state(curated) == before, command
    with pytest.raises(NewerStateError):
        Workspace.open(curated)
    # Not even the database file was changed (no WAL switch, no new table, no new row).
    after = snapshot_tree(curated / STATE_DIR)
    assert after[STATE_FILE] == state_before[STATE_FILE]


async def test_a_newer_state_stops_the_app(curated):
    sql(curated, "UPDATE meta SET value = '99' WHERE key = 'schema'")
    before = outside_state(curated)
    code, fatal = await _app_fatal(curated)
    assert code == 1 and "upgrade lora-curator" in fatal
    assert outside_state(curated) == before


def test_an_adopted_version_whose_copy_is_gone(tmp_path, cli_main):
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    with Workspace.open(root) as ws:
        ws.use_strategy(ws.strategy)
    (root / "a.txt").write_text("outside, edit\n")
    with Workspace.open(root) as ws:
        ws.adopt_disk_version("a.txt")
    sql(root, "DELETE FROM blobs")
    before = outside_state(root)
    code, _, err = cli_main("tags", root)
    assert code == 1
    assert "lost the copy of 'a.txt'" in one_error_line(err)
    assert outside_state(root) == before


def test_the_state_folder_is_a_file(tmp_path, cli_main):
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    (root / STATE_DIR).write_text("not a folder\n")
    before = outside_state(root)
    code, _, err = cli_main("apply", root, "--profile", _profile(tmp_path))
    assert code == 1
    assert "is a file, not lora-curator's state folder" in one_error_line(err)
    assert outside_state(root) == before
    assert cli_main("reset-state", root)[0] == 0
    assert cli_main("apply", root, "--profile", _profile(tmp_path))[0] == 0


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "kd.toml"
    path.write_text(KD)
    return path


# ---- reset-state -----------------------------------------------------------------------------


def test_reset_state_keeps_a_backup_and_starts_over(curated, cli_main, tmp_path):
    DAMAGE["bad JSON in base"][0](curated)
    damaged = db_of(curated).read_bytes()
    before = outside_state(curated)
    code, out, err = cli_main("reset-state", curated)
    assert code == 0 and out == ""
    backups = [p for p in curated.iterdir() if p.name.startswith(STATE_DIR + ".bak-")]
    assert len(backups) == 1 and backups[0].is_dir()
    assert (backups[0] / STATE_FILE).read_bytes() == damaged  # kept as it was
    assert str(backups[0]) in err and "caption files are untouched" in err
    assert not (curated / STATE_DIR).exists()
    assert outside_state(curated) == before
    # A fresh start: the backup is a dot-folder, never scanned as part of the dataset.
    code, out, _ = cli_main("tags", curated)
    assert code == 0 and "kd" in out
    code, _, _ = cli_main("apply", curated, "--profile", tmp_path / "kd.toml")
    assert code == 0
    # A second reset the same second gets its own backup.
    assert cli_main("reset-state", curated)[0] == 0
    assert len([p for p in curated.iterdir() if p.name.startswith(STATE_DIR + ".bak-")]) == 2


def test_reset_state_without_a_state(tmp_path, cli_main):
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    before = snapshot_tree(root)
    code, _, err = cli_main("reset-state", root)
    assert code == 0 and "no state to reset" in err
    assert snapshot_tree(root) == before


def test_reset_state_refuses_while_the_dataset_is_open(curated, cli_main):
    with Workspace.open(curated):
        code, _, err = cli_main("reset-state", curated)
        assert code == 1 and "open in another lora-curator" in one_error_line(err)
    assert (curated / STATE_DIR / STATE_FILE).is_file()


# ---- a store that cannot commit (disk full) -----------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch) -> Callable[[bool], None]:
    """`full_disk(True)`: every commit of the state fails as SQLite fails on a full disk."""

    real = store_module._commit

    def failing(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def set_full(full: bool) -> None:
        monkeypatch.setattr(store_module, "_commit", failing if full else real)

    return set_full


def test_disk_full_an_edit_is_not_applied_and_nothing_committed_is_lost(curated, full_disk):
    with Workspace.open(curated) as ws:
        before = (ws.strategy, ws.store.cursor(), ws.unsaved)
        full_disk(True)
        for change in (
            lambda: ws.set_buckets([("solo", "trait")]),
            lambda: ws.set_trigger("other"),
            lambda: ws.edit_image_tags("b.png", add=["hat"]),
            ws.undo,
            ws.redo,
        ):
            with pytest.raises(StateWriteError) as info:
                change()
            message = str(info.value)
            assert "\n" not in message and "disk is full" in message
            assert "free some disk space" in message
            assert (ws.strategy, ws.store.cursor(), ws.unsaved) == before
            assert "hat" not in ws.image_tags("b.png")
        full_disk(False)
        ws.set_buckets([("solo", "trait")])
    with Workspace.open(curated) as ws:
        s = ws.strategy
        assert (s.bucket_of("smile"), s.bucket_of("blush"), s.bucket_of("solo")) == (
            "context",
            "drop",
            "trait",
        )
        assert s.trigger == "kd2"
        # The redo history was dropped by the new edit, as for any edit after an undo.
        assert ws.store.cursor() == ws.store.last_seq() == 3


def test_disk_full_for_real_sqlite(curated):
    """SQLite's own SQLITE_FULL (the database may not grow), not a patched commit."""
    with Workspace.open(curated) as ws:
        conn = ws.store.conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StateWriteError, match="full"):
            ws.edit_image_tags("b.png", add=["x" * 50_000])
        assert "x" * 50_000 not in ws.image_tags("b.png")
        conn.execute("PRAGMA max_page_count = 1073741823")
        ws.set_trigger("after")
    with Workspace.open(curated) as ws:
        assert ws.strategy.trigger == "after"
        assert "x" * 50_000 not in ws.image_tags("b.png")


def test_disk_full_in_the_cli(curated, cli_main, full_disk, tmp_path):
    (curated / "a.txt").write_text("smile, new tag\n")  # something to write
    with Workspace.open(curated) as ws:
        ws.adopt_disk_version("a.txt")
    before = outside_state(curated)
    full_disk(True)
    code, _, err = cli_main("apply", curated)
    assert code == 1
    line = one_error_line(err)
    assert "disk is full" in line and "no caption was written" in line
    assert outside_state(curated) == before
    full_disk(False)
    assert cli_main("apply", curated)[0] == 0
    assert "new tag" in (curated / "a.txt").read_text()


# ---- threads, a busy database -----------------------------------------------------------------


def test_a_write_waits_a_bounded_time_for_a_busy_state(curated, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.2)
    with Workspace.open(curated) as ws:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with ws.store._gate.hold(ws.store.path):
                held.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(30)
        try:
            with pytest.raises(StateBusyError) as info:
                ws.set_trigger("busy")
            assert "\n" not in str(info.value) and "try again" in str(info.value)
            assert ws.strategy.trigger == "kd2"
        finally:
            release.set()
            thread.join()
        ws.set_trigger("free")
        assert ws.strategy.trigger == "free"


def test_another_program_holding_the_database(curated, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.2)
    with Workspace.open(curated) as ws:
        other = sqlite3.connect(db_of(curated), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            # The connection is opened by a new thread: it has the short busy timeout.
            errors: list[BaseException] = []
            thread = threading.Thread(target=_catch(errors, lambda: ws.set_trigger("x")))
            thread.start()
            thread.join()
            assert len(errors) == 1 and isinstance(errors[0], StateBusyError)
            assert "locked by another program" in str(errors[0])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert ws.strategy.trigger == "kd2"


def _catch(errors: list[BaseException], fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    return run


def test_a_save_racing_with_edits_and_status_refreshes(tmp_path):
    """Every thread the app has, at once: a save (pending, write, known, saved), measures
    saved by diagnostics, edits from the UI thread and status refreshes."""
    files = {}
    for i in range(300):
        files[f"{i:03}.png"] = None
        files[f"{i:03}.txt"] = f"tag{i % 40}, smile, solo\n"
    root = write_dataset(tmp_path / "ds", files)
    with Workspace.open(root) as ws:
        ws.use_strategy(ws.strategy)
        store = ws.store
        stop = threading.Event()
        errors: list[BaseException] = []

        def saving() -> None:
            while not stop.is_set():
                cursor = store.cursor()
                report = ws.apply()
                assert not report.failed
                store.mark_saved(cursor)

        def measuring() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                store.save_measures(
                    [(f"{i:03}.png", 1, n, 0, b"d", 1, 1, 0.0, 2**63 + i, "") for i in range(50)]
                )
                store.measures()

        def refreshing() -> None:
            while not stop.is_set():
                ws.unsaved, store.cursor(), store.saved_cursor(), ws.strategy.trigger

        threads = [
            threading.Thread(target=_catch(errors, fn)) for fn in (saving, measuring, refreshing)
        ]
        for thread in threads:
            thread.start()
        try:
            for i in range(150):
                ws.set_buckets([(f"tag{i % 40}", ("trait", "context", "flaw", "drop")[i % 4])])
                if i % 10 == 0:
                    ws.set_trigger(f"kd{i}")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert errors == []
        assert store.cursor() == store.last_seq() == 165
        expected = ws.strategy
        ws.apply()
        store.mark_saved()
        assert not ws.unsaved
    with Workspace.open(root) as ws:
        assert ws.strategy.buckets == expected.buckets and ws.strategy.trigger == "kd140"
        assert not ws.unsaved
        assert len(ws.store.measures()) == 50


def _big_dataset(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"{i:05}.png").write_bytes(b"x")
        (root / f"{i:05}.txt").write_bytes(b"1girl, solo, smile, tag%d\n" % (i % 300))
    return root


def test_an_edit_while_the_originals_are_snapshotted_at_scale(tmp_path, monkeypatch):
    """The first open of a large dataset snapshots its originals in the background; an edit
    made meanwhile goes in between two chunks, never waits for (or fails on) the rest."""
    root = _big_dataset(tmp_path / "big", 30_000)
    entered, release = threading.Event(), threading.Event()
    commits: list[str] = []  # who committed, in order (commits are serialised)
    real = store_module._commit

    def watched(conn: sqlite3.Connection) -> None:
        name = threading.current_thread().name
        snapshot = name == "snapshot-originals"
        if snapshot or name == "edit":
            commits.append("chunk" if snapshot else "edit")
        if snapshot and commits.count("chunk") == 2:
            entered.set()  # the second chunk holds the database until an edit waits
            release.wait(30)
        real(conn)

    monkeypatch.setattr(store_module, "_commit", watched)
    ws = Workspace.open(root)
    try:
        assert entered.wait(30)
        snapshot = ws.store._snapshot
        assert snapshot is not None and snapshot.is_alive()
        edit = threading.Thread(target=lambda: ws.set_buckets([("solo", "trait")]), name="edit")
        edit.start()
        for _ in range(3000):  # until the edit waits for the chunk in progress
            if ws.store._gate._waiting:
                break
            threading.Event().wait(0.01)
        release.set()
        edit.join(30)
        assert not edit.is_alive()
        assert ws.strategy.bucket_of("solo") == "trait"
        # It went in right after the chunk it waited for, not after the whole snapshot.
        assert commits[:3] == ["chunk", "chunk", "edit"]
        assert len(commits) < 30_000 // store_module.SNAPSHOT_CHUNK_ROWS
        ws.set_trigger("kd")  # and from this thread, while the snapshot goes on
    finally:
        release.set()
        ws.close()
    with Workspace.open(root) as ws:
        assert ws.strategy.bucket_of("solo") == "trait" and ws.strategy.trigger == "kd"
        originals = ws.store.originals()
        assert len(originals) == 30_000
        assert originals["12345.txt"] == (root / "12345.txt").read_bytes()


def test_edits_right_after_a_first_open_at_scale(tmp_path):
    """No hook: bucket keys pressed as soon as a 40k-caption dataset is open."""
    root = _big_dataset(tmp_path / "big", 40_000)
    with Workspace.open(root) as ws:
        for i in range(20):
            ws.set_buckets([(f"tag{i}", "context")])
    with Workspace.open(root) as ws:
        assert all(ws.strategy.bucket_of(f"tag{i}") == "context" for i in range(20))
        assert len(ws.store.originals()) == 40_000


def test_no_sqlite_error_escapes_the_core(curated, monkeypatch):
    """Whatever SQLite raises, a caller of the core sees a StateError."""
    with Workspace.open(curated) as ws:

        def broken(conn: sqlite3.Connection) -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

        monkeypatch.setattr(store_module, "_commit", broken)
        with pytest.raises(CorruptStateError) as info:
            ws.set_trigger("x")
        assert "reset-state" in str(info.value)
        monkeypatch.undo()
        ws.store.close()
        with pytest.raises(StateError):
            ws.set_trigger("y")


def test_the_state_is_created_whole(tmp_path):
    """A new state is built beside and renamed into place: no half-made state file, and
    a WAL left without its database is not replayed into the new one."""
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    (root / STATE_DIR).mkdir()
    (root / STATE_DIR / (STATE_FILE + "-wal")).write_bytes(b"stale")
    with Workspace.open(root) as ws:
        ws.set_trigger("kd")
    names = sorted(p.name for p in (root / STATE_DIR).iterdir())
    assert STATE_FILE + ".new" not in names
    with Workspace.open(root, read_only=True) as ws:
        assert ws.strategy.trigger == "kd"


def test_a_snapshot_that_fails_stops_every_write(tmp_path, cli_main, monkeypatch):
    """The originals could not be copied (disk full in the background): no caption is
    written, the user is told, and the next open copies them."""
    root = write_dataset(tmp_path / "ds", CAPTIONS)
    before = outside_state(root)
    real = store_module._commit

    def failing(conn: sqlite3.Connection) -> None:
        if threading.current_thread().name == "snapshot-originals":
            raise sqlite3.OperationalError("database or disk is full")
        real(conn)

    monkeypatch.setattr(store_module, "_commit", failing)
    code, _, err = cli_main("apply", root, "--profile", _profile(tmp_path))
    assert code == 1
    line = one_error_line(err)
    assert "could not keep a copy of the original captions" in line and "full" in line
    assert outside_state(root) == before
    monkeypatch.undo()
    assert cli_main("apply", root, "--profile", _profile(tmp_path))[0] == 0
    assert (root / "a.txt").read_text() == "kd, smile, blush, long hair\n"
    assert cli_main("restore", root)[0] == 0  # the originals were copied the second time
    assert all(
        (root / rel).read_bytes() == entry[1] for rel, entry in before.items() if entry[0] == "file"
    )
