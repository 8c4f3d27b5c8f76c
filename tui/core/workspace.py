"""A dataset opened for curation: scan + state + sources + working strategy.

The CLI and the TUI both work through a `Workspace`; it is the only way they read or write
caption files. The working state is the base strategy plus the edit log up to its cursor.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

from tui.core.captions import TagParser, decode_caption
from tui.core.dataset import ImageEntry, ScanResult, check_root, scan_dataset
from tui.core.profile import strategy_from_dict, strategy_to_dict
from tui.core.store import Edit, Store, content_hash
from tui.core.strategy import BUCKETS, PATTERNS, UNSORTED, Renderer, Strategy
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


def apply_edit(state: WorkingState, edit: Edit) -> None:
    """Apply one edit of the log to the working state (in place)."""
    p = edit.payload
    kind = edit.kind
    if kind == "buckets":
        _apply_bucket_changes(state, p["changes"])
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
    # Unknown kinds (from a newer version) are ignored rather than lost.


def _apply_bucket_changes(state: WorkingState, changes: Iterable[list[str]]) -> None:
    """Move tags between buckets: one copy of the bucket table, whatever the number of changes."""
    buckets = dict(state.strategy.buckets)
    spelling = {t.casefold(): t for t in buckets}  # lookups are case-insensitive
    for tag, bucket in changes:
        key = tag.casefold()
        old = spelling.pop(key, None)
        if old is not None:
            del buckets[old]
        if bucket != UNSORTED:
            buckets[tag] = bucket
            spelling[key] = tag
    state.strategy = replace(state.strategy, buckets=buckets)


def replay(base: Strategy, edits: Iterable[Edit], base_ref: str = "") -> WorkingState:
    """The working state after `edits`, starting from `base`."""
    state = WorkingState(strategy=base, profile_ref=base_ref)
    # Consecutive bucket edits are applied together: replaying thousands of steps stays fast.
    pending: list[list[str]] = []
    for edit in edits:
        if edit.kind == "buckets":
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


def _read_file(path: str) -> bytes:
    """A file's bytes with the fewest system calls (captions are small; this is the hot
    loop of opening a dataset)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    return b"".join(chunks) if len(chunks) > 1 else chunks[0]


def _is_read_only(path: Path) -> bool:
    """A file nobody may write (mode bits): the user asked for it to stay as it is."""
    try:
        return not os.stat(path).st_mode & 0o222
    except OSError:
        return False


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
        self.unreadable: set[str] = set()  # captions that could not be read: never written
        self.problems: list[Problem] = []
        # The working strategy as the edit log has it (None: the log holds none yet); a
        # session override (`--profile`) differs from it until `use_strategy` records it.
        self.logged_strategy: Strategy | None = state.strategy if has_strategy else None
        self._counts: Counter[str] | None = None
        self._renderer: Renderer | None = None
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
        base_dict = store.base_strategy() if store is not None else None
        has_strategy = base_dict is not None
        if base_dict is not None:
            base = strategy_from_dict(base_dict, "working strategy")
        else:
            base = Strategy(name=root_path.name)
        base_ref = (store.meta("profile_ref") or "") if store is not None else ""
        state = replay(base, store.edits() if store is not None else [], base_ref)
        has_strategy = has_strategy or bool(store is not None and store.cursor())
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
        for i, caption in enumerate(captions):
            try:
                data: bytes | None = _read_file(f"{root}/{caption}")
            except FileNotFoundError:
                data = None
            except OSError as exc:
                self.problems.append(
                    Problem(
                        caption,
                        f"cannot read ({exc.strerror}): treated as no tags and never written",
                    )
                )
                self.sources[caption] = ()
                self.disk_hash[caption] = None
                self.unreadable.add(caption)
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
        return r

    def caption_for(self, image: str) -> str:
        """The caption the working strategy renders for one image ("" = empty caption)."""
        return self.renderer().render(self.image_tags(image))

    def render_all(self) -> list[tuple[ImageEntry, str]]:
        """Every image with its rendered caption, in image order."""
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
        return self._save_outcome(self.by_image[image], self.renderer())[0] == "write"

    def _save_outcome(self, entry: ImageEntry, renderer: Renderer) -> tuple[str, bytes | str]:
        """What a save does with one image's caption, before touching the disk:
        ("write", bytes) | ("unchanged", "") | ("collision" | "empty", "") | ("refuse", why)."""
        caption = entry.caption
        if caption in self.scan.collisions:
            return "collision", ""
        text = renderer.render(self.image_tags(entry.image))
        if not text:
            return "empty", ""
        data = text.encode("utf-8")
        if content_hash(data) == self.disk_hash.get(caption):
            return "unchanged", ""
        if caption in self.unreadable:
            return "refuse", "could not be read: not written (its tags would be lost)"
        if caption in self.changed_on_disk:
            return "refuse", (
                "changed on disk since lora-curator last wrote it: not overwritten "
                "(--adopt takes its tags as the source, --overwrite writes ours)"
            )
        return "write", data

    # ---- edits ------------------------------------------------------------------------------

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Make an edit: applied to the working state and committed to the state at once."""
        if self.store is not None and not self.store.read_only:
            edit = self.store.append_edit(kind, payload)
        else:
            edit = Edit(0, kind, payload)
        apply_edit(self.state, edit)
        self.logged_strategy = self.state.strategy
        if kind in ("image_tags", "adopt", "strategy"):
            self._counts = None
        self.has_strategy = True

    def set_buckets(self, changes: list[tuple[str, str]]) -> None:
        """Put tags in buckets (`unsorted` takes them out); one undo step."""
        for _, bucket in changes:
            if bucket != UNSORTED and bucket not in BUCKETS:
                raise ValueError(f"unknown bucket {bucket!r}")
        self.record("buckets", {"changes": [list(c) for c in changes]})

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
        path = self.root / caption
        data = path.read_bytes() if path.exists() else None
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
        store.move_cursor(target)
        before = dict(self.state.adopted)
        self.state = replay(self.base, store.edits(target), store.meta("profile_ref") or "")
        self.logged_strategy = self.state.strategy
        for caption in set(before) | set(self.state.adopted):
            seq = self.state.adopted.get(caption)
            if seq != before.get(caption):
                data = store.blob(seq, caption) if seq is not None else None
                if seq is None:
                    data = store.originals([caption]).get(caption)
                self._set_source(caption, data)
        self._counts = None
        return True

    @property
    def unsaved(self) -> bool:
        """True when the working state differs from what was last saved."""
        if self.store is None:
            return False
        return self.store.cursor() != self.store.saved_cursor()

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, overwrite_changed: bool = False, adopt_changed: bool = False) -> ApplyReport:
        """Write every caption whose bytes change, atomically; report the rest.

        A caption file changed by another tool since lora-curator last wrote it is never
        overwritten silently: it fails, unless `adopt_changed` (its content becomes the source
        first) or `overwrite_changed` (ours wins)."""
        report = ApplyReport()
        for caption in sorted(self.changed_on_disk):
            if adopt_changed:
                self.adopt_disk_version(caption)
            elif overwrite_changed:
                self.keep_ours(caption)
        plan: list[tuple[str, Path, bytes]] = []
        renderer = self.renderer()
        seen_captions: set[str] = set()
        for entry in self.images:
            caption = entry.caption
            outcome, detail = self._save_outcome(entry, renderer)
            if outcome == "write":
                assert isinstance(detail, bytes)
                try:
                    target = resolve_inside(self.root, self.root / caption)
                except UnsafePathError as exc:
                    report.failed.append((caption, str(exc)))
                    continue
                if _is_read_only(target):
                    report.failed.append(
                        (caption, "read-only file: not written (make it writable to let it change)")
                    )
                    continue
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
        self._write(plan, report)
        return report

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
            # A write that failed leaves the old bytes: their hash stays the known one.
            written = {c for c, _ in done}
            kept = [(c, self.disk_hash.get(c)) for c, _, _ in plan if c not in written]
            store.set_known(done + kept)

    def restore(self) -> ApplyReport:
        """Put every original caption file back byte for byte (removing those that did not
        exist). The working strategy and edits are kept."""
        report = ApplyReport()
        if self.store is None:
            return report
        done: list[tuple[str, bytes | None]] = []
        for caption, original in sorted(self.store.originals().items()):
            path = self.root / caption
            try:
                target = resolve_inside(self.root, path)
            except UnsafePathError as exc:
                report.failed.append((caption, str(exc)))
                continue
            try:
                current = target.read_bytes()
            except FileNotFoundError:
                current = None
            except OSError as exc:
                report.failed.append((caption, f"cannot read: {exc.strerror}"))
                continue
            if current == original:
                report.unchanged.append(caption)
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
