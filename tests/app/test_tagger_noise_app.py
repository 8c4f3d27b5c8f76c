"""What taggers over-produce, in the caption pane: implied tags struck, token counts."""

from __future__ import annotations

from tests.app.conftest import settle
from tests.unit.test_tokens import fake_cache
from tui.app.app import CuratorApp
from tui.app.screens.image import ImageScreen
from tui.core.strategy import CaptionFormat, Strategy

EXTENDED = (
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, shirt, short hair, simple background, sitting, smile, socks, solo, window"
)
WORKED = (
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, short hair, simple background, sitting, smile, solo, window"
)


async def test_caption_pane_strikes_implied_tags(make_dataset) -> None:
    root = make_dataset({"a.png": None, "a.txt": EXTENDED + "\n"})
    app = CuratorApp(root, profile=Strategy(caption=CaptionFormat(drop_implied=True)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        caption, implied = app.caption.shown.split("   implied: ")
        assert caption == WORKED
        assert implied == "shirt (by orange shirt), socks (by grey socks)"


async def test_caption_pane_shows_the_token_count(make_dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(fake_cache(tmp_path / "hub")))
    root = make_dataset({"a.png": None, "a.txt": "black hair, smile\n"})
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.caption.shown == "black hair, smile\n4/75 tokens"


async def _drawn(pilot, pane, image: str) -> None:
    for _ in range(400):
        await pilot.pause(0.02)
        if pane.drawn(image):
            return
    raise AssertionError(f"{image} was not drawn")


async def test_f_shows_the_image_full_screen_and_brackets_move(sample_copy) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, preview=True)
        first = app.image
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await _drawn(pilot, screen.pane, first)
        # The whole terminal: 80 columns, 23 rows of half-blocks plus the name line.
        assert screen.pane.content_size == (80, 24)
        await pilot.press("]")
        assert app.image != first
        await _drawn(pilot, screen.pane, app.image)
        await pilot.press("[")
        assert app.image == first
        await pilot.press("escape")
        assert not isinstance(app.screen, ImageScreen)
        for key in ("f", "q"):
            await pilot.press("f")
            assert isinstance(app.screen, ImageScreen)
            await pilot.press(key)
            assert not isinstance(app.screen, ImageScreen)
        assert app.is_running  # q closed the view, not the app


def test_full_screen_snapshot(snap_compare, sample_copy) -> None:
    async def ready(pilot) -> None:
        await settle(pilot, pilot.app, preview=True)
        await pilot.press("f")
        await _drawn(pilot, pilot.app.screen.pane, pilot.app.image)

    assert snap_compare(CuratorApp(sample_copy), terminal_size=(80, 24), run_before=ready)
