"""How stored tagger scores become tags: the profile's `[tagger]` table and the pure
selection rules (thresholds, MCut, rating). No numpy, no onnxruntime: the curator uses this
on every render, with or without the tagger installed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# selected_tags.csv categories
CATEGORY_GENERAL = 0
CATEGORY_CHARACTER = 4
CATEGORY_RATING = 9

MODES = ("fixed", "mcut")
SOURCES = ("auto", "tagger", "caption", "both")
# The reference demo never lets the character MCut threshold fall below this.
CHARACTER_MCUT_FLOOR = 0.15


@dataclass(frozen=True)
class TaggerSettings:
    """The `[tagger]` table of a profile: how an image's scores become its source tags."""

    general_threshold: float = 0.35
    character_threshold: float = 0.85
    mode: str = "fixed"  # fixed | mcut
    rating: bool = True  # add the top rating tag
    source: str = "auto"  # auto | tagger | caption | both


_KEYS = tuple(TaggerSettings.__dataclass_fields__)


def _fail(source_name: str, message: str) -> Exception:
    # Imported here: profile.py reads the [tagger] table with this module (a cycle at import).
    from tui.core.profile import ProfileError

    return ProfileError(f"{source_name}: {message}")


def _fraction(source_name: str, key: str, value: Any) -> float:
    # bool is an int in Python; `general_threshold = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(
            source_name,
            f"tagger.{key} must be a number between 0 and 1, not {type(value).__name__} {value!r}",
        )
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise _fail(source_name, f"tagger.{key} = {value!r} must be between 0 and 1")
    return float(value)


def _choice(source_name: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(
            source_name, f"tagger.{key} = {value!r} is not valid; use one of: {', '.join(choices)}"
        )
    return value


def tagger_settings_from_dict(source_name: str, table: Any) -> TaggerSettings:
    """Validate a profile's `[tagger]` table (every key optional). Errors are `ProfileError`s
    naming `source_name` (the profile file) and the key."""
    if table is None:
        return TaggerSettings()
    if not isinstance(table, Mapping):
        raise _fail(source_name, f"[tagger] must be a table, not {type(table).__name__}")
    unknown = sorted(str(k) for k in table if k not in _KEYS)
    if unknown:
        raise _fail(
            source_name,
            f"unknown key tagger.{unknown[0]}; the [tagger] keys are: {', '.join(_KEYS)}",
        )
    defaults = TaggerSettings()
    rating = table.get("rating", defaults.rating)
    if not isinstance(rating, bool):
        raise _fail(source_name, f"tagger.rating must be true or false, not {rating!r}")
    return TaggerSettings(
        general_threshold=_fraction(
            source_name, "general_threshold", table.get("general_threshold", 0.35)
        ),
        character_threshold=_fraction(
            source_name, "character_threshold", table.get("character_threshold", 0.85)
        ),
        mode=_choice(source_name, "mode", table.get("mode", defaults.mode), MODES),
        rating=rating,
        source=_choice(source_name, "source", table.get("source", defaults.source), SOURCES),
    )


def tagger_settings_to_dict(settings: TaggerSettings) -> dict[str, Any]:
    """The `[tagger]` table for a profile file (every key written, so the file says it all)."""
    return asdict(settings)


def mcut_threshold(scores: Iterable[float]) -> float:
    """Maximum Cut: sort the scores, find the largest gap between neighbours and return its
    midpoint. With one score, that score (it is kept); with none, infinity (nothing is)."""
    ordered = sorted(scores, reverse=True)
    if not ordered:
        return math.inf
    if len(ordered) == 1:
        return ordered[0]
    best = max(range(len(ordered) - 1), key=lambda i: ordered[i] - ordered[i + 1])
    return (ordered[best] + ordered[best + 1]) / 2


def select_tags(scores: Sequence[tuple[str, int, float]], settings: TaggerSettings) -> list[str]:
    """An image's tagger tags from its `(tag, category, score)` triples: general tags (and any
    category other than rating/character) at or above the general threshold, character tags
    at or above the character threshold (or both per-image MCut thresholds in `mcut` mode,
    the character one at least 0.15), plus the top rating when `settings.rating`. Ordered by
    descending score (ties by name, so the order never depends on storage). Scores under
    the storage floor (0.05) are not kept, so MCut runs over the kept ones (the gaps among the
    dropped ones are under 0.05 wide: rarely the largest)."""
    general = [(t, s) for t, c, s in scores if c not in (CATEGORY_CHARACTER, CATEGORY_RATING)]
    character = [(t, s) for t, c, s in scores if c == CATEGORY_CHARACTER]
    if settings.mode == "mcut":
        general_cut = mcut_threshold(s for _, s in general)
        character_cut = max(mcut_threshold(s for _, s in character), CHARACTER_MCUT_FLOOR)
    else:
        general_cut = settings.general_threshold
        character_cut = settings.character_threshold
    chosen = [(t, s) for t, s in general if s >= general_cut]
    chosen += [(t, s) for t, s in character if s >= character_cut]
    if settings.rating:
        ratings = [(t, s) for t, c, s in scores if c == CATEGORY_RATING]
        if ratings:
            chosen.append(max(ratings, key=lambda ts: (ts[1], ts[0])))
    chosen.sort(key=lambda ts: (-ts[1], ts[0]))
    out: list[str] = []
    seen: set[str] = set()
    for tag, _ in chosen:
        key = tag.casefold()  # two labels converted to one tag appear once
        if key not in seen:
            seen.add(key)
            out.append(tag)
    return out
