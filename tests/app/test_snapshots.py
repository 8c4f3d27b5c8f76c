"""Snapshots of the sample dataset with its kaede profile, at 80×24 and 120×40.

The 120×40 one is also the README's screenshot. Update with `pytest --snapshot-update` after
a deliberate change of the screen, and look at the report before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.core.profile import load_profile


def sample_app(sample_copy: Path) -> CuratorApp:
    ref = sample_copy / "profiles" / "kaede.toml"
    return CuratorApp(sample_copy, profile=load_profile(ref), profile_ref=str(ref))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_sample(snap_compare, sample_copy: Path, size: tuple[int, int]) -> None:
    async def ready(pilot) -> None:
        await settle(pilot, pilot.app, preview=True)
        await pilot.press("tab")  # the tag checklist, where the work happens

    assert snap_compare(sample_app(sample_copy), terminal_size=size, run_before=ready)


def test_sample_dataset_view(snap_compare, sample_copy: Path) -> None:
    async def ready(pilot) -> None:
        await settle(pilot, pilot.app, preview=True)
        await pilot.press("]", "tab", "v")
        await settle(pilot, pilot.app, preview=True)

    assert snap_compare(sample_app(sample_copy), terminal_size=(120, 40), run_before=ready)
