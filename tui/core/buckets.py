"""The buckets and the patterns: one table each, the only place they are spelled out.

Everything else derives from these tables: the strategy's rendering (what a pattern removes),
the profile's validation, the app's bucket keys, letters, default colours and help rows, the
guide's sections. Adding a bucket is one row here (and, for the themes that want their own
colour for it, one line in their TOML). The domain is in tui/ARCHITECTURE.md ("The domain").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """One bucket: where a tag of the dataset is sorted (dataset-wide, after aliases)."""

    name: str
    key: str  # the app's key that puts the tag under the cursor here
    letter: str  # shown before each tag of the tag list
    colour: str  # the default colour (themes may set their own `bucket-NAME`)
    meaning: str  # one line for the help screen
    in_footer: bool = False  # the Footer shows only the most used bucket keys


@dataclass(frozen=True)
class Pattern:
    """One pattern: which buckets it removes from every caption, and what that trains."""

    name: str
    removes: frozenset[str]
    meaning: str  # one line for the help screen
    why_removed: str = ""  # a reason shown in the help's table for the removed buckets


UNSORTED = "unsorted"

# The buckets a tag can be put in, in key order; `unsorted` (in none) comes after them.
SORTED_BUCKETS: tuple[Bucket, ...] = (
    Bucket(
        "trait",
        "1",
        "T",
        "#ff8700",
        "the character's permanent look: what the LoRA should learn",
        in_footer=True,
    ),
    Bucket(
        "context",
        "2",
        "C",
        "#5fafff",
        "what varies between images and should stay promptable",
        in_footer=True,
    ),
    Bucket(
        "flaw",
        "3",
        "F",
        "#d75fd7",
        "defects (blurry, watermark...): kept on their own tag, prompt them away",
    ),
    Bucket("drop", "4", "D", "#808080", "never written (rating tags, wrong guesses)"),
)
UNSORTED_BUCKET = Bucket(
    UNSORTED,
    "0",
    "·",
    "#ffd75f",
    "not decided yet: the profile's `unsorted` setting says keep or drop",
)
ALL_BUCKETS: tuple[Bucket, ...] = (*SORTED_BUCKETS, UNSORTED_BUCKET)
BUCKET_BY_NAME: dict[str, Bucket] = {b.name: b for b in ALL_BUCKETS}

BUCKETS: tuple[str, ...] = tuple(b.name for b in SORTED_BUCKETS)

PATTERN_TABLE: tuple[Pattern, ...] = (
    Pattern(
        "keep-all",
        frozenset({"drop"}),
        "every feature learned weakly and separately; the trigger alone does little.",
    ),
    Pattern(
        "absorb",
        frozenset({"trait", "drop"}),
        "the trigger alone reproduces the whole look. Do not prompt absorbed traits again: "
        "they stack (the four-ears case).",
        why_removed="the trigger absorbs it",
    ),
    Pattern(
        "traits-only",
        frozenset({"context", "drop"}),
        "each trait tag can be summoned alone; the trigger alone has little effect.",
    ),
)
PATTERNS: tuple[str, ...] = tuple(p.name for p in PATTERN_TABLE)
REMOVED_BY_PATTERN: dict[str, frozenset[str]] = {p.name: p.removes for p in PATTERN_TABLE}
