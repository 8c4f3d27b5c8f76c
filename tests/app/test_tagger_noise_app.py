"""What taggers over-produce, in the caption pane: implied tags struck, token counts."""

from __future__ import annotations

from tests.app.conftest import settle
from tests.unit.test_tokens import fake_cache
from tui.app.app import CuratorApp
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
