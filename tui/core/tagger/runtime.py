"""onnxruntime: importing it (an optional dependency), choosing the execution providers for
`--device`, opening the model, and saying which device the session *actually* uses
(onnxruntime falls back to CPU silently when CUDA cannot load)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tui.core.tagger.model import ModelFiles, TaggerError

DEVICES = ("auto", "cuda", "cpu")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
INSTALL_LINE = (
    "pip install 'lora-curator[tagger]' (CPU), or pip install 'lora-curator[tagger-gpu]' "
    "(NVIDIA GPU) — one or the other, never both"
)


def import_runtime() -> tuple[ModuleType, ModuleType]:
    """`(onnxruntime, numpy)`, or a `TaggerError` with the install line."""
    try:
        import numpy
        import onnxruntime
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "onnxruntime"
        raise TaggerError(
            f"tagging needs {missing}, which is not installed: {INSTALL_LINE}"
        ) from None
    return onnxruntime, numpy


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """The providers to ask onnxruntime for, given `--device` and what this onnxruntime
    offers (`onnxruntime.get_available_providers()`): CUDA first when asked for or, with
    `auto`, when present; CPU always last."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise TaggerError(
            "--device cuda: this onnxruntime has no CUDA support (it offers "
            f"{', '.join(available) or 'nothing'}); pip uninstall onnxruntime onnxruntime-gpu, "
            "then pip install 'lora-curator[tagger-gpu]' — or use --device cpu"
        )
    return [CPU]


@dataclass(frozen=True)
class DeviceReport:
    """What the session runs on, as one line for the user; `refused` when the user asked
    for CUDA and got the CPU (tagging should not silently take 50 times longer)."""

    message: str
    on_cuda: bool
    refused: bool


def describe_device(device: str, available: Sequence[str], used: Sequence[str]) -> DeviceReport:
    """The report for a session whose providers are `used` (`session.get_providers()`)."""
    if used and used[0] == CUDA:
        return DeviceReport("running on CUDA", True, False)
    if device == "cpu":
        why = "--device cpu"
    elif CUDA not in available:
        why = (
            "this onnxruntime has no CUDA support; for the GPU: "
            "pip install 'lora-curator[tagger-gpu]'"
        )
    else:
        why = (
            "the CUDA provider did not load: onnxruntime's messages above name the missing "
            "library; onnxruntime-gpu 1.19–1.26 needs CUDA 12 and cuDNN 9, 1.27+ CUDA 13"
        )
    return DeviceReport(f"running on CPU ({why})", False, device == "cuda")


@dataclass
class TaggerSession:
    """An open model: its session, input/output names and input size read from the model."""

    session: Any
    input_name: str
    output_name: str
    size: int
    report: DeviceReport
    files: ModelFiles

    def run(self, batch: Any) -> Any:
        """Scores `[batch, N]` for an NHWC float32 batch."""
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def _input_size(files: ModelFiles, shape: Sequence[Any]) -> int:
    if (
        len(shape) == 4
        and shape[3] == 3
        and isinstance(shape[1], int)
        and shape[1] == shape[2]
        and shape[1] > 0
    ):
        return int(shape[1])
    raise TaggerError(
        f"{files.onnx}: input shape {list(shape)} is not a WD14 tagger's "
        "[batch, size, size, 3] (NHWC, square, fixed size)"
    )


def open_session(
    files: ModelFiles, device: str = "auto", intra_op_threads: int | None = None
) -> TaggerSession:
    """Load the model for `device`; a `TaggerError` when it cannot be used."""
    ort, _ = import_runtime()
    available = list(ort.get_available_providers())
    providers = choose_providers(device, available)
    if CUDA in providers and hasattr(ort, "preload_dlls"):
        # Finds CUDA/cuDNN installed as pip wheels (nvidia-*) or with torch (1.21+).
        with contextlib.suppress(Exception):  # best effort; the report says what happened
            ort.preload_dlls()
    options = ort.SessionOptions()
    # Idle inference threads spin by default, taking the cores the decode threads need
    # between batches; without spinning, decoding overlaps inference.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    try:
        session = ort.InferenceSession(str(files.onnx), options, providers=providers)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaggerError(f"{files.onnx}: onnxruntime cannot load this model: {first}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise TaggerError(f"{files.onnx}: expected one image input and a scores output")
    size = _input_size(files, inputs[0].shape)
    report = describe_device(device, available, session.get_providers())
    return TaggerSession(session, inputs[0].name, outputs[0].name, size, report, files)
