"""What the trainers will not see: our files as each trainer's reader takes them.

Every function here works on plain inputs (image paths relative to the dataset, the caption
extension, rendered captions, triggers), so `check`, `export` and the tests can all use it.
The trainers' reading rules are data, in ``tui/core/data/trainers.toml``.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA_PACKAGE = "tui.core.data"
DATA_FILE = "trainers.toml"

# The trainers a finding can name ("all": every trainer reads it this way).
KOHYA, ONETRAINER, AI_TOOLKIT, SIMPLETUNER = "kohya", "onetrainer", "ai-toolkit", "simpletuner"

# kohya's folder mode (--train_data_dir) reads DATASET/<N>_<name>/ folders only.
_REPEATS = re.compile(r"^0*([1-9][0-9]*)_")
# `(a, b:0.8)`: a weighted tag; group 1 the inside, group 2 the weight.
_WEIGHTED = re.compile(r"^\((.*):\s*(-?[0-9.]+)\s*\)$", re.DOTALL)


@dataclass(frozen=True)
class TrainerRules:
    """How one trainer finds images and captions (one table of trainers.toml)."""

    name: str
    label: str
    image_extensions: frozenset[str]  # empty: its image loading is not modelled
    exact_case: bool
    recursive: bool
    caption_extensions: tuple[str, ...]  # ("any",): whatever it is told
    caption_fixed: bool
    empty_caption_stops: bool
    schema: Mapping[str, Mapping[str, str]]
    required: Mapping[str, tuple[str, ...]]

    def reads_image(self, path: str) -> bool:
        """Whether this trainer's folder scan picks up a file of this name (its extension)."""
        name = path.rsplit("/", 1)[-1]
        dot = name.rfind(".")
        if dot <= 0:
            return False
        ext = name[dot:]
        return (ext if self.exact_case else ext.lower()) in self.image_extensions

    def reads_caption_extension(self, extension: str) -> bool:
        """Whether this trainer can read caption files with this extension."""
        return "any" in self.caption_extensions or extension in self.caption_extensions


@functools.lru_cache(maxsize=1)
def load_rules() -> dict[str, TrainerRules]:
    """Every trainer's rules, from the package data (cached)."""
    text = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    rules: dict[str, TrainerRules] = {}
    for name, table in data.items():
        exact = bool(table.get("extensions_exact_case", False))
        exts = table.get("image_extensions", [])
        rules[name] = TrainerRules(
            name=name,
            label=table["label"],
            image_extensions=frozenset(e if exact else e.lower() for e in exts),
            exact_case=exact,
            recursive=bool(table.get("recursive", False)),
            caption_extensions=tuple(table.get("caption_extensions", ["any"])),
            caption_fixed=bool(table.get("caption_fixed", False)),
            empty_caption_stops=bool(table.get("empty_caption_stops", False)),
            schema=table.get("schema", {}),
            required={k: tuple(v) for k, v in table.get("required", {}).items()},
        )
    return rules


def rules_for(trainer: str) -> TrainerRules:
    """One trainer's rules; `KeyError` for a name trainers.toml does not know."""
    return load_rules()[trainer]


@dataclass(frozen=True)
class TrainerFinding:
    """Something a trainer will read differently from what the curator shows.

    ``trainer`` is the trainer concerned (``"all"``: every one). ``replacement`` is an offered
    fix for ``tag`` (the tags to write instead), empty when there is none."""

    kind: str
    severity: str  # "problem" | "advice"
    message: str
    images: tuple[str, ...] = ()
    trainer: str = "all"
    tag: str = ""
    replacement: tuple[str, ...] = ()


def repeats_prefix(name: str) -> int | None:
    """The repeats a kohya folder name gives (`10_kaede` → 10); None without an `N_` prefix
    (and for `0_`, which would train nothing)."""
    match = _REPEATS.match(name)
    return int(match.group(1)) if match else None


def repeats_of(folder: str) -> int:
    """The repeats of a folder's own name (its last part): its `N_` prefix, else 1."""
    return repeats_prefix(folder.rstrip("/").rsplit("/", 1)[-1]) or 1


def _folder_of(image: str) -> str:
    return image.rsplit("/", 1)[0] if "/" in image else ""


def unread_images(images: Iterable[str]) -> list[TrainerFinding]:
    """Images a trainer's folder scan skips for their extension (`.Png` for kohya, `.gif`
    for every trainer, `.tif` for kohya and ai-toolkit), one finding per trainer."""
    images = sorted(images)
    out: list[TrainerFinding] = []
    rules = [r for r in load_rules().values() if r.image_extensions]
    never = [i for i in images if not any(r.reads_image(i) for r in rules)]
    if never:
        out.append(
            TrainerFinding(
                "unread-image",
                "problem",
                f"{len(never)} image(s) no trainer reads (their extension): convert them to "
                ".png or .jpg, or they train nothing",
                tuple(never),
                "all",
            )
        )
    skip = set(never)
    for r in rules:
        missed = [i for i in images if i not in skip and not r.reads_image(i)]
        if not missed:
            continue
        listed = ", ".join(sorted(e for e in r.image_extensions if e.islower()))
        case = " in lower or upper case (not '.Png')" if r.exact_case else ""
        how = f"it reads only {listed}{case}"
        out.append(
            TrainerFinding(
                "unread-image",
                "problem",
                f"{r.label} never reads {len(missed)} image(s): {how}; rename or convert them",
                tuple(missed),
                r.name,
            )
        )
    return out


def kohya_folder_mode(images: Iterable[str]) -> TrainerFinding | None:
    """Images kohya's folder mode (`--train_data_dir DATASET`) never reads: it takes only
    the images directly inside `DATASET/<N>_<name>/`, not the root's nor deeper ones."""
    missed = []
    for image in sorted(images):
        parts = image.split("/")
        if len(parts) != 2 or not _REPEATS.match(parts[0]):
            missed.append(image)
    if not missed:
        return None
    return TrainerFinding(
        "kohya-folder-mode",
        "advice",
        f"kohya's folder mode (--train_data_dir) never reads {len(missed)} image(s): only "
        "images directly inside DATASET/<N>_<name>/ folders are read (none nested below "
        "them); `lora-curator export kohya` writes a subset for every folder instead",
        tuple(missed),
        KOHYA,
    )


def recursive_overlap(images: Iterable[str]) -> TrainerFinding | None:
    """Images ai-toolkit reads twice when each image folder is one of its datasets: it reads
    a folder recursively, so an image folder below another one trains in both entries."""
    images = list(images)
    folders = {_folder_of(i) for i in images}
    nested = {
        f for f in folders if any(g != f and (g == "" or f.startswith(g + "/")) for g in folders)
    }
    twice = sorted(i for i in images if _folder_of(i) in nested)
    if not twice:
        return None
    return TrainerFinding(
        "read-twice",
        "advice",
        f"ai-toolkit reads folders recursively: {len(twice)} image(s) in a folder below "
        "another image folder train in both datasets (twice as often, with the outer "
        "folder's settings too); move them beside it instead of below it",
        tuple(twice),
        AI_TOOLKIT,
    )


def caption_extension_unread(extension: str, images: Sequence[str]) -> list[TrainerFinding]:
    """A caption extension a trainer cannot be told to read (OneTrainer and SimpleTuner
    read `.txt` only): there, every image trains without its caption."""
    out: list[TrainerFinding] = []
    for r in load_rules().values():
        if r.caption_fixed and not r.reads_caption_extension(extension):
            out.append(
                TrainerFinding(
                    "caption-extension",
                    "problem",
                    f"{r.label} reads only {', '.join(r.caption_extensions)} caption files: "
                    f"with {extension!r} every image trains without its caption there; "
                    'set [caption] extension = ".txt" in the profile',
                    tuple(images),
                    r.name,
                )
            )
    return out


def split_weighted_tag(tag: str) -> tuple[str, ...]:
    """The tags to write instead of a weighted tag holding commas: `(red eyes, glowing:0.8)`
    → `(red eyes:0.8)`, `(glowing:0.8)`; () when `tag` is not such a tag."""
    match = _WEIGHTED.match(tag.strip())
    if not match or "," not in match.group(1):
        return ()
    inner, weight = match.groups()
    parts = [p.strip() for p in inner.split(",")]
    return tuple(f"({p}:{weight})" for p in parts if p)


def _caption_tags(caption: str) -> list[str]:
    """The tags of a rendered caption, a weighted tag with a comma kept whole (as we wrote
    it; the trainers then split it)."""
    from tui.core.captions import parse_tags

    return list(parse_tags(caption.rstrip("\n"), underscores="keep"))


def weighted_tags_with_commas(captions: Mapping[str, str]) -> list[TrainerFinding]:
    """Weighted tags with a comma inside, in the rendered captions (image → caption): every
    trainer splits them on the comma, breaking the weight; each finding offers the split."""
    where: dict[str, list[str]] = {}
    for image, caption in captions.items():
        if "(" not in caption or "," not in caption:
            continue
        for tag in _caption_tags(caption):
            if "," in tag and split_weighted_tag(tag):
                where.setdefault(tag, []).append(image)
    out = []
    for tag in sorted(where):
        replacement = split_weighted_tag(tag)
        out.append(
            TrainerFinding(
                "weighted-comma",
                "problem",
                f"every trainer splits {tag!r} on its comma, breaking the weight (and shuffling "
                f"separates the halves): write {', '.join(replacement)} instead",
                tuple(sorted(where[tag])),
                "all",
                tag,
                replacement,
            )
        )
    return out


def trigger_parts(triggers: Sequence[str]) -> int:
    """How many comma-separated parts trainers see in these triggers (kohya's keep_tokens,
    OneTrainer's keep_tags_count must count all of them)."""
    return sum(t.count(",") + 1 for t in triggers if t)


def triggers_with_commas(triggers: Sequence[str]) -> list[TrainerFinding]:
    """Triggers holding a comma: trainers see several tags, so pinning the trigger first
    (keep_tokens) must count each part."""
    out = []
    for trigger in triggers:
        if "," in trigger:
            n = trigger.count(",") + 1
            out.append(
                TrainerFinding(
                    "trigger-comma",
                    "advice",
                    f"the trigger {trigger!r} holds a comma: trainers read it as {n} tags, so "
                    f"keep_tokens must count {n} for it (`lora-curator export` does); a trigger "
                    "without a comma stays one tag everywhere",
                    (),
                    "all",
                    trigger,
                )
            )
    return out


def empty_captions(
    captions: Mapping[str, str], on_disk_empty: Iterable[str]
) -> TrainerFinding | None:
    """Images whose caption file stays empty: the rendered caption is empty (so the file is
    left as it is) and its file exists with no text. kohya stops training on an empty file."""
    stuck = sorted({i for i, c in captions.items() if not c.strip()} & set(on_disk_empty))
    if not stuck:
        return None
    return TrainerFinding(
        "empty-caption-file",
        "problem",
        f"{len(stuck)} caption file(s) stay empty: kohya stops training on an empty caption "
        "file (the others train these images on nothing); add a tag or a trigger",
        tuple(stuck),
        KOHYA,
    )


def find_unseen(
    images: Sequence[str],
    caption_extension: str,
    captions: Mapping[str, str],
    triggers: Sequence[str] = (),
    on_disk_empty: Iterable[str] = (),
) -> list[TrainerFinding]:
    """Everything the trainers will not see as the curator shows it.

    `images`: every image (relative paths); `captions`: image → rendered caption ("" when
    empty); `triggers`: every trigger in use; `on_disk_empty`: images whose caption file is
    there but empty or blank on disk."""
    out: list[TrainerFinding] = []
    out.extend(unread_images(images))
    nested = kohya_folder_mode(images)
    if nested is not None:
        out.append(nested)
    twice = recursive_overlap(images)
    if twice is not None:
        out.append(twice)
    out.extend(caption_extension_unread(caption_extension, images))
    out.extend(weighted_tags_with_commas(captions))
    out.extend(triggers_with_commas(triggers))
    empty = empty_captions(captions, on_disk_empty)
    if empty is not None:
        out.append(empty)
    return out
