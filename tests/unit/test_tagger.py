"""The tagger's engine: preprocessing as WD14 expects, the model's own input size and names,
labels converted as the parser converts tags, thresholds/MCut/rating, the provider choice and
report, the model lookup (folder, Hugging Face cache), and the compact scores store."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tagger_models import TEST_LABELS, build_test_model, expected_scores, fake_hf_cache
from tui.core.profile import ProfileError
from tui.core.scores import QUANT, ScoreStore, decode_pairs, encode_pairs, scores_path
from tui.core.tagger import (
    TaggerError,
    TaggerSettings,
    find_model,
    load_labels,
    mcut_threshold,
    select_tags,
    tagger_settings_from_dict,
    tagger_settings_to_dict,
)
from tui.core.tagger.images import ImageReadError, prepare, read_image
from tui.core.tagger.pipeline import open_tagger, plan_tagging
from tui.core.tagger.runtime import CPU, CUDA, choose_providers, describe_device

WHITE = [255.0, 255.0, 255.0]


# -- preprocessing -------------------------------------------------------------------------


def test_prepare_gives_bgr_float32_in_0_255():
    out = prepare(Image.new("RGB", (4, 4), (255, 128, 0)), 4, np)
    assert out.dtype == np.float32
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [0.0, 128.0, 255.0]  # B, G, R: no normalisation


def test_prepare_pads_to_a_centred_white_square():
    tall = Image.new("RGB", (2, 4), (255, 0, 0))
    out = prepare(tall, 4, np)
    for y in range(4):
        assert out[y, 0].tolist() == WHITE and out[y, 3].tolist() == WHITE
        assert out[y, 1].tolist() == [0.0, 0.0, 255.0] == out[y, 2].tolist()
    wide = prepare(Image.new("RGB", (4, 2), (0, 0, 255)), 4, np)
    assert wide[0, 1].tolist() == WHITE and wide[3, 2].tolist() == WHITE
    assert wide[1, 0].tolist() == [255.0, 0.0, 0.0] == wide[2, 3].tolist()


def test_prepare_composites_alpha_onto_white():
    image = Image.new("RGBA", (2, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red: white
    image.putpixel((1, 0), (255, 0, 0, 128))  # half red over white
    out = prepare(image, 2, np)
    # A 2×1 image pads to 2×2 with the image on row 0 ((2 - 1) // 2 == 0).
    assert out[0, 0].tolist() == WHITE
    b, g, r = out[0, 1].tolist()
    assert r == 255.0 and abs(b - 127) <= 1 and abs(g - 127) <= 1
    assert out[1, 0].tolist() == WHITE  # padding


def test_prepare_palette_transparency_is_white():
    image = Image.new("P", (2, 2), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    assert prepare(image, 2, np)[0, 0].tolist() == WHITE


def test_prepare_resizes_to_the_requested_size():
    out = prepare(Image.new("RGB", (100, 60), (10, 20, 30)), 16, np)
    assert out.shape == (16, 16, 3)
    assert out[8, 8].tolist() == [30.0, 20.0, 10.0]  # the middle is the picture
    assert out[0, 0].tolist() == WHITE  # the corner is the padding


def test_a_corrupt_file_and_a_fifo_are_named_not_fatal(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError, match=r"corrupt|Pillow"):
        read_image(bad)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(fifo)  # returns at once: opening a FIFO never waits for a writer


# -- the model: size and names read from it, scores stored ----------------------------------


def _dataset(root: Path, pictures: dict[str, Image.Image]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, picture in pictures.items():
        picture.save(root / name)
    return root


def test_input_size_and_names_come_from_the_model(tmp_path):
    model = build_test_model(tmp_path / "model", size=40)  # not 448
    tagger, labels = open_tagger(str(model), "cpu")
    assert tagger.size == 40
    assert (tagger.input_name, tagger.output_name) == ("input_1", "predictions_sigmoid")
    assert tagger.report.message == "running on CPU (--device cpu)"
    assert len(labels.labels) == len(TEST_LABELS)


def test_stored_scores_are_the_models_scores(tmp_path):
    model = build_test_model(tmp_path / "model", size=24)
    picture = Image.new("RGB", (30, 20), (200, 40, 90))
    root = _dataset(tmp_path / "ds", {"a.png": picture})
    tagger, labels = open_tagger(str(model), "cpu")
    with ScoreStore.open_for_tagging(root) as store:
        job, problems = plan_tagging(root, tagger, labels, store)
        assert (job.todo, problems) == (["a.png"], [])
        assert job.run(store) == (1, [])
    expected = expected_scores(prepare(picture, 24, np).mean(axis=(0, 1)).tolist())
    with ScoreStore.open_read(root) as store:
        got = {tag: score for tag, _, score in store.scores("a.png")}
    names = load_labels(model / "selected_tags.csv").labels
    want = {names[i].name: s for i, s in enumerate(expected) if s >= 0.05 or i < 4}
    assert got.keys() == want.keys()
    for tag, score in want.items():
        assert abs(got[tag] - score) < 1e-4, tag


def test_labels_are_converted_as_the_parser_converts_tags(tmp_path):
    model = build_test_model(tmp_path / "model", size=8)
    names = [lb.name for lb in load_labels(model / "selected_tags.csv").labels]
    assert "kaede (blue archive)" in names
    assert "looking at viewer" in names
    assert "^_^" in names  # an emoticon keeps its underscore
    raw = {lb.name: lb.raw for lb in load_labels(model / "selected_tags.csv").labels}
    assert raw["kaede (blue archive)"] == "kaede_(blue_archive)"  # for underscores = "keep"
    cats = {lb.name: lb.category for lb in load_labels(model / "selected_tags.csv").labels}
    assert (cats["general"], cats["blush"], cats["hatsune miku"]) == (9, 0, 4)


def test_a_bad_label_file_is_named(tmp_path):
    bad = tmp_path / "selected_tags.csv"
    bad.write_text("id,tag\n1,smile\n", encoding="utf-8")
    with pytest.raises(TaggerError, match=r"selected_tags\.csv: line 1 must be the header"):
        load_labels(bad)
    bad.write_text("tag_id,name,category,count\n1,smile,0,5\n2,blush,x,5\n", encoding="utf-8")
    with pytest.raises(TaggerError, match=r"selected_tags\.csv: line 3: category 'x'"):
        load_labels(bad)


# -- selection: thresholds, MCut, rating, character ---------------------------------------


RED = [
    ("kaede (blue archive)", 4, 0.9997),
    ("red background", 0, 0.9975),
    ("general", 9, 0.88),
    ("sensitive", 9, 0.73),
    ("^_^", 0, 0.55),
    ("other character", 4, 0.50),
    ("looking at viewer", 0, 0.40),
    ("solo", 0, 0.37),
    ("blush", 0, 0.30),
    ("questionable", 9, 0.018),
]


def test_fixed_thresholds_rating_and_order():
    assert select_tags(RED, TaggerSettings()) == [
        "kaede (blue archive)",
        "red background",
        "general",  # the top rating only
        "^_^",
        "looking at viewer",
        "solo",
    ]  # by descending score; blush (0.30) and other character (0.50 < 0.85) left out


def test_thresholds_move_tags_in_and_out():
    lower = TaggerSettings(general_threshold=0.3, character_threshold=0.5, rating=False)
    assert select_tags(RED, lower) == [
        "kaede (blue archive)",
        "red background",
        "^_^",
        "other character",
        "looking at viewer",
        "solo",
        "blush",  # at the threshold: kept
    ]
    higher = TaggerSettings(general_threshold=0.6, character_threshold=0.9999)
    assert select_tags(RED, higher) == ["red background", "general"]


def test_mcut_threshold_is_the_midpoint_of_the_largest_gap():
    assert mcut_threshold([0.9, 0.2, 0.8, 0.3]) == pytest.approx(0.55)
    assert mcut_threshold([0.6]) == 0.6
    assert mcut_threshold([]) == math.inf


def test_mcut_mode_per_image_and_the_character_floor():
    scores = [
        ("a", 0, 0.95),
        ("b", 0, 0.90),
        ("c", 0, 0.40),  # the largest general gap is 0.90 → 0.40
        ("d", 0, 0.35),
        ("chara", 4, 0.12),
        ("charb", 4, 0.06),  # character MCut 0.09, raised to 0.15: neither kept
        ("general", 9, 0.7),
    ]
    assert select_tags(scores, TaggerSettings(mode="mcut", rating=False)) == ["a", "b"]
    with_char = [*scores, ("charc", 4, 0.5)]
    assert select_tags(with_char, TaggerSettings(mode="mcut")) == [
        "a",
        "b",
        "general",
        "charc",
    ]


# -- the [tagger] table -------------------------------------------------------------------


def test_tagger_table_defaults_and_round_trip():
    assert tagger_settings_from_dict("p.toml", {}) == TaggerSettings()
    table = {
        "general_threshold": 0.3,
        "character_threshold": 1,
        "mode": "mcut",
        "rating": False,
        "source": "both",
    }
    settings = tagger_settings_from_dict("p.toml", table)
    assert settings.character_threshold == 1.0 and settings.mode == "mcut"
    assert tagger_settings_from_dict("p.toml", tagger_settings_to_dict(settings)) == settings


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"general_thresold": 0.3}, "unknown key tagger.general_thresold"),
        ({"general_threshold": math.nan}, "tagger.general_threshold = nan must be between 0"),
        ({"character_threshold": 1.5}, "tagger.character_threshold = 1.5 must be between"),
        ({"general_threshold": True}, "tagger.general_threshold must be a number"),
        ({"general_threshold": "0.3"}, "tagger.general_threshold must be a number"),
        ({"mode": "auto"}, "tagger.mode = 'auto' is not valid; use one of: fixed, mcut"),
        ({"source": "tags"}, "tagger.source = 'tags' is not valid"),
        ({"rating": "yes"}, "tagger.rating must be true or false"),
    ],
)
def test_tagger_table_errors_name_the_file_and_key(table, message):
    with pytest.raises(ProfileError) as caught:
        tagger_settings_from_dict("/lib/kaede.toml", table)
    assert str(caught.value).startswith("/lib/kaede.toml: ")
    assert message in str(caught.value)


# -- providers ------------------------------------------------------------------------------


def test_provider_choice():
    both = [CUDA, CPU]
    assert choose_providers("auto", both) == [CUDA, CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cpu", both) == [CPU]
    assert choose_providers("cuda", ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(TaggerError, match=r"no CUDA support.*tagger-gpu.*--device cpu"):
        choose_providers("cuda", [CPU])


def test_device_report_says_what_the_session_uses():
    assert describe_device("auto", [CUDA, CPU], [CUDA, CPU]).message == "running on CUDA"
    fell_back = describe_device("cuda", [CUDA, CPU], [CPU])
    assert fell_back.message.startswith("running on CPU (the CUDA provider did not load")
    assert fell_back.refused  # asked for CUDA, got the CPU: not silently
    auto = describe_device("auto", [CPU], [CPU])
    assert "no CUDA support" in auto.message and "tagger-gpu" in auto.message
    assert not auto.refused


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_session_that_silently_falls_back_is_reported(tmp_path, monkeypatch):
    # This onnxruntime has no CUDA: claim it has, and the session quietly runs on the CPU,
    # just as when the CUDA libraries fail to load.
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: None, raising=False)
    model = build_test_model(tmp_path / "model", size=8)
    tagger, _ = open_tagger(str(model), "cuda")
    assert tagger.report.message.startswith("running on CPU (the CUDA provider did not load")
    assert tagger.report.refused


# -- finding the model ----------------------------------------------------------------------


def test_a_model_folder_missing_a_file_is_named(tmp_path):
    model = build_test_model(tmp_path / "model", size=8)
    (model / "selected_tags.csv").unlink()
    with pytest.raises(TaggerError, match=r"model: not a tagger model folder: no selected_tags"):
        find_model(str(model))


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME", "HOME"])
def test_a_repo_id_is_found_in_the_hugging_face_cache(tmp_path, monkeypatch, variable):
    model = build_test_model(tmp_path / "model", size=8)
    for name in ("HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    where = {
        "HF_HUB_CACHE": tmp_path / "hub-cache",
        "HF_HOME": tmp_path / "hf-home" / "hub",
        "HOME": tmp_path / "home" / ".cache" / "huggingface" / "hub",
    }[variable]
    value = {"HF_HUB_CACHE": where, "HF_HOME": where.parent, "HOME": tmp_path / "home"}
    monkeypatch.setenv(variable, str(value[variable]))
    snapshot = fake_hf_cache(where, "SmilingWolf/wd-vit-tagger-v3", model)
    files = find_model("SmilingWolf/wd-vit-tagger-v3")
    assert files.name == "SmilingWolf/wd-vit-tagger-v3"
    assert files.onnx == snapshot / "model.onnx"
    assert files.onnx.read_bytes() == (model / "model.onnx").read_bytes()
    # The snapshot folder given as a path is stored under the repo id too.
    assert find_model(str(snapshot)).name == "SmilingWolf/wd-vit-tagger-v3"


def test_a_repo_missing_from_the_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(TaggerError) as caught:
        find_model("SmilingWolf/wd-eva02-large-tagger-v3")
    message = str(caught.value)
    assert "not in the Hugging Face cache" in message and str(tmp_path / "empty") in message
    assert "--download" in message and "\n" not in message
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(TaggerError, match="--download needs huggingface_hub: pip install"):
        find_model("SmilingWolf/wd-eva02-large-tagger-v3", download=True)


def test_a_path_that_is_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(TaggerError, match="no such model folder"):
        find_model(str(tmp_path / "nowhere" / "model"))


# -- the scores store -----------------------------------------------------------------------


@pytest.mark.parametrize("wide", [False, True])
def test_pairs_round_trip(wide):
    indexes = [0, 3, 70000 if wide else 65535]
    quantised = [QUANT, 1, 3277]
    blob = encode_pairs(indexes, quantised, wide)
    assert len(blob) == (6 if wide else 4) * 3
    assert decode_pairs(blob, wide) == [(0, 1.0), (3, 1 / QUANT), (indexes[2], 3277 / QUANT)]


def test_reading_scores_creates_nothing(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    assert ScoreStore.open_read(root) is None
    assert list(root.iterdir()) == []


def test_two_taggers_on_one_dataset_are_refused(tmp_path):
    from tui.core.scores import ScoreStoreError

    root = tmp_path / "ds"
    root.mkdir()
    with (
        ScoreStore.open_for_tagging(root),
        pytest.raises(ScoreStoreError, match="another `tag` is already tagging"),
    ):
        ScoreStore.open_for_tagging(root)
    ScoreStore.open_for_tagging(root).close()  # released on close
    assert scores_path(root).is_file()


_PROBE = """
import json, sys
import tui.core.tagger, tui.core.scores, tui.core.tagger.settings, tui.core.tagger.model
import tui.core.workspace, tui.core.checks
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "onnxruntime"))))
"""


def test_the_curator_never_imports_numpy_or_onnxruntime():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


def test_scores_come_from_the_latest_model_unless_another_is_named(tmp_path):
    from tui.core.scores import Label, ScoredImage

    root = tmp_path / "ds"
    root.mkdir()
    with ScoreStore.open_for_tagging(root) as store:
        old = store.register_model("old", "1" * 64, [Label("smile", 0), Label("general", 9)])
        new = store.register_model("new", "2" * 64, [Label("blush", 0), Label("explicit", 9)])
        pairs = encode_pairs([0, 1], [QUANT // 2, QUANT], False)
        store.write_batch(old, [ScoredImage("a.png", 10, 20, pairs)])
        store.write_batch(new, [ScoredImage("a.png", 10, 20, pairs)])
        store.write_batch(new, [ScoredImage("a.png", 11, 21, pairs)])  # replaced, not added
    with ScoreStore.open_read(root) as store:
        assert [name for _, name in store.models()] == ["new", "old"]
        assert store.scores("a.png") == [("explicit", 9, 1.0), ("blush", 0, (QUANT // 2) / QUANT)]
        assert [t for t, _, _ in store.scores("a.png", old)] == ["general", "smile"]
        assert store.tagged_images(new) == {"a.png": (11, 21)} == store.tagged_images("new")
        assert store.tagged_images() == store.tagged_images(new)  # the latest model
        assert [t for t, _, _ in store.scores("a.png", "old")] == ["general", "smile"]
        assert store.scores("b.png") == []


def test_any_decoder_failure_skips_the_image(tmp_path, monkeypatch):
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4)).save(path)

    def broken_decoder(*args, **kwargs):
        raise IndexError("tile out of range")  # what a decoder bug can raise

    monkeypatch.setattr(Image, "open", broken_decoder)
    with pytest.raises(ImageReadError, match=r"cannot decode \(IndexError: tile out of range"):
        read_image(path)
