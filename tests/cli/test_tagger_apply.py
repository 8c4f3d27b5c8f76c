"""Thresholds re-render from stored scores: `apply --dry-run` after a threshold change (an
edit, or `--general-threshold`) shows the new captions with the model folder deleted."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from tests.tagger_models import build_test_model
from tui.core.strategy import Strategy
from tui.core.tagger import TaggerSettings
from tui.core.workspace import Workspace


def dry_run(run_cli, root: Path, *args: str) -> dict[str, str]:
    result = run_cli("apply", root, "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return dict(line.split("\t") for line in result.stdout.splitlines())


def test_a_threshold_change_re_renders_without_the_model(tmp_path, run_cli):
    model = build_test_model(tmp_path / "wd-tiny", size=16)
    root = tmp_path / "ds"
    root.mkdir()
    Image.new("RGB", (20, 20), (0, 0, 255)).save(root / "blue.png")
    (root / "blue.txt").write_text("1girl, smile\n", encoding="utf-8")
    Image.new("RGB", (20, 20), (0, 0, 255)).save(root / "untagged.png")
    tagged = run_cli("tag", root, "--model", model)
    assert tagged.returncode == 0, tagged.stderr
    Image.new("RGB", (20, 20), (0, 0, 255)).save(root / "new.png")  # added after tagging
    (root / "new.txt").write_text("1girl, smile\n", encoding="utf-8")
    (root / "untagged.png").unlink()
    shutil.rmtree(model)  # the model is gone: thresholds still work

    with Workspace.open(root) as ws:
        ws.use_strategy(Strategy(name="miku", trigger="miku"))
    before = dry_run(run_cli, root)
    # Tagger tags where the image was tagged (by descending score), caption tags elsewhere.
    assert before["blue.png"].startswith("miku, hatsune miku, blue sky, general, ^_^")
    assert "blush" not in before["blue.png"] and "1girl" not in before["blue.png"]
    assert before["new.png"] == "miku, 1girl, smile"

    # blush scores 0.30 everywhere: under the default 0.35, over 0.25.
    assert dry_run(run_cli, root, "--general-threshold", "0.25")["blue.png"].endswith(", blush")
    with Workspace.open(root) as ws:
        ws.set_tagger(TaggerSettings(general_threshold=0.25))
    after = dry_run(run_cli, root)
    assert after["blue.png"] == before["blue.png"] + ", blush"
    assert after["new.png"] == before["new.png"]
    assert "blush" not in (root / "blue.txt").read_text()  # a dry run writes nothing
    # A character threshold of 1 drops the character (0.9997).
    raised = dry_run(run_cli, root, "--character-threshold", "1")["blue.png"]
    assert "hatsune miku" not in raised


def test_a_threshold_out_of_range_is_a_usage_error(tmp_path, run_cli):
    (tmp_path / "a.png").write_bytes(b"x")
    result = run_cli("apply", tmp_path, "--dry-run", "--general-threshold", "1.5")
    assert result.returncode == 2
    assert "'1.5' is not a number between 0 and 1" in result.stderr
    assert "Traceback" not in result.stderr
