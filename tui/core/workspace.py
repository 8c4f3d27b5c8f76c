"""A dataset opened for curation: scan + state + sources + working strategy.

The CLI and the TUI both work through a `Workspace`; it is the only way they read or write
caption files. The working state is the base strategy plus the edit log up to its cursor.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

from tui.core.captions import TagParser, decode_caption
from tui.core.dataset import (
    IMAGE_EXTENSIONS,
    STATE_DIR,
    ImageEntry,
    NotRegularFileError,
    ScanResult,
    check_root,
    file_kind,
    open_regular,
    scan_dataset,
)
from tui.core.profile import (
    ProfileError,
    concept_from_dict,
    concept_to_dict,
    strategy_from_dict,
    strategy_to_dict,
)
from tui.core.store import Edit, Store, content_hash
from tui.core.strategy import BUCKETS, PATTERNS, UNSORTED, Concept, Renderer, Strategy
from tui.core.writer import (
    UnsafePathError,
    fsync_folder,
    remove_temp_file,
    resolve_inside,
    write_file_atomic,
)

# Progress callback: (phase, done, total or 0 when unknown).
Progress = Callable[[str, int, int], None]


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
    elif kind == "adopt" and not isinstance(p.get("caption"), str):
        return "'caption' is not text"
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
        edits = state.image_edits.setdefault(p["image"], ImageEdits())
        for tag in p.get("remove", []):
            key = tag.casefold()
            edits.removed.add(key)
            edits.added = [t for t in edits.added if t.casefold() != key]
        for tag in p.get("restore", []):
            edits.removed.discard(tag.casefold())
        for tag in p.get("add", []):
            key = tag.casefold()
            edits.removed.discard(key)
            if all(t.casefold() != key for t in edits.added):
                edits.added.append(tag)
    elif kind == "adopt":
        state.adopted[p["caption"]] = edit.seq
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


@dataclass
class ApplyReport:
    """The outcome of writing captions."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): not an error
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why): an error

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.skipped) + len(self.failed)} skipped"
        )


@dataclass
class Problem:
    """Something the user should know about one file."""

    path: str
    message: str


# The largest caption read (a trainer reads one line of tags; anything larger is not a caption
# but must still never be cut): past it the file is reported, never snapshotted nor written.
MAX_CAPTION_BYTES = 64 << 20


class CaptionRefused(Exception):
    """A caption path lora-curator will not read or write; the message says why."""


def _too_large(size: int) -> CaptionRefused:
    return CaptionRefused(
        f"is larger than the {MAX_CAPTION_BYTES >> 20} MiB a caption may have "
        f"({size:,} bytes): not read, never written"
    )


def _read_file(path: str, follow: bool = False, stat_first: bool = False) -> bytes:
    """A regular file's bytes, whole, with the fewest system calls (captions are small; this
    is the hot loop of opening a dataset).

    Never opens a FIFO, socket or device for reading (`NotRegularFileError`), never reads past
    `MAX_CAPTION_BYTES` (`CaptionRefused`: a sparse multi-GB file is refused by its size
    before any read). `follow=False` refuses a symlink (ELOOP) so the caller can look at
    where it leads first."""
    fd, st = open_regular(path, follow=follow, stat_first=stat_first)
    try:
        size = st.st_size
        if size > MAX_CAPTION_BYTES:
            raise _too_large(size)
        # One read returns the whole file when its size is what fstat said; a file that grows
        # meanwhile is read on to its end (or to the limit).
        want = size + 1
        chunk = os.read(fd, want)
        if len(chunk) == size and size < want:
            return chunk
        chunks = [chunk]
        total = len(chunk)
        while chunk:
            chunk = os.read(fd, 1 << 20)
            total += len(chunk)
            if total > MAX_CAPTION_BYTES:
                raise _too_large(total)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and (name[dot:].lower() in IMAGE_EXTENSIONS or name[dot:].lower() == ".avif")


def _is_read_only(path: Path) -> bool:
    """A file nobody may write (mode bits): the user asked for it to stay as it is."""
    try:
        return not os.stat(path).st_mode & 0o222
    except OSError:
        return False


def _changed_message(gone: bool) -> str:
    if gone:
        return (
            "deleted on disk since lora-curator read it: not created again "
            "(--adopt takes it as having no tags, --overwrite writes ours)"
        )
    return (
        "changed on disk since lora-curator last wrote it: not overwritten "
        "(--adopt takes its tags as the source, --overwrite writes ours)"
    )


def _replay_log(store: Store | None, root: Path) -> tuple[Strategy, WorkingState, bool]:
    """The base strategy, the working state at the cursor and whether the dataset has a
    strategy. The whole log is checked, redo history included: a damaged edit anywhere is a
    `CorruptStateError` (see `_check_edits`)."""
    if store is None:
        return Strategy(name=root.name), replay(Strategy(name=root.name), []), False
    base_dict = store.base_strategy()
    if base_dict is not None:
        try:
            base = strategy_from_dict(base_dict, "working strategy")
        except ProfileError as exc:
            raise store.damaged(f"the working strategy is not valid: {exc}") from None
    else:
        base = Strategy(name=root.name)
    base_ref = store.meta("profile_ref") or ""
    everything = store.edits(store.last_seq())
    _check_edits(store, everything)
    cursor = store.cursor()  # the store checked it is within the log, numbered 1..last
    state = replay(base, everything[:cursor], base_ref)
    return base, state, base_dict is not None or bool(cursor)


def _check_edits(store: Store, edits: list[Edit]) -> None:
    """A damaged edit is a `CorruptStateError` of the store.

    Fatal, not skipped: every later edit was made on the state that included it, and a
    save would write captions from a state the user never saw. The log stays as it is
    (reset-state keeps it in the backup)."""
    for edit in edits:
        why = check_edit(edit)
        if why is not None:
            raise store.damaged(str(EditError(edit, why)))


class Workspace:
    """One dataset, its sources and its working state. Create with `Workspace.open`."""

    def __init__(
        self,
        root: Path,
        store: Store | None,
        base: Strategy,
        state: WorkingState,
        has_strategy: bool,
    ) -> None:
        self.root = root
        self.store = store
        self.base = base
        self.state = state
        self.has_strategy = has_strategy
        self.scan: ScanResult = ScanResult(root=root)
        self.images: list[ImageEntry] = []
        self.by_image: dict[str, ImageEntry] = {}
        self.sources: dict[str, tuple[str, ...]] = {}  # caption → parsed source tags
        self.disk_hash: dict[str, bytes | None] = {}  # caption → hash of its bytes on disk
        self.changed_on_disk: set[str] = set()  # captions edited by someone else
        # Captions that could not (or must not) be read → why: never written.
        self.unreadable: dict[str, str] = {}
        # Captions that are symlinks → the real path they lead to (absolute).
        self.links: dict[str, str] = {}
        self._link_targets: dict[str, list[str]] = {}  # real path → the captions linking to it
        self._caption_set: set[str] = set()
        self.problems: list[Problem] = []
        # The working strategy as the edit log has it (None: the log holds none yet); a
        # session override (`--profile`) differs from it until `use_strategy` records it.
        self.logged_strategy: Strategy | None = state.strategy if has_strategy else None
        self._counts: Counter[str] | None = None
        self._renderer: Renderer | None = None
        self._concept_renderers: dict[str, Renderer] = {}
        self._parser: TagParser | None = None

    # ---- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        strategy: Strategy | None = None,
        read_only: bool = False,
        progress: Progress | None = None,
    ) -> Workspace:
        """Open a dataset: scan it, snapshot new caption files, parse sources, replay edits.

        `strategy` replaces the working strategy for this session (e.g. `--profile`); record
        it with `use_strategy` to make it the dataset's working strategy. `read_only` never
        creates or changes anything on disk.
        """
        root_path = check_root(root)
        store = Store.open(root_path, read_only=read_only)
        try:
            base, state, has_strategy = _replay_log(store, root_path)
        except BaseException:
            if store is not None:
                store.close()  # never keep the dataset locked after a failed open
            raise
        logged, logged_has_strategy = state.strategy, has_strategy
        if strategy is not None:
            state.strategy = strategy
            has_strategy = True
        ws = cls(root_path, store, base, state, has_strategy)
        if strategy is not None:
            ws.logged_strategy = logged if logged_has_strategy else None
        try:
            ws._load(progress)
        except BaseException:
            ws.close()  # never keep the dataset locked after a failed open
            raise
        return ws

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def strategy(self) -> Strategy:
        return self.state.strategy

    def _load(self, progress: Progress | None) -> None:
        fmt = self.strategy.caption
        scan_progress = (lambda n: progress("scan", n, 0)) if progress else None
        self.scan = scan = scan_dataset(self.root, fmt.extension, scan_progress)
        self.images = scan.images
        self.by_image = {e.image: e for e in scan.images}
        self.problems = [Problem(path, msg) for path, msg in scan.problems]
        if self.store is not None and not self.store.read_only:
            for rel in scan.temp_files:
                if remove_temp_file(self.root / rel):
                    self.problems.append(
                        Problem(rel, "removed a temp file an interrupted save left")
                    )
        self._parser = TagParser(fmt.underscores)
        self._read_captions(progress)

    def _read_captions(self, progress: Progress | None) -> None:
        store = self.store
        records = store.file_records() if store is not None else {}
        captions = list(dict.fromkeys(e.caption for e in self.images))
        total = len(captions)
        root = str(self.root)
        # Pass 1: bytes and hashes. New files are snapshotted on a background thread while
        # pass 2 parses (a first open of a large dataset is mostly these two).
        read: list[tuple[str, bytes | None, bytes | None]] = []
        self._caption_set = set(captions)
        for i, caption in enumerate(captions):
            try:
                data: bytes | None = self._read_one(f"{root}/{caption}", caption)
            except CaptionRefused as exc:
                self._mark_unreadable(caption, str(exc))
                continue
            except NotRegularFileError as exc:
                self._mark_unreadable(caption, f"{exc.strerror}: never read or written")
                continue
            except OSError as exc:
                self._mark_unreadable(
                    caption, f"cannot read ({exc.strerror}): treated as no tags and never written"
                )
                continue
            read.append((caption, data, content_hash(data)))
            if progress is not None and (i % 1000 == 0 or i == total - 1):
                progress("read", i + 1, total)
        if store is not None and not store.read_only:
            store.add_originals((r for r in read if r[0] not in records), background=True)
        # Pass 2: sources, and how each file stands against what the state knows.
        need_original: list[str] = []
        fix_known: list[tuple[str, bytes | None]] = []
        adopted = self.state.adopted
        for caption, data, digest in read:
            self.disk_hash[caption] = digest
            record = records.get(caption)
            if record is None:
                self._set_source(caption, data)
            elif caption in adopted or digest != record.original_hash:
                # The source is not what is on disk: an adopted version or the original.
                need_original.append(caption)
                if digest != record.known_hash:
                    if digest is not None and digest == record.pending_hash:
                        fix_known.append((caption, digest))
                    else:
                        self.changed_on_disk.add(caption)
            else:
                self._set_source(caption, data)
                if record.known_hash != digest:
                    fix_known.append((caption, digest))
        del read
        if need_original and store is not None:
            originals = store.originals(need_original)
            for caption in need_original:
                seq = adopted.get(caption)
                data = store.blob(seq, caption) if seq is not None else originals.get(caption)
                self._set_source(caption, data)
        if fix_known and store is not None and not store.read_only:
            store.set_known(fix_known)
        present = set(captions)
        for caption in sorted(set(records) - present):
            self.problems.append(
                Problem(caption, "its image is gone since the last open; its history is kept")
            )
        for caption in sorted(self.changed_on_disk):
            self.problems.append(
                Problem(caption, "changed on disk since lora-curator last wrote it")
            )

    def _mark_unreadable(self, caption: str, why: str) -> None:
        self.problems.append(Problem(caption, why))
        self.sources[caption] = ()
        self.disk_hash[caption] = None
        self.unreadable[caption] = why

    def _read_one(self, path: str, caption: str) -> bytes | None:
        """A caption's bytes (None: absent); `CaptionRefused`, `NotRegularFileError` or
        `OSError` when it cannot or must not be read."""
        if caption in self.scan.special:  # a FIFO, socket or device: never opened
            mode = os.lstat(path).st_mode
            raise NotRegularFileError(0, f"is {file_kind(mode)}, not a file", path)
        try:
            return _read_file(path)
        except FileNotFoundError:
            return None
        except NotRegularFileError:
            raise
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return self._read_link(caption)  # a symlink: see where it leads first

    def _read_link(self, caption: str) -> bytes | None:
        """Read a caption that is a symlink, unless it leads into an image or the state."""
        real = os.path.realpath(f"{self.root}/{caption}")
        why = self._link_refusal(real)
        if why is not None:
            raise CaptionRefused(f"{why}: never read or written")
        self.links[caption] = real
        linking = self._link_targets.setdefault(real, [])
        if caption not in linking:
            linking.append(caption)
        try:
            return _read_file(real, follow=True, stat_first=True)
        except FileNotFoundError:
            return None  # a dangling link: no tags yet; a save creates its target

    def _link_refusal(self, real: str) -> str | None:
        """Why a caption leading to `real` is never read (None: it may be)."""
        root = str(self.root)
        inside = real.startswith(root + "/")
        rel = real[len(root) + 1 :] if inside else real
        if inside and (rel == STATE_DIR or rel.startswith(STATE_DIR + "/")):
            return f"links into {STATE_DIR}/ (lora-curator's state)"
        if _is_image_name(rel) or (inside and rel in self.by_image):
            return f"links to an image ({rel})"
        return None

    def _write_refusal(self, caption: str, real: str) -> str | None:
        """Why the caption file `caption` (real path `real`) must not be written (None: it
        may be): only a caption-named file inside the dataset that no other caption shares."""
        root = str(self.root)
        if real != f"{root}/{caption}":
            try:
                resolve_inside(self.root, self.root / caption)
            except UnsafePathError as exc:
                return str(exc)
        why = self._link_refusal(real)
        if why is not None:
            return f"{why}: not written"
        rel = real[len(root) + 1 :]
        if rel == caption:
            return None
        if rel in self._caption_set or rel in self.by_image:
            return f"links to {rel}, the caption of another image: not written"
        if not rel.endswith(self.strategy.caption.extension):
            return f"links to {rel}, which is not a caption file: not written"
        others = [c for c in self._link_targets.get(real, ()) if c != caption]
        if others:
            return f"links to {rel}, as {others[0]} does: not written (both would change)"
        return None

    def _current(self, caption: str) -> tuple[Path, bytes | None]:
        """Where a caption is written and its bytes there now (None: absent), checked right
        before writing; `CaptionRefused` or `OSError` when it must not be written."""
        real = os.path.realpath(f"{self.root}/{caption}")
        why = self._write_refusal(caption, real)
        if why is not None:
            raise CaptionRefused(why)
        try:
            return Path(real), _read_file(real, follow=True, stat_first=True)
        except FileNotFoundError:
            return Path(real), None
        except NotRegularFileError as exc:
            raise CaptionRefused(f"{exc.strerror}: not written") from None

    def _set_source(self, caption: str, data: bytes | None) -> None:
        if data is None:
            self.sources[caption] = ()
            return
        decoded = decode_caption(data)
        for warning in decoded.warnings:
            self.problems.append(Problem(caption, warning))
        assert self._parser is not None
        self.sources[caption] = self._parser.parse(decoded.text)

    # ---- reading ----------------------------------------------------------------------------

    def source_tags(self, image: str) -> tuple[str, ...]:
        """The image's tags from its caption file, before per-image edits."""
        return self.sources.get(self.by_image[image].caption, ())

    def image_tags(self, image: str, include_removed: bool = False) -> tuple[str, ...]:
        """The image's tags with its per-image edits applied (what is rendered).

        `include_removed` keeps the tags removed from this image (the checklist shows them
        struck through, so they can be restored)."""
        tags = self.source_tags(image)
        edits = self.state.image_edits.get(image)
        if edits is None:
            return tags
        if include_removed:
            kept = list(tags)
        else:
            kept = [t for t in tags if t.casefold() not in edits.removed]
        present = {t.casefold() for t in kept}
        kept.extend(t for t in edits.added if t.casefold() not in present)
        return tuple(kept)

    def removed_on(self, image: str, rows: Iterable[str] | None = None) -> frozenset[str]:
        """The tags removed from one image (of `rows`, default: all its tags with the removed
        ones), as the checklist shows them struck through."""
        kept = set(self.image_tags(image))
        every = self.image_tags(image, include_removed=True) if rows is None else rows
        return frozenset(t for t in every if t not in kept)

    def unsorted_count(self, image: str) -> int:
        """How many of an image's tags are in no bucket yet."""
        bucket = self.strategy.effective_bucket
        return sum(1 for t in self.image_tags(image) if bucket(t) == UNSORTED)

    def is_changed_on_disk(self, image: str | None) -> bool:
        """Whether another tool changed this image's caption since lora-curator read it."""
        return image is not None and self.by_image[image].caption in self.changed_on_disk

    def caption_path(self, image: str) -> str:
        """The caption file of an image, relative to the dataset."""
        return self.by_image[image].caption

    def warnings_by_image(self) -> dict[str, list[str]]:
        """The problems found at open, by image (a shared caption's problem on each of its
        images); those of captions changed on disk are left out: they are shown live and go
        away once adopted or overwritten."""
        warnings: dict[str, list[str]] = {}
        by_caption: dict[str, list[str]] = {}
        for entry in self.images:
            by_caption.setdefault(entry.caption, []).append(entry.image)
        for problem in self.problems:
            if problem.path in self.changed_on_disk:
                continue
            for image in by_caption.get(problem.path, [problem.path]):
                if image in self.by_image:
                    warnings.setdefault(image, []).append(problem.message)
        return warnings

    def tag_counts(self) -> Counter[str]:
        """Number of images each tag is on (per-image edits included)."""
        if self._counts is None:
            if self.state.image_edits:
                tags = map(self.image_tags, (e.image for e in self.images))
            else:  # the common case, in C: every image's source as it is
                tags = map(self.sources.__getitem__, (e.caption for e in self.images))
            self._counts = Counter(chain.from_iterable(tags))
        return self._counts

    def renderer(self) -> Renderer:
        """A renderer for the working strategy (rebuilt when the strategy changes)."""
        r = self._renderer
        if r is None or r.strategy is not self.strategy:
            freq: Counter[str] | None = None
            if self.strategy.caption.order == "frequency":
                # Counted as written: an aliased tag counts for the tag it becomes.
                freq = Counter()
                for tag, n in self.tag_counts().items():
                    freq[self.strategy.alias_of(tag)] += n
            r = self._renderer = Renderer(self.strategy, freq)
            self._concept_renderers = {}
        return r

    def concepts_of(self, image: str) -> list[Concept]:
        """The concepts an image belongs to (by folder or tag); the first one renders it."""
        return self.strategy.concepts_of(image, self.image_tags(image))

    def concept_of(self, image: str) -> Concept | None:
        """The concept that renders this image (None: the strategy alone)."""
        if not self.strategy.concepts:
            return None
        found = self.concepts_of(image)
        return found[0] if found else None

    def renderer_for(self, image: str) -> Renderer:
        """The renderer of one image: its concept's, or the strategy's."""
        base = self.renderer()
        concept = self.concept_of(image)
        if concept is None:
            return base
        r = self._concept_renderers.get(concept.name)
        if r is None or r.concept is not concept:
            r = self._concept_renderers[concept.name] = Renderer(
                self.strategy, base.frequency, concept
            )
        return r

    def caption_for(self, image: str) -> str:
        """The caption the working strategy renders for one image ("" = empty caption)."""
        return self.renderer_for(image).render(self.image_tags(image))

    def render_all(self) -> list[tuple[ImageEntry, str]]:
        """Every image with its rendered caption, in image order."""
        if self.strategy.concepts:
            return [(e, self.caption_for(e.image)) for e in self.images]
        renderer = self.renderer()
        return [(e, renderer.render(self.image_tags(e.image))) for e in self.images]

    def unsorted_tags(self) -> list[str]:
        """Tags of the dataset in no bucket (after aliases), most frequent first."""
        strategy = self.strategy
        counts = self.tag_counts()
        return sorted(
            (t for t in counts if strategy.effective_bucket(t) == UNSORTED),
            key=lambda t: (-counts[t], t.casefold()),
        )

    def will_change(self, image: str) -> bool:
        """Whether saving would change this image's caption file."""
        return self._save_outcome(self.by_image[image])[0] == "write"

    def _save_outcome(self, entry: ImageEntry) -> tuple[str, bytes | str]:
        """What a save does with one image's caption, before touching the disk:
        ("write", bytes) | ("unchanged", "") | ("collision" | "empty", "") | ("refuse", why)."""
        caption = entry.caption
        if caption in self.scan.collisions:
            return "collision", ""
        text = self.caption_for(entry.image)
        if not text:
            return "empty", ""
        data = text.encode("utf-8")
        if content_hash(data) == self.disk_hash.get(caption):
            return "unchanged", ""
        why = self.unreadable.get(caption)
        if why is not None:
            if why.startswith("cannot read"):
                return "refuse", "could not be read: not written (its tags would be lost)"
            return "refuse", why
        if caption in self.changed_on_disk:
            return "refuse", _changed_message(self.disk_hash.get(caption) is None)
        return "write", data

    # ---- edits ------------------------------------------------------------------------------

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Make an edit: committed to the state, then applied to the working state.

        A `StateError` when it cannot be committed (disk full, ...): then nothing changed,
        neither the working state nor the log."""
        why = check_edit(Edit(0, kind, payload))
        if why is not None:  # a bug of the caller: never let it into the log
            raise ValueError(f"invalid {kind} edit: {why}")
        if self.store is not None and not self.store.read_only:
            edit = self.store.append_edit(kind, payload)
        else:
            edit = Edit(0, kind, payload)
        apply_edit(self.state, edit)
        self.logged_strategy = self.state.strategy
        if kind in ("image_tags", "adopt", "strategy"):
            self._counts = None
        self.has_strategy = True

    def set_buckets(self, changes: list[tuple[str, str]], concept: str = "") -> None:
        """Put tags in buckets (`unsorted` takes them out) of the strategy, or of the concept
        named `concept` (there `unsorted` means: the strategy's bucket); one undo step."""
        for _, bucket in changes:
            if bucket != UNSORTED and bucket not in BUCKETS:
                raise ValueError(f"unknown bucket {bucket!r}")
        if concept and self.strategy.concept_named(concept) is None:
            raise ValueError(f"no concept named {concept!r}")
        payload: dict[str, Any] = {"changes": [list(c) for c in changes]}
        if concept:
            payload["concept"] = concept
        self.record("buckets", payload)

    def add_concept(self, concept: Concept) -> None:
        """Add a concept (or replace the one of the same name); one undo step."""
        self.record("concept", {"concept": concept_to_dict(concept)})

    def set_pattern(self, pattern: str) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; use one of {', '.join(PATTERNS)}")
        self.record("pattern", {"value": pattern})

    def set_trigger(self, trigger: str) -> None:
        self.record("trigger", {"value": trigger.strip()})

    def use_strategy(self, strategy: Strategy, ref: str = "") -> None:
        """Make `strategy` the dataset's working strategy (an undoable edit)."""
        store = self.store
        writable = store is not None and not store.read_only
        if writable and store.base_strategy() is None and store.last_seq() == 0:
            # The first strategy of a dataset is its base, not an edit.
            store.set_base_strategy(strategy_to_dict(strategy), ref)
            self.base = self.logged_strategy = self.state.strategy = strategy
            self.state.profile_ref = ref
            self.has_strategy = True
            return
        logged = self.logged_strategy
        if logged is not None and strategy_to_dict(strategy) == strategy_to_dict(logged):
            self.state.strategy = strategy
            self.state.profile_ref = ref or self.state.profile_ref
            return
        self.record("strategy", {"profile": strategy_to_dict(strategy), "ref": ref})

    def edit_image_tags(
        self,
        image: str,
        remove: Iterable[str] = (),
        restore: Iterable[str] = (),
        add: Iterable[str] = (),
    ) -> None:
        """Remove, restore or add tags on one image only."""
        self.record(
            "image_tags",
            {"image": image, "remove": list(remove), "restore": list(restore), "add": list(add)},
        )

    def adopt_disk_version(self, caption: str) -> None:
        """Take the caption file's current content (changed by another tool) as its source.

        An undoable edit: the previous source stays in the history."""
        try:
            data = self._read_one(f"{self.root}/{caption}", caption)
        except CaptionRefused as exc:
            # Gone unreadable since: nothing to adopt, and never written.
            self.changed_on_disk.discard(caption)
            self._mark_unreadable(caption, str(exc))
            return
        except OSError as exc:
            self.changed_on_disk.discard(caption)
            self._mark_unreadable(
                caption, f"cannot read ({exc.strerror}): treated as no tags and never written"
            )
            return
        if self.store is not None and not self.store.read_only:
            edit = self.store.append_edit("adopt", {"caption": caption}, blobs={caption: data})
            self.store.set_known([(caption, content_hash(data))])
        else:
            edit = Edit(0, "adopt", {"caption": caption})
        apply_edit(self.state, edit)
        self._set_source(caption, data)
        self.disk_hash[caption] = content_hash(data)
        self.changed_on_disk.discard(caption)
        self._counts = None

    def keep_ours(self, caption: str) -> None:
        """Let the next save overwrite a caption file changed by another tool."""
        if self.store is not None and not self.store.read_only:
            self.store.set_known([(caption, self.disk_hash.get(caption))])
        self.changed_on_disk.discard(caption)

    def undo(self) -> bool:
        """Step back one edit; False when there is nothing to undo."""
        return self._move(-1)

    def redo(self) -> bool:
        """Step forward one edit; False when there is nothing to redo."""
        return self._move(+1)

    def _move(self, step: int) -> bool:
        store = self.store
        if store is None or store.read_only:
            return False
        cursor = store.cursor()
        target = cursor + step
        if target < 0 or target > store.last_seq():
            return False
        # Everything is read and checked before the cursor moves: a failure (a damaged
        # edit, a full disk) leaves both the log and the working state as they were.
        edits = store.edits(target)
        _check_edits(store, edits)
        state = replay(self.base, edits, store.meta("profile_ref") or "")
        before = dict(self.state.adopted)
        sources: dict[str, bytes | None] = {}
        for caption in set(before) | set(state.adopted):
            seq = state.adopted.get(caption)
            if seq != before.get(caption):
                if seq is not None:
                    sources[caption] = store.blob(seq, caption)
                else:
                    sources[caption] = store.originals([caption]).get(caption)
        store.move_cursor(target)
        self.state = state
        self.logged_strategy = self.state.strategy
        for caption, data in sources.items():
            self._set_source(caption, data)
        self._counts = None
        return True

    @property
    def unsaved(self) -> bool:
        """True when the working state differs from what was last saved."""
        if self.store is None:
            return False
        return self.store.cursor() != self.store.saved_cursor()

    def edit_cursor(self) -> int:
        """The position in the edit log the working state is at (0 without a state)."""
        return self.store.cursor() if self.store is not None else 0

    def mark_saved(self, cursor: int | None = None) -> None:
        """Record that the captions on disk are the working state at `cursor` (default: now);
        a save passes the cursor it rendered, so edits made meanwhile stay unsaved.
        `StateError` when the state cannot record it."""
        if self.store is not None:
            self.store.mark_saved(cursor)

    @property
    def profile_ref(self) -> str:
        """The profile file the working strategy came from ("" = none yet)."""
        return self.state.profile_ref

    def override_strategy(self, strategy: Strategy) -> None:
        """Render with `strategy` for this session only (e.g. `apply --dry-run --pattern`):
        nothing is recorded; `use_strategy` makes it the dataset's working strategy."""
        self.state.strategy = strategy

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, overwrite_changed: bool = False, adopt_changed: bool = False) -> ApplyReport:
        """Write every caption whose bytes change, atomically; report the rest.

        A caption file changed by another tool since lora-curator last read or wrote it is
        never overwritten silently: it fails, unless `adopt_changed` (its content becomes the
        source first) or `overwrite_changed` (ours wins). Each file is checked again right
        before it is written: one changed (created, deleted) since it was read joins
        `changed_on_disk` exactly as at open."""
        for _ in range(2):  # a second round settles what the check before writing found
            for caption in sorted(self.changed_on_disk):
                if adopt_changed:
                    self.adopt_disk_version(caption)
                elif overwrite_changed:
                    self.keep_ours(caption)
            report = ApplyReport()
            plan = self._plan(report)
            if not self.changed_on_disk or not (adopt_changed or overwrite_changed):
                break
        self._write(plan, report)
        return report

    def _plan(self, report: ApplyReport) -> list[tuple[str, Path, bytes]]:
        """The writes a save makes, each file checked on disk now; the rest reported."""
        plan: list[tuple[str, Path, bytes]] = []
        seen_captions: set[str] = set()
        targets: dict[Path, str] = {}
        plan_index: dict[str, int] = {}  # caption → its place in the plan
        settled: list[tuple[str, bytes | None]] = []
        for entry in self.images:
            caption = entry.caption
            outcome, detail = self._save_outcome(entry)
            if outcome == "write":
                assert isinstance(detail, bytes)
                try:
                    target, current = self._current(caption)
                except CaptionRefused as exc:
                    report.failed.append((caption, str(exc)))
                    continue
                except OSError as exc:
                    report.failed.append((caption, f"not written: {exc.strerror or exc}"))
                    continue
                digest = content_hash(current)
                if digest == content_hash(detail):  # another tool wrote just what we would
                    self.disk_hash[caption] = digest
                    settled.append((caption, digest))
                    report.unchanged.append(caption)
                    continue
                if digest != self.disk_hash.get(caption):
                    # Changed, created or deleted since it was read: flagged as at open.
                    gone = current is None
                    self.disk_hash[caption] = digest
                    self.changed_on_disk.add(caption)
                    self.problems.append(Problem(caption, _changed_message(gone)))
                    report.failed.append((caption, _changed_message(gone)))
                    continue
                if _is_read_only(target):
                    report.failed.append(
                        (caption, "read-only file: not written (make it writable to let it change)")
                    )
                    continue
                first = targets.get(target)
                if first is not None:  # two captions leading to one file: neither written
                    report.failed.append((caption, f"the same file as {first}: not written"))
                    if plan_index.pop(first, None) is not None:
                        report.failed.append((first, f"the same file as {caption}: not written"))
                    continue
                targets[target] = caption
                plan_index[caption] = len(plan)
                plan.append((caption, target, detail))
            elif outcome == "unchanged":
                report.unchanged.append(caption)
            elif outcome == "collision":
                if caption not in seen_captions:  # one line per shared caption file
                    report.skipped.append((caption, "stem collision: not written"))
                    seen_captions.add(caption)
            elif outcome == "empty":
                report.skipped.append((entry.image, "empty caption: file left as is"))
            else:
                report.failed.append((caption, str(detail)))
        if settled and self.store is not None and not self.store.read_only:
            self.store.set_known(settled)
        kept = set(plan_index.values())
        return [w for i, w in enumerate(plan) if i in kept]

    def _write(self, plan: list[tuple[str, Path, bytes]], report: ApplyReport) -> None:
        store = self.store
        if store is not None:
            store.set_pending((c, content_hash(d)) for c, _, d in plan)
        done: list[tuple[str, bytes | None]] = []
        folders: set[Path] = set()
        for caption, target, data in plan:
            try:
                write_file_atomic(target, data)
            except OSError as exc:
                # The old bytes are left (the temp file is removed): their hash stays known.
                report.failed.append((caption, f"not written: {exc.strerror or exc}"))
                continue
            folders.add(target.parent)
            digest = content_hash(data)
            done.append((caption, digest))
            self.disk_hash[caption] = digest
            self.changed_on_disk.discard(caption)
            report.written.append(caption)
        for folder in folders:
            fsync_folder(folder)
        if store is not None:
            written = {c for c, _ in done}
            kept = [(c, self.disk_hash.get(c)) for c, _, _ in plan if c not in written]
            store.set_known(done + kept)

    def restore(self) -> ApplyReport:
        """Put every original caption file back byte for byte (removing those that did not
        exist). The working strategy and edits are kept.

        Only a file whose bytes are what lora-curator last wrote (or still the original) is
        touched: one another tool changed or created is reported and kept, and the rules of
        `apply` hold (never through a link into an image, the state or outside the dataset)."""
        report = ApplyReport()
        if self.store is None:
            return report
        records = self.store.file_records()
        done: list[tuple[str, bytes | None]] = []
        for caption, original in sorted(self.store.originals().items()):
            try:
                target, current = self._current(caption)
            except CaptionRefused as exc:
                report.failed.append((caption, str(exc).replace("not written", "not restored")))
                continue
            except OSError as exc:
                report.failed.append((caption, f"cannot read: {exc.strerror or exc}"))
                continue
            if current == original:
                report.unchanged.append(caption)
                continue
            record = records.get(caption)
            digest = content_hash(current)
            # Bytes another tool put there are never replaced nor removed; a file that is gone
            # is simply put back (nothing on disk is lost by that).
            ours = current is None or (
                record is not None
                and (
                    digest == record.known_hash
                    or (record.pending_hash is not None and digest == record.pending_hash)
                )
            )
            if not ours:
                report.failed.append(
                    (
                        caption,
                        "changed by another tool since lora-curator last wrote it: "
                        "not restored (kept as it is)",
                    )
                )
                continue
            try:
                if original is None:
                    target.unlink()
                else:
                    write_file_atomic(target, original)
            except OSError as exc:
                report.failed.append((caption, f"not restored: {exc.strerror or exc}"))
                continue
            digest = content_hash(original)
            done.append((caption, digest))
            self.disk_hash[caption] = digest
            self.changed_on_disk.discard(caption)
            report.written.append(caption)
        self.store.set_known(done)
        return report
