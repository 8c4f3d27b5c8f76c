"""The edit log's pure replay: a base strategy plus edits gives the working state.

No files and no database here: `replay` and `apply_edit` work on plain values, so the store,
the workspace and the tests share one meaning of every edit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from tui.core.profile import ProfileError, concept_from_dict, strategy_from_dict
from tui.core.store import Edit
from tui.core.strategy import BUCKETS, PATTERNS, UNSORTED, Strategy
from tui.core.tagger.settings import tagger_settings_from_dict


@dataclass
class ImageEdits:
    """Per-image changes to the source tags: removed (case-insensitive keys) and added."""

    removed: set[str] = field(default_factory=set)
    added: list[str] = field(default_factory=list)


@dataclass
class WorkingState:
    """The working strategy and per-image edits that the edit log adds up to."""

    strategy: Strategy
    image_edits: dict[str, ImageEdits] = field(default_factory=dict)
    adopted: dict[str, int] = field(default_factory=dict)  # caption → seq of the adoption
    profile_ref: str = ""  # the profile file the strategy came from ("" = none yet)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_edit(edit: Edit) -> str | None:
    """What is wrong with one edit of the log (None: nothing), checked before it is applied,
    so a damaged or tampered edit is reported, never half-applied."""
    p = edit.payload
    kind = edit.kind
    if not isinstance(p, dict):
        return "its payload is not an object"
    if kind == "buckets":
        changes = p.get("changes")
        if not isinstance(changes, list):
            return "'changes' is not a list"
        for change in changes:
            if not (_is_str_list(change) and len(change) == 2):
                return "a change is not a pair of tag and bucket"
            if change[1] != UNSORTED and change[1] not in BUCKETS:
                return f"unknown bucket {change[1][:40]!r}"
        if not isinstance(p.get("concept", ""), str):
            return "'concept' is not text"
    elif kind == "concept":
        if not isinstance(p.get("concept"), dict):
            return "'concept' is not an object"
        try:
            concept_from_dict("the edit log", "concept", p["concept"])
        except ProfileError as exc:
            return f"its concept is not valid: {exc}"
    elif kind in ("trigger", "pattern"):
        value = p.get("value")
        if not isinstance(value, str):
            return "'value' is not text"
        if kind == "pattern" and value not in PATTERNS:
            return f"unknown pattern {value[:40]!r}"
    elif kind == "alias":
        if not isinstance(p.get("tag"), str):
            return "'tag' is not text"
        if p.get("target") is not None and not isinstance(p.get("target"), str):
            return "'target' is not text"
    elif kind == "strategy":
        if not isinstance(p.get("profile"), dict):
            return "'profile' is not an object"
        if not isinstance(p.get("ref", ""), str):
            return "'ref' is not text"
        try:
            strategy_from_dict(p["profile"], "working strategy")
        except ProfileError as exc:
            return f"its strategy is not valid: {exc}"
    elif kind == "image_tags":
        if not isinstance(p.get("image"), str):
            return "'image' is not text"
        for key in ("remove", "restore", "add"):
            if not _is_str_list(p.get(key, [])):
                return f"{key!r} is not a list of tags"
    elif kind == "images_tags":
        if not _is_str_list(p.get("images")):
            return "'images' is not a list of image paths"
        for key in ("remove", "add"):
            if not _is_str_list(p.get(key, [])):
                return f"{key!r} is not a list of tags"
    elif kind == "adopt" and not isinstance(p.get("caption"), str):
        return "'caption' is not text"
    elif kind == "tagger":
        if not isinstance(p.get("settings"), dict):
            return "'settings' is not an object"
        try:
            tagger_settings_from_dict("the edit log", p["settings"])
        except ProfileError as exc:
            return f"its tagger settings are not valid: {exc}"
    # Unknown kinds (from a newer version) are kept in the log and ignored.
    return None


def apply_edit(state: WorkingState, edit: Edit) -> None:
    """Apply one edit of the log to the working state (in place); see `check_edit`."""
    p = edit.payload
    kind = edit.kind
    if kind == "buckets":
        _apply_bucket_changes(state, p["changes"], p.get("concept", ""))
    elif kind == "trigger":
        state.strategy = replace(state.strategy, trigger=p["value"])
    elif kind == "pattern":
        state.strategy = replace(state.strategy, pattern=p["value"])
    elif kind == "alias":
        aliases = dict(state.strategy.aliases)
        aliases.pop(p["tag"], None)
        if p.get("target"):
            aliases[p["tag"]] = p["target"]
        state.strategy = replace(state.strategy, aliases=aliases)
    elif kind == "strategy":
        state.strategy = strategy_from_dict(p["profile"], p.get("ref") or "working strategy")
        state.profile_ref = p.get("ref", "")
    elif kind == "image_tags":
        _edit_one_image(
            state, p["image"], p.get("remove", []), p.get("restore", []), p.get("add", [])
        )
    elif kind == "images_tags":
        # A batch (the images a query found): one edit of the log, one undo step.
        remove, add = p.get("remove", []), p.get("add", [])
        for image in p["images"]:
            _edit_one_image(state, image, remove, (), add)
    elif kind == "adopt":
        state.adopted[p["caption"]] = edit.seq
    elif kind == "tagger":
        settings = tagger_settings_from_dict("the edit log", p["settings"])
        state.strategy = replace(state.strategy, tagger=settings)
    elif kind == "concept":
        # A new concept, or a changed one (same name): the strategy's list keeps its order.
        concept = concept_from_dict("the edit log", "concept", p["concept"])
        concepts = list(state.strategy.concepts)
        names = [c.name for c in concepts]
        if concept.name in names:
            concepts[names.index(concept.name)] = concept
        else:
            concepts.append(concept)
        state.strategy = replace(state.strategy, concepts=tuple(concepts))
    # Unknown kinds (from a newer version) are ignored rather than lost.


def _edit_one_image(
    state: WorkingState,
    image: str,
    remove: Iterable[str],
    restore: Iterable[str],
    add: Iterable[str],
) -> None:
    """Remove, then restore, then add tags on one image of the working state."""
    edits = state.image_edits.setdefault(image, ImageEdits())
    for tag in remove:
        key = tag.casefold()
        edits.removed.add(key)
        edits.added = [t for t in edits.added if t.casefold() != key]
    for tag in restore:
        edits.removed.discard(tag.casefold())
    for tag in add:
        key = tag.casefold()
        edits.removed.discard(key)
        if all(t.casefold() != key for t in edits.added):
            edits.added.append(tag)


def _apply_bucket_changes(
    state: WorkingState, changes: Iterable[list[str]], concept_name: str = ""
) -> None:
    """Move tags between buckets (the strategy's, or one concept's): one copy of the bucket
    table, whatever the number of changes."""
    concept = state.strategy.concept_named(concept_name) if concept_name else None
    if concept_name and concept is None:
        return  # its concept was removed by a later profile: nothing to change
    buckets = dict(concept.buckets if concept is not None else state.strategy.buckets)
    spelling = {t.casefold(): t for t in buckets}  # lookups are case-insensitive
    for tag, bucket in changes:
        key = tag.casefold()
        old = spelling.pop(key, None)
        if old is not None:
            del buckets[old]
        if bucket != UNSORTED:
            buckets[tag] = bucket
            spelling[key] = tag
    if concept is None:
        state.strategy = replace(state.strategy, buckets=buckets)
        return
    concepts = tuple(
        replace(c, buckets=buckets) if c is concept else c for c in state.strategy.concepts
    )
    state.strategy = replace(state.strategy, concepts=concepts)


class EditError(ValueError):
    """An edit of the log that cannot be applied: `seq` and what is wrong."""

    def __init__(self, edit: Edit, why: str) -> None:
        super().__init__(f"edit {edit.seq} ({edit.kind[:40]}): {why}")
        self.edit = edit


def replay(base: Strategy, edits: Iterable[Edit], base_ref: str = "") -> WorkingState:
    """The working state after `edits`, starting from `base`; an `EditError` (nothing
    applied) when one of them is damaged."""
    edits = list(edits)
    for edit in edits:
        why = check_edit(edit)
        if why is not None:
            raise EditError(edit, why)
    state = WorkingState(strategy=base, profile_ref=base_ref)
    # Consecutive bucket edits are applied together: replaying thousands of steps stays fast.
    pending: list[list[str]] = []
    for edit in edits:
        if edit.kind == "buckets" and not edit.payload.get("concept"):
            pending.extend(edit.payload["changes"])
            continue
        if pending:
            _apply_bucket_changes(state, pending)
            pending = []
        apply_edit(state, edit)
    if pending:
        _apply_bucket_changes(state, pending)
    return state
