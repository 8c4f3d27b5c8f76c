"""Concepts in the app: the status bar names the image's concept, the file list narrows to one,
bucket keys act on the profile or the concept, a concept is made from the current folder."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import settle
from tests.unit.test_concepts import make_dataset, write_profile
from tui.app.app import CuratorApp
from tui.app.screens.dialogs import PromptScreen
from tui.core.profile import load_profile
from tui.core.workspace import Workspace


def status_of(app: CuratorApp) -> str:
    return str(app.query_one("#status").render())


async def test_status_names_the_concept_and_c_narrows_the_files(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds")
    profile = write_profile(tmp_path, "absorb")
    app = CuratorApp(dataset, profile=load_profile(profile), profile_ref=str(profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        app.files.move_to("10_school/s1.png")
        await pilot.pause()
        assert "school" in status_of(app)
        assert "keys→profile" in status_of(app)
        app.files.move_to("extra/n1.png")
        await pilot.pause()
        assert "no concept" in status_of(app)
        await pilot.press("c")  # the first concept: school (by folder, and c2 by its tag)
        assert list(app.files.rows) == ["10_school/s1.png", "10_school/s2.png", "5_casual/c2.png"]
        assert "only school" in status_of(app)
        await pilot.press("c")
        assert list(app.files.rows) == ["5_casual/c1.png"]
        await pilot.press("c")  # all again
        assert len(app.files.rows) == 5


async def test_C_makes_the_bucket_keys_act_on_the_concept(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds")
    profile = write_profile(tmp_path, "absorb")
    app = CuratorApp(dataset, profile=load_profile(profile), profile_ref=str(profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        app.files.move_to("5_casual/c1.png")
        await pilot.pause()
        await pilot.press("tab")
        app.tags.move_to("standing")
        await pilot.press("C")
        assert "keys→casual" in status_of(app)
        await pilot.press("1")  # standing: a trait of casual only
        casual = app.ws.strategy.concept_named("casual")
        assert casual.bucket_index["standing"] == "trait"
        assert app.ws.strategy.bucket_of("standing") == "context"  # the profile keeps its own
        assert "standing" not in app.caption.shown.split("   removed:")[0]
        await pilot.press("ctrl+z")
        assert "standing" not in app.ws.strategy.concept_named("casual").bucket_index
        await pilot.press("C")
        assert "keys→profile" in status_of(app)
    with Workspace.open(dataset) as ws:  # committed at once, and undone
        assert "standing" not in ws.strategy.concept_named("casual").bucket_index


async def test_N_makes_a_concept_of_the_current_folder(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds")
    app = CuratorApp(dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        app.files.move_to("extra/n1.png")
        await pilot.pause()
        await pilot.press("N")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"kaede extra", "enter")
        await pilot.pause()
        concept = app.ws.strategy.concept_named("extra")
        assert concept is not None and concept.folders == ("extra",)
        assert app.caption.shown.startswith("kaede extra, 1girl")
        assert "extra" in status_of(app)
    with Workspace.open(dataset) as ws:
        assert ws.caption_for("extra/n1.png").startswith("kaede extra, ")
        assert ws.concept_of("10_school/s1.png") is None
