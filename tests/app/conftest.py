"""Fixtures for the app: a dataset copy, and a way to wait until the app has settled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.app.app import CuratorApp

WORKED_EXAMPLE = (
    "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
    "orange shirt, short hair, simple background, sitting, smile, solo, window"
)


async def settle(pilot, app: CuratorApp, preview: bool = False) -> None:
    """Wait until the dataset is open, its query index built (and, with `preview`, the
    preview drawn)."""
    for _ in range(400):
        await pilot.pause(0.02)
        if (
            app.ws is not None
            and not app.busy
            and not app.files.index_pending
            and (not preview or not app.preview.pending)
        ):
            await pilot.pause()
            return
    raise AssertionError("the app did not settle")


@pytest.fixture
def worked_example(make_dataset) -> Path:
    """One image whose caption is tagging.md's worked example."""
    return make_dataset({"10_kaede/window.png": None, "10_kaede/window.txt": WORKED_EXAMPLE + "\n"})
