"""The app and its state database: a change that cannot be committed (disk full), a bucket key
pressed while the first open snapshots a large dataset, and a save racing with keys."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.app.conftest import settle
from tests.conftest import snapshot_tree, write_dataset
from tui.app.app import CuratorApp
from tui.core import store as store_module
from tui.core.dataset import STATE_DIR
from tui.core.workspace import Workspace


def status(app: CuratorApp) -> str:
    return str(app.query_one("#status", Static).render())


def notes(app: CuratorApp) -> list[tuple[str, str]]:
    return [(n.severity, n.message) for n in app._notifications]


def outside_state(root: Path) -> dict:
    return {
        rel: v
        for rel, v in snapshot_tree(root).items()
        if rel != STATE_DIR and not rel.startswith(STATE_DIR + "/")
    }


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(True)`: every commit of the state fails as SQLite fails on a full disk."""
    real = store_module._commit

    def failing(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def set_full(full: bool) -> None:
        monkeypatch.setattr(store_module, "_commit", failing if full else real)

    return set_full


async def test_disk_full_while_editing(worked_example: Path, full_disk) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "2")  # 1girl → context: committed
        assert app.ws.strategy.bucket_of("1girl") == "context"
        tree = outside_state(worked_example)
        full_disk(True)
        await pilot.press("g", "j", "1")  # bangs → trait: cannot be committed
        await pilot.pause()
        assert app.ws.strategy.bucket_of("bangs") == "unsorted"  # not applied
        assert "NOT saved" in status(app)
        severity, message = notes(app)[-1]
        assert severity == "error" and "not saved" in message and "disk is full" in message
        await pilot.press("ctrl+z")  # undo cannot be committed either: nothing moves
        await pilot.pause()
        assert app.ws.strategy.bucket_of("1girl") == "context"
        await pilot.press("P")
        assert app.ws.strategy.pattern == "keep-all"
        await pilot.press("ctrl+s")  # a save cannot record what it does: nothing written
        await settle(pilot, app)
        assert outside_state(worked_example) == tree
        assert notes(app)[-1][0] == "error"
        # The disk has room again: the app was usable all along.
        full_disk(False)
        await pilot.press("g", "j", "1")
        assert app.ws.strategy.bucket_of("bangs") == "trait"
        assert "NOT saved" not in status(app)
        assert app.is_running
    with Workspace.open(worked_example) as ws:  # every committed edit is there
        assert ws.strategy.bucket_of("1girl") == "context"
        assert ws.strategy.bucket_of("bangs") == "trait"
        assert ws.strategy.pattern == "keep-all"


async def test_a_bucket_key_while_the_first_open_snapshots_a_large_dataset(
    tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "big"
    root.mkdir()
    for i in range(20_000):
        (root / f"{i:05}.png").write_bytes(b"x")
        (root / f"{i:05}.txt").write_bytes(b"1girl, solo, smile, tag%d\n" % (i % 300))
    # The snapshot's chunks wait until the key is pressed: it is surely running meanwhile.
    pressed = threading.Event()
    real = store_module._commit

    def slow(conn: sqlite3.Connection) -> None:
        if threading.current_thread().name == "snapshot-originals":
            pressed.wait(30)
        real(conn)

    monkeypatch.setattr(store_module, "_commit", slow)
    app = CuratorApp(root)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, app)
            snapshot = app.ws.store._snapshot
            assert snapshot is not None and snapshot.is_alive()
            await pilot.press("tab")
            tag = app.tags.current
            pressed.set()
            await pilot.press("1")
            assert app.ws.strategy.bucket_of(tag) == "trait"
            assert app.is_running and not app.not_saved
    finally:
        pressed.set()
    with Workspace.open(root) as ws:
        assert ws.strategy.bucket_of(tag) == "trait"
        assert len(ws.store.originals()) == 20_000


async def test_a_save_racing_with_keys_and_status_refreshes(tmp_path: Path) -> None:
    files: dict[str, str | None] = {}
    for i in range(1500):
        files[f"{i:04}.png"] = None
        files[f"{i:04}.txt"] = f"tag{i % 50}, smile, solo\n"
    root = write_dataset(tmp_path / "ds", files)
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "1", "2", "t")
        await pilot.press(*"kd", "enter")
        await pilot.press("ctrl+s")
        # While the save runs: moving (status refreshes), bucket keys, undo.
        await pilot.press("]", "]", "3", "ctrl+z", "[", "j", "4", "]")
        await settle(pilot, app)
        assert app.is_running
        assert all(severity != "error" for severity, _ in notes(app))
        # Whatever landed during the save is either saved or shown unsaved, never lost.
        strategy = app.ws.strategy
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert not app.ws.unsaved
    with Workspace.open(root) as ws:
        assert ws.strategy.buckets == strategy.buckets
        assert ws.strategy.trigger == strategy.trigger
        assert not ws.unsaved
        for entry, caption in ws.render_all():
            assert (root / entry.caption).read_text() == caption
