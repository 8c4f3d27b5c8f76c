"""Profiles: a strategy saved as TOML (schema 1), and the library of profiles.

Errors are `ProfileError`s whose message names the file and what is wrong.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from tui.core.captions import UNDERSCORE_MODES
from tui.core.dataset import IMAGE_EXTENSIONS, OPTIONAL_EXTENSIONS, STATE_DIR
from tui.core.strategy import (
    BUCKETS,
    ORDERS,
    PATTERNS,
    UNSORTED_MODES,
    CaptionFormat,
    Concept,
    Strategy,
)
from tui.core.tagger.settings import (
    TaggerSettings,
    tagger_settings_from_dict,
    tagger_settings_to_dict,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# [[concepts]] needed no new schema: a version without them refuses the unknown key with a
# clear message rather than misreading the profile.
SCHEMA = 1
# Thresholds of `lora-curator check` (see tui/core/checks.py), settable under [checks].
CHECK_DEFAULTS: dict[str, float] = {
    "inconsistent_trait": 0.80,
    "constant_context": 0.95,
    "blur_ratio": 0.45,
    "lowres_side": 500,
    "near_duplicate_distance": 4,
    # CLIP tokens a trainer reads of a caption (kohya's default; the rest is cut silently).
    "max_tokens": 75,
}
# The range each threshold may take: shares of images (or of a median) lie in [0, 1]; a side
# is pixels; a distance is bits of a 64-bit perceptual hash.
CHECK_RANGES: dict[str, tuple[float, float, str]] = {
    "inconsistent_trait": (0.0, 1.0, "a share between 0 and 1"),
    "constant_context": (0.0, 1.0, "a share between 0 and 1"),
    "blur_ratio": (0.0, 1.0, "a ratio between 0 and 1"),
    "lowres_side": (0, 1_000_000, "a number of pixels between 0 and 1000000"),
    "near_duplicate_distance": (0, 64, "a number of bits between 0 and 64"),
    "max_tokens": (1, 100_000, "a number of tokens between 1 and 100000"),
}


class ProfileError(Exception):
    """A profile that cannot be used; the message names the file and the problem."""


# Values quoted in errors: short (a 10,000-digit number or a deeply nested list would make a
# message no one reads, or a RecursionError), with the nesting cut.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 60, 60, 40
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 4


def _shown(value: Any) -> str:
    return _REPR.repr(value)


def _fail(source: str, message: str) -> ProfileError:
    return ProfileError(f"{source}: {message}")


def _expect(source: str, where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _fail(source, f"{where} must be {what}, not {type(value).__name__} {_shown(value)}")
    return value


def _choice(source: str, where: str, value: Any, choices: tuple[str, ...]) -> str:
    _expect(source, where, value, str, "a string")
    if value not in choices:
        valid = ", ".join(choices)
        raise _fail(source, f"{where} = {_shown(value)} is not valid; use one of: {valid}")
    return value


def _string_list(source: str, where: str, value: Any) -> list[str]:
    _expect(source, where, value, list, "a list of strings")
    for item in value:
        _expect(source, where, item, str, "a list of strings")
    return value


def _check_number(source: str, key: str, value: Any) -> float:
    """A `[checks]` threshold: a finite number in its range (inf, nan, 1e400, a huge int or a
    negative count would make every check pass or fail, or crash later)."""
    where = f"[checks] {key}"
    _expect(source, where, value, (int, float), "a number")
    low, high, what = CHECK_RANGES[key]
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(source, f"{where} = {_shown(value)} must be {what}")
    if not low <= value <= high:  # exact for ints of any size, no float overflow
        raise _fail(source, f"{where} = {_shown(value)} is out of range; it must be {what}")
    return float(value)


def _caption_extension(source: str, value: Any) -> str:
    """The caption extension, refused when writing captions with it could overwrite images or
    the state (an image extension of any case, `.lora-curator`) or leave the folder."""
    where = "[caption] extension"
    extension = _expect(source, where, value, str, "a string")
    if not re.fullmatch(r"\.[A-Za-z0-9_-][A-Za-z0-9_.-]*", extension) or extension.endswith("."):
        raise _fail(
            source,
            f"{where} = {_shown(extension)} must look like '.txt' (a dot, then letters, digits, "
            "'_', '-' or inner dots; no '/', no spaces)",
        )
    last = "." + extension.rsplit(".", 1)[-1].lower()
    if last in IMAGE_EXTENSIONS or last in OPTIONAL_EXTENSIONS:
        raise _fail(
            source,
            f"{where} = {_shown(extension)} is an image extension: captions written with it would "
            "overwrite the images; use '.txt' (or another text extension)",
        )
    if STATE_DIR.strip(".") in extension.lower():
        raise _fail(source, f"{where} = {_shown(extension)} is lora-curator's own; use '.txt'")
    return extension


def _check_keys(source: str, table: str, data: Mapping[str, Any], allowed: tuple[str, ...]):
    for key in data:
        if key not in allowed:
            where = f"[{table}]" if table else "the top level"
            raise _fail(
                source,
                f"unknown key {_shown(key)} in {where}; valid keys: {', '.join(allowed)}",
            )


_TOP_KEYS = (
    "schema",
    "name",
    "trigger",
    "pattern",
    "unsorted",
    "buckets",
    "aliases",
    "caption",
    "suggest",
    "checks",
    "concepts",
    "tagger",
)
_CONCEPT_KEYS = ("name", "trigger", "folders", "tags", "pattern", "buckets")
_CAPTION_KEYS = (
    "extension",
    "separator",
    "underscores",
    "escape_parentheses",
    "order",
    "drop_implied",
)


def strategy_from_dict(data: Mapping[str, Any], source: str, default_name: str = "") -> Strategy:
    """Validate a profile's parsed TOML and build its strategy; `source` names it in errors."""
    _check_keys(source, "", data, _TOP_KEYS)
    if "schema" not in data:
        raise _fail(source, f"missing 'schema = {SCHEMA}' at the top")
    schema = _expect(source, "schema", data["schema"], int, "an integer")
    if schema > SCHEMA:
        raise _fail(
            source,
            f"schema {schema} is newer than this lora-curator understands ({SCHEMA}); "
            "upgrade lora-curator",
        )
    if schema < 1:
        raise _fail(source, f"schema {schema} is not valid; use schema = {SCHEMA}")
    name = _expect(source, "name", data.get("name", default_name), str, "a string")
    trigger = _expect(source, "trigger", data.get("trigger", ""), str, "a string").strip()
    pattern = _choice(source, "pattern", data.get("pattern", "keep-all"), PATTERNS)
    unsorted = _choice(source, "unsorted", data.get("unsorted", "keep"), UNSORTED_MODES)

    buckets = _bucket_table(source, "buckets", data.get("buckets", {}))

    aliases_table = _expect(source, "[aliases]", data.get("aliases", {}), dict, "a table")
    aliases: dict[str, str] = {}
    for tag, target in aliases_table.items():
        aliases[tag] = _expect(source, f"aliases.{_shown(tag)}", target, str, "a string")

    caption_table = _expect(source, "[caption]", data.get("caption", {}), dict, "a table")
    _check_keys(source, "caption", caption_table, _CAPTION_KEYS)
    default = CaptionFormat()
    extension = _caption_extension(source, caption_table.get("extension", default.extension))
    caption = CaptionFormat(
        extension=extension,
        separator=_expect(
            source,
            "caption.separator",
            caption_table.get("separator", default.separator),
            str,
            "a string",
        ),
        underscores=_choice(
            source,
            "caption.underscores",
            caption_table.get("underscores", default.underscores),
            UNDERSCORE_MODES,
        ),
        escape_parentheses=_expect(
            source,
            "caption.escape_parentheses",
            caption_table.get("escape_parentheses", default.escape_parentheses),
            bool,
            "true or false",
        ),
        order=_choice(source, "caption.order", caption_table.get("order", default.order), ORDERS),
        drop_implied=_expect(
            source,
            "caption.drop_implied",
            caption_table.get("drop_implied", default.drop_implied),
            bool,
            "true or false",
        ),
    )
    if not caption.separator.strip(" ") or "\n" in caption.separator or "\r" in caption.separator:
        raise _fail(
            source,
            f"caption.separator = {caption.separator!r} must not be blank or hold a line break",
        )

    suggest_table = _expect(source, "[suggest]", data.get("suggest", {}), dict, "a table")
    _check_keys(source, "suggest", suggest_table, BUCKETS)
    suggest = {
        bucket: tuple(_string_list(source, f"suggest.{bucket}", globs))
        for bucket, globs in suggest_table.items()
    }

    checks_table = _expect(source, "[checks]", data.get("checks", {}), dict, "a table")
    _check_keys(source, "checks", checks_table, tuple(CHECK_DEFAULTS))
    checks = {key: _check_number(source, key, value) for key, value in checks_table.items()}

    concepts_list = _expect(source, "[[concepts]]", data.get("concepts", []), list, "tables")
    concepts: list[Concept] = []
    for i, table in enumerate(concepts_list):
        concept = concept_from_dict(source, f"concepts[{i + 1}]", table)
        if any(c.name == concept.name for c in concepts):
            raise _fail(
                source,
                f"concepts[{i + 1}].name = {concept.name!r}: two concepts have this name; "
                "give each its own",
            )
        concepts.append(concept)

    return Strategy(
        name=name,
        trigger=trigger,
        pattern=pattern,
        unsorted=unsorted,
        buckets=buckets,
        aliases=aliases,
        caption=caption,
        suggest=suggest,
        checks=checks,
        concepts=tuple(concepts),
        tagger=tagger_settings_from_dict(source, data.get("tagger")),
    )


def _bucket_table(source: str, where: str, value: Any) -> dict[str, str]:
    """A `[buckets]`-shaped table (bucket → list of tags) as tag → bucket."""
    table = _expect(source, f"[{where}]", value, dict, "a table")
    _check_keys(source, where, table, BUCKETS)
    buckets: dict[str, str] = {}
    first_bucket: dict[str, str] = {}
    for bucket in BUCKETS:
        for tag in _string_list(source, f"{where}.{bucket}", table.get(bucket, [])):
            key = tag.casefold()
            other = first_bucket.get(key)
            if other is not None and other != bucket:
                raise _fail(
                    source,
                    ("" if where == "buckets" else f"{where}: ")
                    + f"tag {_shown(tag)} is in two buckets, {other!r} and {bucket!r}; "
                    "keep it in one",
                )
            first_bucket[key] = bucket
            buckets[tag] = bucket
    return buckets


def concept_from_dict(source: str, where: str, table: Any) -> Concept:
    """One `[[concepts]]` table; `where` (e.g. `concepts[2]`) names it in errors."""
    _expect(source, where, table, dict, "a table")
    _check_keys(source, where, table, _CONCEPT_KEYS)
    if "name" not in table:
        raise _fail(source, f"{where}: missing 'name'")
    name = _expect(source, f"{where}.name", table["name"], str, "a string").strip()
    if not name:
        raise _fail(source, f"{where}.name must not be empty")
    trigger = _expect(source, f"{where}.trigger", table.get("trigger", ""), str, "a string")
    folders = []
    for folder in _string_list(source, f"{where}.folders", table.get("folders", [])):
        clean = folder.replace("\\", "/").rstrip("/")
        if not clean or clean.startswith("/") or ".." in clean.split("/"):
            raise _fail(
                source,
                f"{where}.folders: {folder!r} must be a folder inside the dataset "
                "(relative, e.g. '10_school')",
            )
        folders.append(clean)
    tags = _string_list(source, f"{where}.tags", table.get("tags", []))
    pattern = table.get("pattern", "")
    if pattern != "":
        pattern = _choice(source, f"{where}.pattern", pattern, PATTERNS)
    return Concept(
        name=name,
        trigger=trigger.strip(),
        folders=tuple(folders),
        tags=tuple(tags),
        pattern=pattern,
        buckets=_bucket_table(source, f"{where}.buckets", table.get("buckets", {})),
    )


def concept_to_dict(concept: Concept) -> dict[str, Any]:
    data: dict[str, Any] = {"name": concept.name, "trigger": concept.trigger}
    if concept.folders:
        data["folders"] = list(concept.folders)
    if concept.tags:
        data["tags"] = list(concept.tags)
    if concept.pattern:
        data["pattern"] = concept.pattern
    data["buckets"] = {bucket: concept.tags_in(bucket) for bucket in BUCKETS}
    return data


def strategy_to_dict(strategy: Strategy) -> dict[str, Any]:
    """The TOML document of a strategy (every key written, so the file documents itself)."""
    fmt = strategy.caption
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "name": strategy.name,
        "trigger": strategy.trigger,
        "pattern": strategy.pattern,
        "unsorted": strategy.unsorted,
        "buckets": {bucket: strategy.tags_in(bucket) for bucket in BUCKETS},
        "aliases": dict(strategy.aliases),
        "caption": {
            "extension": fmt.extension,
            "separator": fmt.separator,
            "underscores": fmt.underscores,
            "escape_parentheses": fmt.escape_parentheses,
            "order": fmt.order,
            "drop_implied": fmt.drop_implied,
        },
    }
    if strategy.suggest:
        data["suggest"] = {b: list(g) for b, g in strategy.suggest.items()}
    if strategy.checks:
        data["checks"] = dict(strategy.checks)
    if strategy.concepts:
        data["concepts"] = [concept_to_dict(c) for c in strategy.concepts]
    # Like [suggest] and [checks]: a profile that never changed the defaults stays without it.
    if strategy.tagger != TaggerSettings():
        data["tagger"] = tagger_settings_to_dict(strategy.tagger)
    return data


def parse_profile(text: str, source: str, default_name: str = "") -> Strategy:
    """Parse a profile's TOML text; `source` (usually the path) names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends in "(at line L, column C)".
        raise _fail(source, f"TOML syntax error: {exc}") from None
    except ValueError as exc:
        # Python refuses to convert an integer of more than 4300 digits.
        raise _fail(source, f"a value cannot be read: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise _fail(source, "nested too deeply (arrays or tables inside each other)") from None
    return strategy_from_dict(data, source, default_name)


def load_profile(path: str | os.PathLike[str]) -> Strategy:
    """Read a profile TOML file (the name defaults to the file's stem)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(str(path), "no such profile file") from None
    except OSError as exc:
        raise _fail(str(path), f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(str(path), "not UTF-8 text; save the profile as UTF-8") from None
    return parse_profile(text, str(path), default_name=path.stem)


def dump_profile(strategy: Strategy) -> str:
    """The TOML text of a profile."""
    return tomli_w.dumps(strategy_to_dict(strategy))


def save_profile(strategy: Strategy, path: str | os.PathLike[str]) -> None:
    """Write a profile atomically (temp file, fsync, rename)."""
    from tui.core.writer import write_file_atomic

    path = Path(path)
    text = dump_profile(strategy).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(path, text)
    except OSError as exc:
        raise _folder_error(path, "cannot save the profile", exc) from None


def _folder_error(path: Path, doing: str, exc: OSError) -> ProfileError:
    """One clear line for a profile folder that cannot be used: which path, what to do."""
    blocker = _file_in_the_way(path.parent)
    why = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
    hint = f"make {path.parent} a folder you can write"
    if path.parent == library_dir():
        hint += " (the profile library: $XDG_CONFIG_HOME/lora-curator/profiles)"
    return ProfileError(f"{path}: {doing}: {why}; {hint}")


def _file_in_the_way(folder: Path) -> Path | None:
    """The first part of `folder` that exists but is not a folder (e.g. an XDG_CONFIG_HOME
    that is a file), if any."""
    for part in [*reversed(folder.parents), folder]:
        try:
            if part.exists() and not part.is_dir():
                return part
        except OSError:
            return None
    return None


# ---- the library ---------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


def library_dir() -> Path:
    """`$XDG_CONFIG_HOME/lora-curator/profiles` (default `~/.config/...`)."""
    return config_dir() / "profiles"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/lora-curator` (default `~/.config/lora-curator`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "lora-curator"


def is_profile_path(ref: str) -> bool:
    """A `--profile` value is a path when it contains `/` or ends in `.toml`, else a name."""
    return "/" in ref or os.sep in ref or ref.endswith(".toml")


def library_path(name: str) -> Path:
    """The file of a library profile; names cannot leave the library folder."""
    if not _NAME.match(name) or ".." in name:
        raise ProfileError(
            f"{name!r} is not a valid profile name; use letters, digits, space, '.', '_' or '-'"
        )
    return library_dir() / f"{name}.toml"


def resolve_profile(ref: str) -> Path:
    """The file a `--profile` value names: a path, or a name in the library."""
    if is_profile_path(ref):
        return Path(ref).expanduser()
    path = library_path(ref)
    if not profile_exists(path):
        raise ProfileError(
            f"{path}: no profile named {ref!r} in the library; "
            "see `lora-curator profile list` or create it with `lora-curator profile new`"
        )
    return path


def profile_exists(path: Path) -> bool:
    """Whether a profile file exists; a library that cannot be looked into (a file in the way
    of its folder, no permission) is a `ProfileError` naming the path."""
    try:
        if path.exists():
            return True
    except OSError as exc:
        raise _folder_error(path, "cannot look into the profile folder", exc) from None
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise ProfileError(
            f"{path.parent}: cannot use the profile library: {blocker} is a file, not a "
            "folder; move it away or set XDG_CONFIG_HOME to a folder"
        )
    return False


def list_library() -> list[Path]:
    """Every profile file in the library, by name (none when the library does not exist yet);
    a library that cannot be read is a `ProfileError` naming it."""
    folder = library_dir()
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.endswith(".toml") and e.is_file()]
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        blocker = _file_in_the_way(folder) or folder
        raise ProfileError(
            f"{folder}: cannot read the profile library: {blocker} is a file, not a folder; "
            "move it away or set XDG_CONFIG_HOME to a folder"
        ) from None
    except OSError as exc:
        raise ProfileError(
            f"{folder}: cannot read the profile library: {exc.strerror or exc}; "
            "make it a folder you can read"
        ) from None
    return sorted(folder / name for name in names)
