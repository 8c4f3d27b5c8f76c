"""A dataset opened for curation: scan + state + sources + working strategy.

The CLI and the TUI both work through a `Workspace`; it is the only way they read or write
caption files. The working state is the base strategy plus the edit log up to its cursor
(`edits.replay`); writing and restoring captions are `writeback`'s, what a save writes is
`session`'s. This module opens, reads, edits, and answers the questions the UI asks.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import chain
from pathlib import Path
from typing import Any

from tui.core import writeback
from tui.core.captions import TagParser, decode_caption
from tui.core.dataset import (
    IMAGE_EXTENSIONS,
    MAX_CAPTION_BYTES,
    STATE_DIR,
    CaptionRefused,
    ImageEntry,
    NotRegularFileError,
    Problem,
    ScanResult,
    check_root,
    file_kind,
    read_caption_file,
    scan_dataset,
)
from tui.core.edits import (
    EditError,
    ImageEdits,
    WorkingState,
    apply_edit,
    check_edit,
    replay,
)
from tui.core.profile import ProfileError, concept_to_dict, strategy_from_dict, strategy_to_dict
from tui.core.store import Edit, Store, content_hash
from tui.core.strategy import BUCKETS, PATTERNS, UNSORTED, Concept, Renderer, Strategy
from tui.core.writeback import ApplyReport
from tui.core.writer import UnsafePathError, remove_temp_file, resolve_inside

# Names of the modules split out of this one, still importable from here.
__all__ = [
    "MAX_CAPTION_BYTES",
    "ApplyReport",
    "CaptionRefused",
    "EditError",
    "ImageEdits",
    "Problem",
    "Progress",
    "WorkingState",
    "Workspace",
    "apply_edit",
    "check_edit",
    "replay",
]

# Progress callback: (phase, done, total or 0 when unknown).
Progress = Callable[[str, int, int], None]


def _is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and (name[dot:].lower() in IMAGE_EXTENSIONS or name[dot:].lower() == ".avif")


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
            return read_caption_file(path)
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
            return read_caption_file(real, follow=True, stat_first=True)
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
        return writeback.save_outcome(self, self.by_image[image])[0] == "write"

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

    def write_refusal(self, caption: str, real: str) -> str | None:
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

    def apply(self, overwrite_changed: bool = False, adopt_changed: bool = False) -> ApplyReport:
        """Write every caption whose bytes change, atomically; report the rest (see
        `writeback.apply`)."""
        return writeback.apply(self, overwrite_changed, adopt_changed)

    def restore(self) -> ApplyReport:
        """Put every original caption file back byte for byte (see `writeback.restore`)."""
        return writeback.restore(self)
