"""Hand-off to the trainers: a dataset's folders as kohya sd-scripts, OneTrainer and
ai-toolkit configure them.

Everything is computed from plain inputs: the dataset root, its images (relative paths), the
triggers that lead each folder's captions and the caption format. One `Subset` per folder that
directly holds images; kohya and OneTrainer read a folder without its sub-folders, so nested
folders are subsets of their own. Files are rendered as text; writing them is the caller's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from tui.core.captions import format_caption
from tui.core.trainers import AI_TOOLKIT, KOHYA, ONETRAINER, repeats_prefix, rules_for

TRAINERS = (KOHYA, ONETRAINER, AI_TOOLKIT)
DEFAULT_RESOLUTION = 1024
MIN_RESOLUTION, MAX_RESOLUTION = 64, 8192
# kohya asserts min_bucket_reso <= resolution <= max_bucket_reso; its defaults (256, 1024)
# fail a --resolution above 1024, so both are written.
_MIN_BUCKET = 256
_BUCKET_STEP = 64


class ExportError(Exception):
    """The dataset cannot be exported as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Subset:
    """One folder that directly holds images, as a trainer's subset (or concept).

    `folder` is relative to the dataset root with '/' separators ("" = the root itself);
    `triggers` lead every caption of the folder, in order (today the profile's trigger;
    with concepts, the character's trigger then the folder's concept trigger)."""

    folder: str
    images: tuple[str, ...]
    triggers: tuple[str, ...] = ()
    caption_extension: str = ".txt"
    repeats: int = 1

    @property
    def image_count(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class ExportPlan:
    """What an export needs: the dataset root (absolute), its subsets, the training
    resolution and how captions join their tags (for the trigger prefix)."""

    root: Path
    subsets: tuple[Subset, ...]
    resolution: int = DEFAULT_RESOLUTION
    separator: str = ", "
    escape_parentheses: bool = False

    def image_dir(self, subset: Subset) -> str:
        """The folder as an absolute path: a trainer resolves a relative one against its own
        working directory, not the config file's."""
        path = self.root / PurePosixPath(subset.folder) if subset.folder else self.root
        return str(path)

    def name(self, subset: Subset) -> str:
        return subset.folder.rsplit("/", 1)[-1] if subset.folder else self.root.name

    def class_tokens(self, subset: Subset) -> str:
        """The triggers as they lead the subset's captions ("" without a trigger)."""
        return trigger_prefix(subset.triggers, self.separator, self.escape_parentheses)

    def keep_tokens(self, subset: Subset) -> int:
        """How many comma-separated tags the triggers make at the head of each caption."""
        return keep_token_count(self.class_tokens(subset), self.separator)


def trigger_prefix(triggers: Sequence[str], separator: str = ", ", escape: bool = False) -> str:
    """The triggers joined as the rendered caption writes them ("" when there are none)."""
    kept = [t for t in triggers if t]
    if not kept:
        return ""
    return format_caption(kept, separator, escape).rstrip("\n")


def keep_token_count(prefix: str, separator: str = ", ") -> int:
    """kohya's keep_tokens for a caption that starts with `prefix`: trainers split on every
    comma, so a trigger `kaede, blue archive` is two tokens. 0 without a prefix, or when the
    captions' separator has no comma (the trainers would see one long tag)."""
    if not prefix or "," not in separator:
        return 0
    return prefix.count(",") + 1


def check_resolution(value: int) -> int:
    """The resolution, or an `ExportError` saying which range trainers accept."""
    if not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise ExportError(
            f"resolution {value}: give a side length in pixels between {MIN_RESOLUTION} and "
            f"{MAX_RESOLUTION} (e.g. 512 for SD 1.5, 1024 for SDXL and Flux)"
        )
    return value


def folder_repeats(folder: str) -> int:
    """The repeats of a folder: its own `N_` prefix, else the nearest enclosing folder's
    (`10_school/extra` is part of the school images), else 1."""
    for part in reversed(folder.split("/") if folder else []):
        n = repeats_prefix(part)
        if n is not None:
            return n
    return 1


def build_subsets(
    images: Iterable[str],
    caption_extension: str = ".txt",
    triggers: Sequence[str] = (),
    folder_triggers: Mapping[str, Sequence[str]] | Callable[[str], Sequence[str]] | None = None,
) -> tuple[Subset, ...]:
    """One subset per folder that directly holds images, sorted by folder.

    `triggers` lead every folder's captions unless `folder_triggers` (folder → triggers, a
    mapping or a function) names the folder. Repeats: see `folder_repeats`."""
    by_folder: dict[str, list[str]] = {}
    for image in images:
        folder = image.rsplit("/", 1)[0] if "/" in image else ""
        by_folder.setdefault(folder, []).append(image)
    out = []
    for folder in sorted(by_folder):
        lead: Sequence[str] = triggers
        if callable(folder_triggers):
            lead = folder_triggers(folder)
        elif folder_triggers is not None and folder in folder_triggers:
            lead = folder_triggers[folder]
        out.append(
            Subset(
                folder=folder,
                images=tuple(sorted(by_folder[folder])),
                triggers=tuple(t for t in lead if t),
                caption_extension=caption_extension,
                repeats=folder_repeats(folder),
            )
        )
    return tuple(out)


# ---- quoting -------------------------------------------------------------------------------

# Escaped in every string we write: controls (C0, DEL, C1: a terminal acts on them), the line
# and paragraph separators and the BOM (YAML breaks lines on them), and the quote itself.
_NEEDS_ESCAPE = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff"\\\\]')
_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def quote(text: str) -> str:
    """`text` as a double-quoted string that TOML and YAML both read back exactly: their
    shared escapes (`\\"`, `\\\\`, `\\n`, ..., `\\uXXXX`), other characters as they are."""
    if _SURROGATE.search(text):
        raise ExportError(
            f"{text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')!r}: "
            "this name is not valid UTF-8, which no trainer config can hold; rename it"
        )

    def one(match: re.Match[str]) -> str:
        ch = match.group()
        return _SHORT.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _NEEDS_ESCAPE.sub(one, text) + '"'


# ---- the trainers' files -------------------------------------------------------------------


def _readable(plan: ExportPlan, trainer: str) -> list[Subset]:
    """The subsets holding at least one image this trainer's folder scan reads, with only
    those images."""
    rules = rules_for(trainer)
    kept = []
    for s in plan.subsets:
        read = tuple(i for i in s.images if rules.reads_image(i))
        if read:
            kept.append(replace(s, images=read))
    if not kept:
        raise ExportError(
            f"{plan.root}: {rules.label} reads none of its images (see `lora-curator check`); "
            "nothing to export"
        )
    return kept


def _bucket_range(resolution: int) -> tuple[int, int]:
    low = min(_MIN_BUCKET, resolution - resolution % _BUCKET_STEP or _BUCKET_STEP)
    high = 2 * resolution
    high += -high % _BUCKET_STEP
    return low, high


def render_kohya(plan: ExportPlan) -> str:
    """A kohya sd-scripts dataset config (`--dataset_config FILE.toml`) its schema accepts:
    `[general]`, one `[[datasets]]` (resolution and buckets), one `[[datasets.subsets]]` per
    folder (image_dir, repeats, caption extension, the triggers pinned first)."""
    subsets = _readable(plan, KOHYA)
    low, high = _bucket_range(check_resolution(plan.resolution))
    lines = [
        "# kohya sd-scripts dataset config, written by lora-curator.",
        "# Train with: --dataset_config THIS_FILE (model, output and network options stay on",
        "# the command line; this file takes the place of --train_data_dir).",
        "",
        "[general]",
        "enable_bucket = true",
        "",
        "[[datasets]]",
        f"resolution = {plan.resolution}",
        "batch_size = 1",
        f"min_bucket_reso = {low}",
        f"max_bucket_reso = {high}",
    ]
    for s in subsets:
        prefix = plan.class_tokens(s)
        keep = plan.keep_tokens(s)
        lines += [
            "",
            f"  # {s.image_count} image(s)",
            "  [[datasets.subsets]]",
            f"  image_dir = {quote(plan.image_dir(s))}",
            f"  num_repeats = {s.repeats}",
            # Always: kohya's default is '.caption', and without one it trains every image on
            # class_tokens alone, silently.
            f"  caption_extension = {quote(s.caption_extension)}",
        ]
        if keep:
            lines += ["  shuffle_caption = true", f"  keep_tokens = {keep}"]
        if prefix:
            lines.append(f"  class_tokens = {quote(prefix)}")
    return "\n".join(lines) + "\n"


def onetrainer_concepts(plan: ExportPlan) -> list[dict[str, object]]:
    """OneTrainer's concepts (the list its concepts JSON file holds), one per folder."""
    concepts: list[dict[str, object]] = []
    for s in _readable(plan, ONETRAINER):
        keep = plan.keep_tokens(s)
        text: dict[str, object] = {
            "prompt_source": "sample",  # each image's own <stem>.txt
            "prompt_path": "",
            "enable_tag_shuffling": bool(keep),
            "tag_delimiter": ",",
            "keep_tags_count": keep or 1,
        }
        concepts.append(
            {
                "__version": 2,
                "name": plan.name(s),
                "path": plan.image_dir(s),
                "enabled": True,
                "type": "STANDARD",
                "include_subdirectories": False,
                "image_variations": 1,
                "text_variations": 1,
                "balancing": float(s.repeats),
                "balancing_strategy": "REPEATS",
                "loss_weight": 1.0,
                "text": text,
            }
        )
    return concepts


def render_onetrainer(plan: ExportPlan) -> str:
    """OneTrainer's concepts file (JSON). ASCII only: OneTrainer opens it in the platform's
    default encoding, which is not UTF-8 everywhere."""
    for s in plan.subsets:
        quote(plan.image_dir(s))  # refuses a name that is not valid UTF-8, as TOML and YAML do
    return json.dumps(onetrainer_concepts(plan), indent=2, ensure_ascii=True) + "\n"


def render_ai_toolkit(plan: ExportPlan) -> str:
    """The `datasets:` block of an ai-toolkit training config (YAML), one entry per folder."""
    subsets = _readable(plan, AI_TOOLKIT)
    check_resolution(plan.resolution)
    lines = [
        "# ai-toolkit: the datasets block of a training config, written by lora-curator.",
        "# Put it in place of `datasets:` under config.process[0], indented to match.",
        "datasets:",
    ]
    for s in subsets:
        prefix = plan.class_tokens(s)
        keep = plan.keep_tokens(s)
        lines += [
            f"  # {s.image_count} image(s)",
            f"  - folder_path: {quote(plan.image_dir(s))}",
            f"    caption_ext: {quote(s.caption_extension)}",
            f"    num_repeats: {s.repeats}",
            f"    resolution: {plan.resolution}",
            # ai-toolkit shuffles every tag, the triggers too: keep the rendered order.
            "    shuffle_tokens: false",
        ]
        if prefix:
            # Prepended (with a space) only to a caption that lacks it: a missing caption.
            lines.append(f"    trigger_word: {quote(prefix)}")
        if keep:
            lines.append(f"    keep_tokens: {keep}")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[ExportPlan], str]] = {
    KOHYA: render_kohya,
    ONETRAINER: render_onetrainer,
    AI_TOOLKIT: render_ai_toolkit,
}


def render_export(trainer: str, plan: ExportPlan) -> str:
    """The file `trainer` reads for this plan; an `ExportError` when it cannot be written."""
    try:
        renderer = RENDERERS[trainer]
    except KeyError:
        raise ExportError(
            f"unknown trainer {trainer!r}; use one of {', '.join(TRAINERS)}"
        ) from None
    return renderer(plan)
