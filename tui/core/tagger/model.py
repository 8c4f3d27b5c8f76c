"""Finding a tagger model (a folder, or a Hugging Face repo in the local cache) and reading
its label list. No numpy, no onnxruntime here."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tui.core.captions import normalize_tag
from tui.core.scores import Label

MODEL_FILE = "model.onnx"
LABELS_FILE = "selected_tags.csv"
LABELS_HEADER = ("tag_id", "name", "category", "count")
# OWNER/NAME as the Hub allows it (letters, digits, '-', '_', '.').
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


class TaggerError(Exception):
    """A problem the user can act on (missing model, bad label file, missing dependency):
    the message names the file or thing and what to do."""


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's two files are, and the name its scores are stored under."""

    name: str  # the repo id, or the model folder's name
    onnx: Path
    labels: Path


@dataclass(frozen=True)
class LabelList:
    """The labels of a model, in output order, converted as the caption parser converts tags;
    `sha` identifies the list (two models of one name with other labels are two models)."""

    labels: tuple[Label, ...]
    sha: str


def hf_hub_cache() -> Path:
    """The local Hugging Face cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    `~/.cache/huggingface/hub` (the order huggingface_hub itself uses)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def looks_like_repo_id(model: str) -> bool:
    """Whether `model` reads as OWNER/NAME rather than a path."""
    return bool(_REPO_ID.match(model)) and not model.startswith((".", "~"))


def _cached_snapshot(
    cache: Path, repo_id: str, files: tuple[str, ...] = (MODEL_FILE, LABELS_FILE)
) -> Path | None:
    """The snapshot folder of `repo_id` in the cache holding `files` (a tagger's two by
    default): the one `refs/main` names when it has them, else any snapshot that has them
    (newest first)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    candidates: list[Path] = []
    try:
        ref = (repo_dir / "refs" / "main").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        ref = ""
    if _REVISION.match(ref):
        candidates.append(snapshots / ref)
    try:
        others = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        others = []
    candidates += [p for p in others if p not in candidates]
    for snapshot in candidates:
        if all((snapshot / name).is_file() for name in files):
            return snapshot
    return None


cached_snapshot = _cached_snapshot


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise TaggerError(
            "--download needs huggingface_hub: pip install huggingface_hub "
            "(or download the model folder yourself and give its path)"
        ) from None
    try:
        for name in (LABELS_FILE, MODEL_FILE):
            path = Path(hf_hub_download(repo_id, name, cache_dir=str(hf_hub_cache())))
    except Exception as exc:  # network, auth, missing repo: all one message for the user
        raise TaggerError(f"{repo_id}: download failed: {exc}") from None
    return path.parent


def find_model(model: str, download: bool = False) -> ModelFiles:
    """Resolve `--model`: a folder holding `model.onnx` and `selected_tags.csv`, or a Hugging
    Face repo id in the local cache (downloaded only when `download`)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        missing = [n for n in (MODEL_FILE, LABELS_FILE) if not (folder / n).is_file()]
        if missing:
            raise TaggerError(
                f"{folder}: not a tagger model folder: no {' and no '.join(missing)} in it "
                f"(a WD14 model folder holds {MODEL_FILE} and {LABELS_FILE})"
            )
        name = folder.resolve().name
        # A snapshot folder of the HF cache is named by its revision: store the repo id.
        parent = folder.resolve().parent.parent.name
        if parent.startswith("models--") and folder.resolve().parent.name == "snapshots":
            name = parent[len("models--") :].replace("--", "/", 1)
        return ModelFiles(name, folder / MODEL_FILE, folder / LABELS_FILE)
    if folder.exists():
        raise TaggerError(f"{folder}: is a file; give the folder holding {MODEL_FILE}")
    if not looks_like_repo_id(model):
        raise TaggerError(
            f"{model}: no such model folder; give a folder holding {MODEL_FILE} and "
            f"{LABELS_FILE}, or a Hugging Face repo id such as SmilingWolf/wd-vit-tagger-v3"
        )
    cache = hf_hub_cache()
    snapshot = _cached_snapshot(cache, model)
    if snapshot is None and download:
        snapshot = _download(model)
    if snapshot is None:
        raise TaggerError(
            f"{model}: not in the Hugging Face cache ({cache}); add --download to fetch it, "
            f"or give the path of a folder holding {MODEL_FILE} and {LABELS_FILE}"
        )
    return ModelFiles(model, snapshot / MODEL_FILE, snapshot / LABELS_FILE)


def load_labels(path: Path) -> LabelList:
    """Read `selected_tags.csv` (header `tag_id,name,category,count`); names converted as the
    caption parser converts tags (underscores → spaces except emoticons, `\\(` unescaped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaggerError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TaggerError(f"{path}: not UTF-8 text; is this a selected_tags.csv?") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = tuple(h.strip() for h in next(rows, []))
    if header[:3] != LABELS_HEADER[:3]:
        raise TaggerError(
            f"{path}: line 1 must be the header {','.join(LABELS_HEADER)}, not {','.join(header)!r}"
        )
    labels: list[Label] = []
    for line_no, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < 3:
            raise TaggerError(f"{path}: line {line_no}: expected tag_id,name,category,count")
        try:
            category = int(row[2])
        except ValueError:
            raise TaggerError(
                f"{path}: line {line_no}: category {row[2]!r} is not a number "
                "(9 rating, 0 general, 4 character)"
            ) from None
        name = normalize_tag(row[1])
        if not name:
            raise TaggerError(f"{path}: line {line_no}: empty tag name")
        labels.append(Label(name, category, row[1].strip()))
    if not labels:
        raise TaggerError(f"{path}: no labels after the header")
    return LabelList(tuple(labels), hashlib.sha256(data).hexdigest())
