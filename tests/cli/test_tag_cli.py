"""`lora-curator tag`: a real subprocess on a dataset of real pictures with a model the test
builds. Counts, resuming after `kill -9`, a corrupt image, the messages when something is
missing, captions never touched, nothing on stdout."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest
from PIL import Image

from tests.tagger_models import build_test_model, fake_hf_cache
from tui import progress
from tui.cli import main
from tui.core.dataset import STATE_DIR
from tui.core.scores import ScoreStore, scores_path
from tui.core.tagger import TaggerSettings, select_tags

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_test_model(tmp_path / "wd-tiny", size=32)


def make_pictures(root: Path) -> Path:
    """Three flat pictures with captions, a corrupt image, and a picture in a subfolder."""
    (root / "sub").mkdir(parents=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", (40, 30), rgb).save(root / f"{name}.png")
        (root / f"{name}.txt").write_text("1girl, smile\n", encoding="utf-8")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated nonsense")
    Image.new("RGBA", (20, 40), (255, 0, 0, 255)).save(root / "sub" / "deep.png")
    return root


def captions_and_images(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and STATE_DIR not in p.parts
    }


def tagged(root: Path) -> dict[str, list[str]]:
    with ScoreStore.open_read(root) as store:
        model = store.latest_model()
        return {
            image: select_tags(scores, TaggerSettings(rating=False))
            for image, scores in store.all_scores(model)
        }


def test_tag_then_rerun_then_retag(tmp_path, model, run_cli):
    root = make_pictures(tmp_path / "ds")
    before = captions_and_images(root)
    first = run_cli("tag", root, "--model", model, "--batch-size", "2")
    assert first.returncode == 1, first.stderr  # one image failed
    assert first.stdout == ""
    lines = first.stderr.splitlines()
    assert lines[0] == (
        "lora-curator: running on CPU (this onnxruntime has no CUDA support; for the GPU: "
        "pip install 'lora-curator[tagger-gpu]')"
    )
    assert "lora-curator: broken.jpg: " in first.stderr and "skipped" in first.stderr
    assert lines[-1] == "4 tagged, 0 already tagged, 1 failed"
    assert captions_and_images(root) == before  # captions (and images) untouched
    tags = tagged(root)
    assert tags["red.png"][:2] == ["kaede (blue archive)", "red background"]
    assert tags["blue.png"][:2] == ["hatsune miku", "blue sky"]
    assert "green grass" in tags["green.png"]
    # A 20×40 red picture padded with white is half white: no longer a red background (it
    # would be if it were stretched to the square instead of padded).
    assert tags["sub/deep.png"] == ["^_^", "looking at viewer", "solo"]

    again = run_cli("tag", root, "--model", model)
    assert again.stderr.splitlines()[-1] == "0 tagged, 4 already tagged, 1 failed"
    (root / "broken.jpg").unlink()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(root / "red.png")  # changed: tagged again
    changed = run_cli("tag", root, "--model", model)
    assert changed.returncode == 0, changed.stderr
    assert changed.stderr.splitlines()[-1] == "1 tagged, 3 already tagged, 0 failed"
    assert tagged(root)["red.png"][:2] == ["hatsune miku", "blue sky"]
    retag = run_cli("tag", root, "--model", model, "--retag")
    assert retag.stderr.splitlines()[-1] == "4 tagged, 0 already tagged, 0 failed"


def test_a_failing_image_with_a_control_character_in_its_name_is_one_line(tmp_path, model, run_cli):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "bad\nname\x1b[31m.png").write_bytes(b"not an image")
    result = run_cli("tag", root, "--model", model)
    lines = result.stderr.splitlines()
    assert lines[1].startswith('lora-curator: "bad\\nname\\x1b[31m.png": not an image')
    assert "\x1b" not in result.stderr
    assert lines[-1] == "0 tagged, 0 already tagged, 1 failed"


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, model, cli_main, monkeypatch):
    # A run this short prints no progress line; as if it were a long one, every step does.
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    root = make_pictures(tmp_path / "ds")
    code, out, err = cli_main("tag", root, "--model", model)
    assert code == 1 and out == ""  # one image is corrupt
    lines = err.splitlines()
    assert any(
        line.startswith("lora-curator: tagging 5/5 (") and line.endswith(" images/s, done)")
        for line in lines
    ), err
    assert lines[-1] == "4 tagged, 0 already tagged, 1 failed"


def test_progress_bar_on_a_terminal(tmp_path, model, isolated_config):
    root = make_pictures(tmp_path / "ds")
    env = dict(os.environ, XDG_CONFIG_HOME=str(isolated_config), COLUMNS="120")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tui", "tag", str(root), "--model", str(model)],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(24, 120),
    )
    out = child.read()
    child.close()
    assert "tagging" in out and "5/5" in out and "images/s" in out
    assert "4 tagged, 0 already tagged, 1 failed" in out


def test_a_hugging_face_repo_id_from_the_cache(tmp_path, model, run_cli):
    root = make_pictures(tmp_path / "ds")
    fake_hf_cache(tmp_path / "hub", "SmilingWolf/wd-vit-tagger-v3", model)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub")}
    result = run_cli("tag", root, "--model", "SmilingWolf/wd-vit-tagger-v3", env=env)
    assert result.stderr.splitlines()[-1] == "4 tagged, 0 already tagged, 1 failed"
    with ScoreStore.open_read(root) as store:
        assert [name for _, name in store.models()] == ["SmilingWolf/wd-vit-tagger-v3"]


def test_a_missing_model_is_one_line_and_writes_nothing(tmp_path, run_cli, tree_snapshot):
    root = make_pictures(tmp_path / "ds")
    before = tree_snapshot(root)
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    result = run_cli("tag", root, "--model", "SmilingWolf/wd-swinv2-tagger-v3", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "lora-curator: error: SmilingWolf/wd-swinv2-tagger-v3: not in the Hugging Face cache "
        f"({tmp_path / 'empty-cache'}); add --download to fetch it, or give the path of a "
        "folder holding model.onnx and selected_tags.csv\n"
    )
    assert tree_snapshot(root) == before


def test_without_onnxruntime_tag_exits_2_with_the_install_line(
    tmp_path, model, monkeypatch, capsys
):
    root = make_pictures(tmp_path / "ds")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert main(["tag", str(root), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lora-curator: error: tagging needs onnxruntime, which is not installed")
    assert "pip install 'lora-curator[tagger]'" in err
    assert "pip install 'lora-curator[tagger-gpu]'" in err
    assert not (root / STATE_DIR).exists()


def test_a_batch_size_below_one_is_a_usage_error(tmp_path, model, run_cli):
    root = make_pictures(tmp_path / "ds")
    result = run_cli("tag", root, "--model", model, "--batch-size", "0")
    assert result.returncode == 2
    assert "--batch-size: 0 must be at least 1" in result.stderr


def test_device_cuda_without_cuda_support_is_refused(tmp_path, model, run_cli):
    root = make_pictures(tmp_path / "ds")
    result = run_cli("tag", root, "--model", model, "--device", "cuda")
    assert result.returncode == 2
    assert "--device cuda: this onnxruntime has no CUDA support" in result.stderr
    assert not (root / STATE_DIR).exists()


def test_other_commands_never_load_numpy_or_onnxruntime(tmp_path, sample_copy):
    probe = (
        "import json, sys\nfrom tui.cli import main\n"
        "codes = [main(a) for a in json.loads(sys.argv[1])]\n"
        "print(json.dumps([codes, sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('numpy', 'onnxruntime'))]))\n"
    )
    commands = [["tags", str(sample_copy)], ["check", str(sample_copy), "--json"]]
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    codes, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes[0] == 0 and codes[1] in (0, 1), result.stderr
    assert loaded == []


IMAGES = 400


def test_resume_after_kill_9(tmp_path, model, isolated_config):
    root = tmp_path / "big"
    root.mkdir()
    rng = random.Random(3)
    for i in range(IMAGES):
        rgb = tuple(rng.randrange(256) for _ in range(3))
        # Noisy pictures decode slowly enough that the run is still going when killed.
        noise = Image.effect_noise((256, 256), 60).convert("RGB")
        Image.blend(Image.new("RGB", (256, 256), rgb), noise, 0.3).save(root / f"{i:04d}.png")
    env = dict(os.environ, XDG_CONFIG_HOME=str(isolated_config))
    cmd = [sys.executable, "-m", "tui", "tag", str(root), "--model", str(model)]
    child = subprocess.Popen(
        [*cmd, "--batch-size", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    db = scores_path(root)
    committed = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
                        committed = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
                except sqlite3.OperationalError:  # tables not created yet
                    committed = 0
                if committed >= 10:
                    break
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    with ScoreStore.open_read(root) as store:
        survived = len(store.tagged_images(store.latest_model()))
    assert 10 <= survived < IMAGES
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.splitlines()[-1] == (
        f"{IMAGES - survived} tagged, {survived} already tagged, 0 failed"
    )
    with ScoreStore.open_read(root) as store:
        assert len(store.tagged_images(store.latest_model())) == IMAGES
