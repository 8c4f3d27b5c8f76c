"""Tiny WD14-shaped ONNX models built with `onnx` for the tagger's tests and benchmark.

Same layout as the WD14 v3 models: one input `[batch, S, S, 3]` float32 NHWC (BGR, 0–255),
one output `[batch, N]` of sigmoid scores in `selected_tags.csv` order. The test model's score
for label j is `sigmoid(W[:, j] · m + b[j])`, where m is the image's per-channel mean in BGR
order divided by 255: different pictures get known, different tags."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (name as in selected_tags.csv, category, weights on the (B, G, R) means, bias)
TEST_LABELS: list[tuple[str, int, tuple[float, float, float], float]] = [
    ("general", 9, (0, 0, 0), 2.0),
    ("sensitive", 9, (0, 0, 4), -3.0),
    ("questionable", 9, (0, 0, 0), -4.0),
    ("explicit", 9, (0, 0, 0), -6.0),
    ("red_background", 0, (-8, -8, 8), -2.0),
    ("blue_sky", 0, (8, -8, -8), -2.0),
    ("green_grass", 0, (-8, 8, -8), -2.0),
    ("white_background", 0, (4, 4, 4), -10.0),
    ("^_^", 0, (0, 0, 0), 0.2),  # 0.55 everywhere: an emoticon keeps its underscore
    ("looking_at_viewer", 0, (0, 0, 0), math.log(0.4 / 0.6)),  # 0.40
    ("solo", 0, (0, 0, 0), math.log(0.37 / 0.63)),  # 0.37
    ("blush", 0, (0, 0, 0), math.log(0.30 / 0.70)),  # 0.30: a candidate below 0.35
    ("kaede_(blue_archive)", 4, (-8, -8, 8), 0.0),  # red pictures
    ("hatsune_miku", 4, (8, -8, -8), 0.0),  # blue pictures
    ("other_character", 4, (0, 0, 0), 0.0),  # 0.5: under 0.85, over the MCut floor 0.15
] + [(f"filler_{i:02d}", 0, (0, 0, 0), -5.0) for i in range(25)]  # 0.0067: below the floor


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def expected_scores(bgr_means: Sequence[float]) -> list[float]:
    """The test model's scores for an image whose prepared BGR channel means are these
    (0–255), computed in Python."""
    m = [c / 255.0 for c in bgr_means]
    return [
        sigmoid(sum(w * x for w, x in zip(ws, m, strict=True)) + b) for _, _, ws, b in TEST_LABELS
    ]


def write_labels(folder: Path, labels: Sequence[tuple[str, int]]) -> Path:
    path = folder / "selected_tags.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["tag_id", "name", "category", "count"])
        for i, (name, category) in enumerate(labels):
            out.writerow([1000 + i, name, category, 100])
    return path


def _save(model: onnx.ModelProto, folder: Path) -> Path:
    model.opset_import[0].version = 17
    model.ir_version = 8  # what onnxruntime >= 1.17 reads
    onnx.checker.check_model(model)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


def build_test_model(folder: Path, size: int = 64) -> Path:
    """The scoring model above, input `size`×`size`, with its `selected_tags.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.array([ws for _, _, ws, _ in TEST_LABELS], dtype=np.float32).T / 255.0
    bias = np.array([b for *_, b in TEST_LABELS], dtype=np.float32)
    n = len(TEST_LABELS)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1"], ["means"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["means", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch", n])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    # ReduceMean takes `axes` as an attribute up to opset 17.
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder)
    write_labels(folder, [(name, cat) for name, cat, _, _ in TEST_LABELS])
    return folder


def build_bench_model(folder: Path, size: int = 448, labels: int = 2000, seed: int = 0) -> Path:
    """A model whose inference costs something on a CPU: three strided 3×3 convolutions,
    global pooling and a dense layer to `labels` sigmoid scores (about 100 above 0.05)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chans = [3, 32, 64, 64]
    inits = []
    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    nodes.append(helper.make_node("Mul", ["x0", "scale"], ["x0s"]))
    inits.append(numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"))
    prev = "x0s"
    for i in range(3):
        w = rng.normal(0, 0.2, (chans[i + 1], chans[i], 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(
            helper.make_node(
                "Conv",
                [prev, f"w{i}"],
                [f"c{i}"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1] * 4,
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    dense = rng.normal(0, 0.05, (chans[-1], labels)).astype(np.float32)
    # Most labels far below the floor, a twentieth above it: like a real tagger's output.
    bias = np.where(rng.random(labels) < 0.05, 0.0, -6.0).astype(np.float32)
    inits += [numpy_helper.from_array(dense, "dense"), numpy_helper.from_array(bias, "bias")]
    nodes += [
        helper.make_node("MatMul", ["flat", "dense"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bench_wd14",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", labels])],
        inits,
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder)
    cats = [(f"rating_{i}", 9) for i in range(4)]
    cats += [(f"tag_{i:05d}", 4 if i % 50 == 0 else 0) for i in range(labels - 4)]
    write_labels(folder, cats)
    return folder


def fake_hf_cache(cache: Path, repo_id: str, model_folder: Path, revision: str = "a" * 40) -> Path:
    """A Hugging Face cache holding `repo_id` as the Hub lays it out: blobs, a snapshot of
    symlinks, and `refs/main`."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="ascii")
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("model.onnx", "selected_tags.csv")):
        blob = repo / "blobs" / f"{i:064x}"
        blob.write_bytes((model_folder / name).read_bytes())
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob.name))
    return snapshot
