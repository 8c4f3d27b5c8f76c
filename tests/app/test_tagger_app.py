"""The tagger in the app: scores after the tags, candidates under the threshold (space adds
one), threshold keys re-render the caption and say how many tags moved, ctrl+t tags."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.app.conftest import settle
from tests.tagger_models import build_test_model
from tui.app.app import CuratorApp
from tui.core.scores import ScoreStore
from tui.core.tagger.pipeline import open_tagger, plan_tagging


def notes(app: CuratorApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_test_model(tmp_path / "wd-tiny", size=16)


def blue_dataset(root: Path, names: tuple[str, ...] = ("blue",)) -> Path:
    root.mkdir()
    for name in names:
        Image.new("RGB", (20, 20), (0, 0, 255)).save(root / f"{name}.png")
        (root / f"{name}.txt").write_text("1girl, smile\n", encoding="utf-8")
    return root


def tag(root: Path, model: Path) -> None:
    tagger, labels = open_tagger(str(model), "cpu")
    with ScoreStore.open_for_tagging(root) as store:
        job, _ = plan_tagging(root, tagger, labels, store)
        job.run(store)


async def test_scores_candidates_and_threshold_keys(tmp_path, model):
    root = blue_dataset(tmp_path / "ds")
    tag(root, model)
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab")
        assert app.focused is app.tags
        # Tagger tags (the image was tagged), then blush (0.30) as a dim candidate.
        assert list(app.tags.rows) == [
            "hatsune miku",
            "blue sky",
            "general",
            "^_^",
            "looking at viewer",
            "solo",
            "blush",
        ]
        assert app.tags.row_text("looking at viewer", 60).plain.rstrip().split()[-3] == "0.40"
        blush = app.tags.row_text("blush", 60)
        # Shown cut to two decimals: the model's 0.2999999 is not kept at 0.30.
        assert " 0.29 " in blush.plain and blush.plain.startswith(" + ")
        assert "blush" not in app.caption.shown
        # space adds the candidate to this image (a per-image add, undoable).
        assert app.tags.move_to("blush")
        await pilot.press("space")
        assert "blush" in app.ws.image_tags("blue.png")
        assert (
            app.caption.shown.startswith("hatsune miku, blue sky") and "blush" in app.caption.shown
        )
        assert app.tags.candidates == frozenset()
        await pilot.press("ctrl+z")
        assert "blush" not in app.caption.shown
        # `-` twice lowers the general threshold to 0.25: blush enters, the caption shows it.
        await pilot.press("minus")
        assert any("general threshold 0.30: 0 tag(s) enter, 0 leave" in n for n in notes(app))
        await pilot.press("minus")
        assert app.ws.strategy.tagger.general_threshold == 0.25
        assert "blush" in app.caption.shown
        assert any("general threshold 0.25: 1 tag(s) enter, 0 leave" in n for n in notes(app))
        assert "0.25/0.85 thresholds" in str(app.query_one("#status").render())
        assert app.tags.candidates == frozenset()  # nothing left within 0.10 under 0.25
        # `=` raises it to 0.30: blush leaves.
        await pilot.press("equals_sign")
        assert "blush" not in app.caption.shown
        assert any("general threshold 0.30: 0 tag(s) enter, 1 leave" in n for n in notes(app))
        # `_` lowers the character threshold to 0.80, `+` back to 0.85; nothing moves.
        await pilot.press("underscore")
        assert app.ws.strategy.tagger.character_threshold == 0.80
        await pilot.press("plus")
        assert app.ws.strategy.tagger.character_threshold == 0.85
        await pilot.press(*["ctrl+z"] * 5)
        assert app.ws.strategy.tagger.general_threshold == 0.35
    # Nothing was saved: the caption files are as they were.
    assert (root / "blue.txt").read_text() == "1girl, smile\n"


async def test_threshold_keys_without_scores_say_how_to_tag(worked_example):
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("minus")
        assert any("no tagger scores yet: ctrl+t tags the images" in n for n in notes(app))


async def test_tagging_from_the_app(tmp_path, model):
    root = blue_dataset(tmp_path / "ds", ("a", "b"))
    app = CuratorApp(root, model=str(model))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.caption.shown == "1girl, smile"
        await pilot.press("ctrl+t")
        for _ in range(500):
            await pilot.pause(0.02)
            if any("tagged" in n for n in notes(app)):
                break
        assert any(n.startswith("2 image(s) tagged, 0 failed (running on") for n in notes(app))
        assert app.ws.has_scores and not app.tagging
        # The sources are derived again: the tagger's tags, by descending score.
        assert app.caption.shown.startswith("hatsune miku, blue sky, general")
        # Again: nothing left to tag.
        await pilot.press("ctrl+t")
        for _ in range(500):
            await pilot.pause(0.02)
            if any(n.startswith("0 image(s)") for n in notes(app)):
                break
        assert any(n.startswith("0 image(s) tagged") for n in notes(app))


async def test_tagging_from_the_app_without_a_model_says_which_to_give(tmp_path):
    root = blue_dataset(tmp_path / "ds")
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+t")
        assert any("start the app with --model MODEL" in n for n in notes(app))


async def test_tagging_from_the_app_without_onnxruntime_says_how_to_install(
    tmp_path, model, monkeypatch
):
    import tui.core.tagger.runtime as runtime
    from tui.core.tagger import TaggerError

    def missing():
        raise TaggerError("the tagger needs onnxruntime: pip install 'lora-curator[tagger]'")

    monkeypatch.setattr(runtime, "import_runtime", missing)
    monkeypatch.setattr("tui.core.tagger.pipeline.import_runtime", missing)
    root = blue_dataset(tmp_path / "ds")
    app = CuratorApp(root, model=str(model))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+t")
        for _ in range(200):
            await pilot.pause(0.02)
            if not app.tagging:
                break
        assert any("pip install 'lora-curator[tagger]'" in n for n in notes(app))
        assert not app.ws.has_scores


def test_the_help_table_shows_the_threshold_and_tagging_keys():
    from tui.app.screens.help import key_table

    table = key_table({})
    tagger = next(line for line in table.splitlines() if line.startswith("tagger"))
    for entry in ("-/= general", "_/+ character threshold", "ctrl+t tag the untagged"):
        assert entry in tagger
