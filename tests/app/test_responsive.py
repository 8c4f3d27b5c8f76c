"""The app stays usable while it opens and redraws only what a key changed: the file list
works while the background part of opening runs, the filter's result is the full query's
whatever was typed (growing, shrinking, edited; in a worker too, the newest query winning),
and a cursor move or a bucket key re-renders only the rows that changed."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

import tui.app.app as app_module
from tests.app.conftest import settle
from tui.app.app import Busy, CuratorApp
from tui.app.widgets.file_list import FoundRows
from tui.core.query import QueryError, workspace_index

KEYS = {" ": "space", ",": "comma", "-": "minus", "*": "asterisk", "(": "left_parenthesis"}

FILES = {f"10_set/{i:02d}.png": None for i in range(12)} | {
    f"10_set/{i:02d}.txt": ", ".join(
        tag
        for j, tag in enumerate(
            ["black hair", "smile", "blush", "blonde hair", "grin", "red eyes", "solo"]
        )
        if (i >> j) & 1 or j == 6
    )
    for i in range(12)
}


@pytest.fixture
def dataset(make_dataset) -> Path:
    return make_dataset(FILES)


def status_of(app: CuratorApp) -> str:
    return str(app.query_one("#status").render())


def full_result(app: CuratorApp, text: str) -> list[str] | None:
    """What the query finds, from a fresh index (nothing cached); None: no query."""
    assert app.ws is not None
    try:
        return workspace_index(app.ws).match(text)
    except QueryError:
        return None


async def wait_shown(pilot, app: CuratorApp) -> None:
    """Until the file list shows the outcome of what was typed (a worker may compute it)."""
    for _ in range(200):
        if app.files.shown_filter == app.files.filter_text:
            return
        await pilot.pause(0.01)
    raise AssertionError("the query's outcome never came")


async def test_the_file_list_works_while_the_rest_of_opening_runs(
    dataset: Path, monkeypatch
) -> None:
    release = threading.Event()
    real_suggest = app_module.suggest_buckets

    def slow_suggest(*args):  # the background part of opening waits until the test says go
        assert release.wait(20)
        return real_suggest(*args)

    monkeypatch.setattr(app_module, "suggest_buckets", slow_suggest)
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(400):
            await pilot.pause(0.02)
            if app.ws is not None and app.loading_phase == "finding implied tags":
                break
        assert app.busy is Busy.LOADING
        rows = list(app.files.rows)
        assert len(rows) == 12 and app.image == rows[0]
        assert "finding implied tags" in status_of(app)  # the phase, in the status bar
        await pilot.press("j", "j")  # moving works: the image follows the cursor
        assert app.image == rows[2]
        assert app.caption.shown  # its caption is shown
        await pilot.press("tab")
        before = app.ws.strategy
        await pilot.press("1")  # an edit waits for the end of opening
        assert app.ws.strategy is before
        await pilot.press("shift+tab", "/", *"smile")  # typed now, applied once indexed
        assert len(app.files.rows) == 12
        release.set()
        await settle(pilot, app)
        assert app.busy is Busy.IDLE
        assert "indexing" not in status_of(app)
        assert list(app.files.rows) == full_result(app, "smile")
        assert 0 < len(app.files.rows) < 12


async def test_edits_come_on_before_the_query_index_which_then_sees_them(
    dataset: Path, monkeypatch
) -> None:
    release = threading.Event()
    real_build = app_module.build_index

    def slow_build(source):  # the index waits until the test says go
        assert release.wait(20)
        return real_build(source)

    monkeypatch.setattr(app_module, "build_index", slow_build)
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(400):
            await pilot.pause(0.02)
            if app.ws is not None and not app.busy:
                break
        assert app.busy is Busy.IDLE and app.files.index_pending
        assert "indexing for queries" in status_of(app)  # what is still being done
        await pilot.press("j", "tab", "g")  # 01.png: black hair, solo
        tag = app.tags.current
        assert tag is not None and app.ws.strategy.bucket_of(tag) == "unsorted"
        await pilot.press("1")  # edits work now: the tag is a trait
        assert app.ws.strategy.bucket_of(tag) == "trait"
        await pilot.press("shift+tab", "/", *"bucket:trait")  # waits for the index
        assert len(app.files.rows) == 12
        assert "indexing" in app.query_one("#filter").border_title
        release.set()
        await settle(pilot, app)
        await wait_shown(pilot, app)
        assert "indexing" not in status_of(app)
        # The index was read before the edit: the query still finds the edit's images.
        found = full_result(app, "bucket:trait")
        assert list(app.files.rows) == found
        assert found == [r for r in app.ws.by_image if tag in app.ws.image_tags(r)]
        assert 0 < len(found) < 12


async def test_the_status_bar_names_the_phase_of_opening_as_the_command_line_does(
    dataset: Path, monkeypatch
) -> None:
    release = threading.Event()
    real_open = app_module.Workspace.open

    def slow_open(root, **kwargs):  # reads 5 of 10 captions, then waits for the test
        kwargs["progress"]("read", 5, 10)
        assert release.wait(20)
        return real_open(root, **kwargs)

    monkeypatch.setattr(app_module.Workspace, "open", slow_open)
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.02)
            if "reading" in status_of(app):
                break
        assert "opening … 5/10 reading captions" in status_of(app)
        release.set()
        await settle(pilot, app)
        assert len(app.files.rows) == 12


async def test_images_are_listed_and_previewed_while_the_captions_are_read(
    dataset: Path, monkeypatch
) -> None:
    from tui.core.workspace import Workspace

    release = threading.Event()
    real_read = Workspace._read_captions

    def slow_read(self, *args):  # type: ignore[no-untyped-def]
        assert release.wait(20)  # the folders are scanned; no caption is read until told
        return real_read(self, *args)

    monkeypatch.setattr(Workspace, "_read_captions", slow_read)
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.02)
            if app.files.rows:
                break
        assert app.ws is None and len(app.files.rows) == 12  # listed before the workspace
        await pilot.press("j", "j")
        for _ in range(200):
            await pilot.pause(0.02)
            if app.preview.drawn("10_set/02.png"):
                break
        assert app.preview.drawn("10_set/02.png")  # browsing works, with pictures
        await pilot.press("tab", "1")  # no workspace yet: an edit key does nothing
        assert app.ws is None and not app.tags.rows
        release.set()
        await settle(pilot, app)
        assert app.files.current == "10_set/02.png"  # the cursor stayed where it went
        assert app.image == "10_set/02.png" and app.tags.rows  # its tags came


async def test_progress_of_opening_redraws_the_status_at_most_ten_times_a_second(
    dataset: Path, monkeypatch
) -> None:
    release = threading.Event()
    real_open = app_module.Workspace.open

    def busy_open(root, **kwargs):  # 1,000 captions reported in a burst, then the last
        for i in range(1, 1000):
            kwargs["progress"]("read", i, 1000)
        kwargs["progress"]("read", 1000, 1000)
        assert release.wait(20)
        return real_open(root, **kwargs)

    monkeypatch.setattr(app_module.Workspace, "open", busy_open)
    handled: list[str] = []
    real_handler = CuratorApp.on_open_progress

    def counting(self, message):  # type: ignore[no-untyped-def]
        handled.append(f"{message.done}/{message.total}")
        real_handler(self, message)

    monkeypatch.setattr(CuratorApp, "on_open_progress", counting)
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.02)
            if "1,000/1,000" in status_of(app):
                break
        assert "opening … 1,000/1,000 reading captions" in status_of(app)  # the last is shown
        assert len(handled) <= 5  # not a redraw per call: the burst took well under a second
        release.set()
        await settle(pilot, app)


@pytest.mark.parametrize("worker", [False, True], ids=["on the UI thread", "in a worker"])
async def test_the_filter_shows_the_full_query_result_however_it_was_typed(
    dataset: Path, worker: bool
) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        if worker:  # every query in the worker, even those quick enough for the UI thread
            app.files.thread_from = 0
            app.files.index.is_quick = lambda query: False  # type: ignore[union-attr]
        await pilot.press("/")
        box = app.query_one("#filter")
        checked = 0

        async def check() -> None:
            nonlocal checked
            await wait_shown(pilot, app)
            want = full_result(app, box.value)
            if want is not None:  # a malformed query keeps the last good result instead
                assert list(app.files.rows) == want
                checked += 1

        for ch in "black hair, -smile":  # growing
            await pilot.press(KEYS.get(ch, ch))
            await check()
        for _ in range(8):  # shrinking
            await pilot.press("backspace")
            await check()
        await pilot.press("home")  # edited in the middle: a term in front
        for ch in "blush, ":
            await pilot.press(KEYS.get(ch, ch))
            await check()
        for ch in "*hair":  # a wildcard at the end
            await pilot.press("end", KEYS.get(ch, ch))
            await check()
        assert checked > 20


async def test_only_the_newest_query_is_evaluated_and_shown(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        files = app.files
        files.thread_from = 0
        index = files.index
        assert index is not None
        evaluated: list[str] = []
        real = index.evaluate

        def counted(query):
            evaluated.append(query)
            return real(query)

        index.evaluate = counted  # type: ignore[method-assign]
        app.files.query_lock.acquire()  # the workers wait, as behind a slow query
        try:
            await pilot.press("/", *"smil", "e")
            await pilot.pause(0.1)
            assert len(files.rows) == 12  # nothing shown yet; keys were not blocked
            assert app.query_one("#filter").value == "smile"
        finally:
            app.files.query_lock.release()
        await wait_shown(pilot, app)
        await pilot.pause(0.1)  # any overtaken worker has run by now
        assert evaluated == ["smile"]  # "s", "sm", ... were overtaken: never evaluated
        assert list(files.rows) == full_result(app, "smile")
        # An outcome that comes after the user typed on is dropped.
        assert not files.apply_query("smil", index, real("smil"), None)
        assert list(files.rows) == full_result(app, "smile")


async def test_a_cursor_move_redraws_only_the_two_rows_that_changed(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, preview=True)
        files = app.files
        drawn: list[int] = []
        real = files.render_line

        def counted(y: int):
            drawn.append(y + files.scroll_offset.y)
            return real(y)

        files.render_line = counted  # type: ignore[method-assign]
        rendered = files.lines_rendered
        await pilot.press("j")
        await pilot.pause()
        assert sorted(drawn) == [0, 1]  # the row left and the row reached, nothing else
        assert files.lines_rendered - rendered == 2
        drawn.clear()
        rendered = files.lines_rendered
        await pilot.press("k")
        await pilot.pause()
        assert sorted(drawn) == [0, 1]
        assert files.lines_rendered == rendered  # both strips were cached


async def test_a_bucket_key_redraws_only_the_tag_rows_that_changed(dataset: Path) -> None:
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, preview=True)
        await pilot.press("G", "tab")  # the last image: four tags
        await pilot.pause()
        tags = app.tags
        assert len(tags.rows) == 4
        before = tags.cursor
        drawn: list[int] = []
        real = tags.render_line

        def counted(y: int):
            drawn.append(y + tags.scroll_offset.y)
            return real(y)

        tags.render_line = counted  # type: ignore[method-assign]
        await pilot.press("1")
        await pilot.pause()
        assert tags.cursor != before  # on to the next unsorted tag
        # The tag put in a bucket and the row the cursor went to: no other row.
        assert sorted(drawn) == sorted({before, tags.cursor})


async def test_tab_redraws_the_two_lists_and_never_the_whole_screen(
    dataset: Path, monkeypatch
) -> None:
    from textual._compositor import Compositor

    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, preview=True)
        full: list[bool] = []
        real_full = Compositor.render_full_update

        def full_update(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            full.append(True)
            return real_full(self, *args, **kwargs)

        monkeypatch.setattr(Compositor, "render_full_update", full_update)
        drawn: dict[str, int] = {"files": 0, "tags": 0, "preview": 0}
        for name, widget in (
            ("files", app.files),
            ("tags", app.tags),
            ("preview", app.preview.pixels),
        ):
            real = widget.render_line

            def counted(y: int, name=name, real=real):  # type: ignore[no-untyped-def]
                drawn[name] += 1
                return real(y)

            widget.render_line = counted  # type: ignore[method-assign]
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is app.tags
        # Both lists change their border and cursor; the picture, caption and status do not.
        assert drawn["files"] and drawn["tags"] and drawn["preview"] == 0
        assert not full  # (Textual's screen would repaint everything on a focus change)


def test_found_rows_read_from_a_bytemap_are_the_list_of_what_was_found(monkeypatch) -> None:
    monkeypatch.setattr(FoundRows, "BLOCK", 8)  # many blocks, so their edges are crossed
    rng = random.Random(3)
    images = [f"{i:03d}.png" for i in range(203)]
    for share in (0.0, 0.05, 0.5, 1.0):
        marks = [rng.random() < share for _ in images]
        found = int.from_bytes(bytes(marks), "little")
        rows = FoundRows(images, found)
        want = [image for image, mark in zip(images, marks, strict=True) if mark]
        assert len(rows) == len(want)
        assert list(rows) == want and rows == want
        assert [rows[k] for k in range(len(want))] == want  # by position, any order
        assert [rows[k] for k in reversed(range(len(want)))] == want[::-1]
        if want:
            assert rows[-1] == want[-1]
        with pytest.raises(IndexError):
            rows[len(want)]
        for p, image in enumerate(images):
            assert rows.has(p) == (image in want)
            assert rows.rank(p) == sum(marks[:p])


def test_a_query_is_quick_when_it_needs_no_pass_over_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the file list evaluates in the keystroke's frame; the rest goes to a worker.
    from tui.core import query as query_module
    from tui.core.query import TagIndex

    images = [f"{i}.png" for i in range(300)]
    tags = [["black hair", "smile"] if i % 2 else ["blonde hair", f"rare {i}"] for i in range(300)]
    index = TagIndex(images, tags)
    assert index.is_quick("black hair, -smile")  # posting lists only
    assert index.is_quick("black hair, (")  # malformed: the parser answers
    assert index.is_quick("*hair, -rare 1*")  # a few tags' ids: set in the frame
    monkeypatch.setattr(query_module, "QUICK_IDS", 100)  # "rare *": 150 ids, one by one
    for query in ("rare *", "*", "name:a*", "tags>1", "black hair | rare*"):
        assert not index.is_quick(query)
        found = index.match(query)
        assert index.is_quick(query)  # evaluated once: kept
        assert index.match(query) == found
    monkeypatch.setattr(query_module, "QUICK_KEYS", 3)  # more tags than a frame matches
    assert not index.is_quick("*air")


async def test_a_pause_in_typing_collects_and_gives_the_memory_back(
    dataset: Path, monkeypatch
) -> None:
    # Once the keys pause, a full collection runs (never in the middle of keys), and the
    # pages it freed go back to the system: a session's memory stays flat (bench/memory.py).
    calls: list[str] = []
    monkeypatch.setattr(app_module.gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(app_module, "give_back_free_memory", lambda: calls.append("give back"))
    app = CuratorApp(dataset)
    app.idle_gc_seconds = 0.3
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        calls.clear()
        await pilot.press("j")
        assert calls == []  # not with the key
        for _ in range(100):
            await pilot.pause(0.02)
            if calls:
                break
        await pilot.pause(0.5)
        assert calls == ["collect", "give back"]  # once per pause, then nothing to do
