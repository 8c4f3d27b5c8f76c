"""A dataset opened for curation: scan + state + sources + working strategy.

The CLI and the TUI both work through a `Workspace`; it is the only way they read or write
caption files. The working state is the base strategy plus the edit log up to its cursor
(`edits.replay`); writing and restoring captions are `writeback`'s, what a save writes is
`session`'s. This module opens, reads, edits, and answers the questions the UI asks.
"""

from __future__ import annotations

import errno
import math
import os
import time
from array import array
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from itertools import accumulate, chain, pairwise, repeat
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from tui.core import writeback
from tui.core.captions import TagParser, decode_caption, normalize_tag, pack_ids, unpack_ids
from tui.core.dataset import (
    IMAGE_EXTENSIONS,
    MAX_CAPTION_BYTES,
    RACY_NS,
    STATE_DIR,
    CaptionRefused,
    ImageEntry,
    NotRegularFileError,
    Problem,
    ScanResult,
    check_root,
    file_kind,
    read_caption_file,
    read_caption_stat,
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
from tui.core.heap import collections_paused, give_back_free_memory
from tui.core.preread import Preread
from tui.core.prestat import Prestat, stat_keys
from tui.core.profile import ProfileError, concept_to_dict, strategy_from_dict, strategy_to_dict
from tui.core.reopen import (
    ABSENT,
    DIGEST_SIZE,
    NO_DIGEST,
    NOT_HELD,
    STAT_SIZE,
    ReopenRecord,
    encode_names,
    pack_record,
    parse_record,
)
from tui.core.scores import (
    MODEL_SPEC_KEY,
    QUANT,
    SCORES_FILE,
    ScoreStore,
    ScoreStoreError,
    unpack_pairs,
)
from tui.core.store import (
    NO_STAT,
    SEEN_HEADER,
    SEEN_STAT,
    SEEN_STAT_SIZE,
    Edit,
    StateError,
    Store,
    content_hash,
    pack_seen,
    stat_key,
)
from tui.core.strategy import BUCKETS, PATTERNS, UNSORTED, Concept, Renderer, Strategy
from tui.core.tagger.settings import (
    CATEGORY_CHARACTER,
    CATEGORY_RATING,
    TaggerSettings,
    select_tags,
    tagger_settings_to_dict,
)
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


_STAT_END = SEEN_STAT_SIZE
_BLOCK = 512  # captions a reopen stats and compares with its record at once
# Captions from which a reopen takes its stats in a second process (`prestat`): below, the
# stats take less time than starting it.
PRESTAT_MIN = 20_000
# Captions from which a first open has a second process read half of them (`preread`), and
# the captions it reads at once.
PREREAD_MIN = 5_000
_PREREAD_BLOCK = 512
_IMAGE, _CAPTION = itemgetter(0), itemgetter(1)  # of an `ImageEntry`
_DIGEST_END = SEEN_STAT_SIZE + 16


def ids_below(packed: bytes, limit: int) -> bool:
    """Whether every packed id is below `limit`, checked with byte operations in C (a
    million captions hold tens of millions of ids): the bytes above the highest byte of
    `limit - 1` must be zero, that byte no larger than its own, and only the ids whose
    highest byte equals it are compared one by one (the last few tags of the table)."""
    count = len(packed) // 4
    if not count:
        return True
    top = limit - 1
    if top < 0:
        return False
    high = (top.bit_length() - 1) // 8 if top else 0
    if high >= 4:
        return True
    for k in range(high + 1, 4):
        if packed[k::4].count(0) != count:
            return False
    column = packed[high::4]
    top_byte = (top >> (8 * high)) & 255
    if column.translate(bytes(int(v > top_byte) for v in range(256))).count(1):
        return False
    if (top + 1) % (1 << (8 * high)) == 0:
        return True  # an id whose highest byte is the top's is below the limit whatever it is
    mark = bytes((top_byte,))
    at = column.find(mark)
    while at >= 0:
        if int.from_bytes(packed[4 * at : 4 * at + 4], "little") > top:
            return False
        at = column.find(mark, at + 1)
    return True


def count_ids(packed: bytes) -> dict[int, int]:
    """How many times each id occurs in packed ids, in order of first appearance (as a
    `Counter` of the tags would have them). With NumPy installed (the tagger's), a large
    dataset's millions of ids are counted in C."""
    if len(packed) >= 4 * _NUMPY_FROM:
        try:
            import numpy as np
        except ImportError:
            np = None  # type: ignore[assignment]
        if np is not None:
            ids = np.frombuffer(packed, dtype="<u4")
            counts = np.bincount(ids)
            present = np.flatnonzero(counts)
            first = np.empty(len(counts), dtype=np.int64)
            # Assigned back to front: each id keeps the place where it first occurs.
            first[ids[::-1]] = np.arange(len(ids) - 1, -1, -1)
            order = present[np.argsort(first[present], kind="stable")]
            return dict(zip(order.tolist(), counts[order].tolist(), strict=True))
    return Counter(unpack_ids(packed))


_NUMPY_FROM = 1_000_000


class _Sources(Mapping[str, tuple[str, ...]]):
    """caption → source tags, decoded from packed ids when asked (one `str` per tag of
    the dataset, shared by every caption that has it)."""

    def __init__(self, packed: dict[str, bytes], names: list[str]) -> None:
        self._packed = packed
        self._names = names

    def __getitem__(self, caption: str) -> tuple[str, ...]:
        return tuple(map(self._names.__getitem__, unpack_ids(self._packed[caption])))

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)


def _key_type(labels: int) -> str:
    return "I" if (QUANT + 1) * labels <= 0xFFFFFFFF else "Q"


def _pack_keys(blob: bytes, wide: bool, rank: list[int]) -> array:
    """An image's stored pairs as sorted ints `(QUANT - q) * labels + rank`, `rank` the
    label's place by name: by descending score, ties by name (the order of `select_tags`);
    4 bytes each (8 for models of more than 65,535 labels)."""
    n = len(rank)
    indexes, quantised = unpack_pairs(blob, wide)
    keys = sorted(
        (QUANT - q) * n + rank[i] for i, q in zip(indexes, quantised, strict=True) if i < n
    )
    return array(_key_type(n), keys)


def _label_spellings(labels: list[tuple[str, str, int]], underscores: str) -> list[str]:
    """The labels spelled as captions are: converted by the parser's rule, or as the CSV has
    them with `underscores = "keep"`."""
    if underscores == "keep":
        return [normalize_tag(raw, "keep") for _, raw, _ in labels]
    return [name for name, _, _ in labels]


def _ranks(names: list[str]) -> tuple[list[int], list[int]]:
    """(label index → place by name, place by name → label index)."""
    by_name = sorted(range(len(names)), key=names.__getitem__)
    rank = [0] * len(names)
    for r, i in enumerate(by_name):
        rank[i] = r
    return rank, by_name


def _least_quantised(threshold: float) -> int:
    """The least stored (quantised) score `q` with `q / QUANT >= threshold`: the fixed
    threshold of `select_tags`, exactly, in the stored units."""
    q = max(0, min(QUANT + 1, math.ceil(threshold * QUANT)))
    while q > 0 and (q - 1) / QUANT >= threshold:
        q -= 1
    while q <= QUANT and q / QUANT < threshold:
        q += 1
    return q


def _pack_record(
    signature: str,
    kept: ReopenRecord | None,
    aligned: bool,
    names: bytes,
    captions: list[str],
    general: set[str],
    gone: list[str],
    unrecorded: list[str],
    skip: set[str],
    rows: dict[str, tuple[Any, ...]],
    fresh: dict[str, bytes | None],
    fixed: dict[str, bytes | None],
    packed: dict[str, bytes],
    disk_hash: dict[str, bytes | None],
) -> bytes:
    """The reopen record of an open (see `tui.core.reopen`). What was taken from the `kept`
    one stays as it was; a caption opened the general way is held when nothing about it
    needs a look next time: its stat is kept, what is on disk is what the state knows was
    written, and it is not in `skip` (adopted, a link, special, unreadable, warned about or
    changed on disk)."""
    stats: list[bytes] = []
    digests: list[bytes] = []
    all_tags: list[bytes] = []
    counts = array("I")
    kept_stats = kept.stats if kept is not None else b""
    kept_digests = kept.digests if kept is not None else b""
    index: dict[str, int] = {}
    if kept is not None and not aligned:
        index = {name: j for j, name in enumerate(kept.caption_names())}
    held = True  # every caption is held
    for i, caption in enumerate(captions):
        tags = packed.get(caption, b"")
        stat: bytes | None = NOT_HELD
        digest: bytes | None = NO_DIGEST
        if caption not in general:  # taken from the kept record, as it was
            j = i if aligned else index[caption]
            stat = kept_stats[j * STAT_SIZE : (j + 1) * STAT_SIZE]
            digest = kept_digests[j * DIGEST_SIZE : (j + 1) * DIGEST_SIZE]
        elif caption not in skip and caption in packed:
            row = rows.get(caption)
            digest = disk_hash.get(caption)
            known = fixed.get(caption, row[2] if row is not None else digest)
            if caption in fresh:
                stat = fresh[caption]
                if stat is None and digest is None and known is None:
                    stat = ABSENT  # no file, and none is known: absent next time too
            else:
                stat = row[4][:_STAT_END] if row is not None and row[4] else None
            if stat is None or stat == NO_STAT or digest != known:
                stat = NOT_HELD
            digest = digest or NO_DIGEST
        if stat == NOT_HELD:
            tags, digest = b"", NO_DIGEST
            held = False
        stats.append(stat)
        digests.append(digest)
        counts.append(len(tags) // 4)
        all_tags.append(tags)
    tags = b"".join(all_tags)
    tag_counts = count_ids(tags) if held else {}
    return pack_record(
        signature,
        names,
        gone,
        unrecorded,
        b"".join(stats),
        b"".join(digests),
        counts,
        tags,
        tag_counts,
    )


def _damage_first(store: Store, exc: BaseException) -> None:
    """An open failed: when the state's integrity check failed too, that is the cause to
    report (a damaged page makes the reads fail in ways that say less)."""
    if isinstance(exc, Exception):
        try:
            store.checked()
        except StateError as damage:
            raise damage from None


@contextmanager
def _folder_stat(root: Path) -> Iterator[Callable[[str], os.stat_result]]:
    """`os.lstat` of paths relative to `root`, through a descriptor of the folder where
    the system has them (the kernel then walks only the relative part: a reopen stats
    every caption)."""
    if os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            yield partial(os.stat, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
        return
    prefix = f"{root}/"
    yield lambda path: os.lstat(prefix + path)


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
        self._listing: str | None = None  # the scan to keep for the next open (see `_load`)
        self.images: list[ImageEntry] = []
        self.by_image: dict[str, ImageEntry] = {}
        # caption → its source tags (`sources`) as ids of the parser's tag table, 4 bytes each.
        self._packed: dict[str, bytes] = {}
        self._warned: set[str] = set()  # captions whose source had decoding warnings
        self.disk_hash: dict[str, bytes | None] = {}  # caption → hash of its bytes on disk
        self.changed_on_disk: set[str] = set()  # captions edited by someone else
        # Captions that could not (or must not) be read → why: never written.
        self.unreadable: dict[str, str] = {}
        # Captions that are symlinks → the real path they lead to (absolute).
        self.links: dict[str, str] = {}
        self._link_targets: dict[str, list[str]] = {}  # real path → the captions linking to it
        self._caption_set: set[str] | None = None  # every caption (`write_refusal`)
        # The open used the reopen record: no file record changed since the originals
        # were last checked (see `tui.core.reopen`).
        self._records_checked = False
        self.problems: list[Problem] = []
        # The working strategy as the edit log has it (None: the log holds none yet); a
        # session override (`--profile`) differs from it until `use_strategy` records it.
        self.logged_strategy: Strategy | None = state.strategy if has_strategy else None
        self._counts: Counter[str] | None = None
        self._id_counts: dict[int, int] | None = None  # counted at open, for `tag_counts`
        self._renderer: Renderer | None = None
        self._concept_renderers: dict[str, Renderer] = {}
        self._parser: TagParser | None = None
        # Tagger scores of the latest model, 4 bytes a score (100k images stay cheap): image
        # → its scores as sorted ints `(QUANT - q) * labels + rank` (see `_pack_keys`), by
        # descending score; one label table, ranked by name as `_keys_mode` spells them.
        self._score_keys: dict[str, array] = {}
        self._score_labels: list[tuple[str, str, int]] = []  # (name, CSV spelling, category)
        self._score_wide = False
        self._label_categories: list[int] = []
        self._keys_mode = ""
        self._by_rank: list[int] = []
        self._names_by_mode: dict[str, list[str]] = {}
        self.score_model = ""  # the name of the model the scores come from ("" = none)
        self.model_spec = ""  # the `--model` of the last `tag` ("" = unknown)
        # Tagger tags per (settings, underscores): image → tags, derived once per settings.
        self._derived: dict[tuple[TaggerSettings, str], dict[str, tuple[str, ...]]] = {}

    # ---- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        strategy: Strategy | None = None,
        read_only: bool = False,
        progress: Progress | None = None,
        listed: Callable[[Path, list[str]], None] | None = None,
    ) -> Workspace:
        """Open a dataset: scan it, snapshot new caption files, parse sources, replay edits.

        `strategy` replaces the working strategy for this session (e.g. `--profile`); record
        it with `use_strategy` to make it the dataset's working strategy. `read_only` never
        creates or changes anything on disk. `listed(root, images)` is called as soon as the
        folders are scanned, before any caption is read: the images can be shown meanwhile.
        """
        root_path = check_root(root)
        store = Store.open(root_path, read_only=read_only)
        try:
            base, state, has_strategy = _replay_log(store, root_path)
        except BaseException as exc:
            if store is not None:
                store.close()  # never keep the dataset locked after a failed open
                _damage_first(store, exc)
            raise
        logged, logged_has_strategy = state.strategy, has_strategy
        if strategy is not None:
            state.strategy = strategy
            has_strategy = True
        ws = cls(root_path, store, base, state, has_strategy)
        if strategy is not None:
            ws.logged_strategy = logged if logged_has_strategy else None
        try:
            with collections_paused():
                ws._load(progress, listed)
            if store is not None:
                store.checked()
            if store is not None and not ws._records_checked:
                # A reopen reads no original copy (their tags are kept): they are checked
                # here, so a damaged one still stops the open, as reading it would; not
                # when the reopen record held (no record changed since they were checked).
                store.verify_originals()
        except BaseException as exc:
            ws.close()  # never keep the dataset locked after a failed open
            if store is not None:
                _damage_first(store, exc)
            raise
        give_back_free_memory()  # what the load's passes freed (a million images: ~100 MB)
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

    def _load(
        self, progress: Progress | None, listed: Callable[[Path, list[str]], None] | None = None
    ) -> None:
        store = self.store
        # The reopen record first: a large dataset's stats are taken meanwhile (`prestat`).
        record = parse_record(store.reopen_record()) if store is not None else None
        prestat = None
        if record is not None and len(record) >= PRESTAT_MIN:
            prestat = Prestat.start(
                str(self.root), record.names, record.stats, _BLOCK, SEEN_STAT.format
            )
        try:
            self._load_with(progress, listed, record, prestat)
        finally:
            if prestat is not None:
                prestat.close()

    def _load_with(
        self,
        progress: Progress | None,
        listed: Callable[[Path, list[str]], None] | None,
        record: ReopenRecord | None,
        prestat: Prestat | None,
    ) -> None:
        fmt = self.strategy.caption
        scan_progress = (lambda n: progress("scan", n, 0)) if progress else None
        store = self.store
        kept = store.listing() if store is not None else None
        self.scan = scan = scan_dataset(self.root, fmt.extension, scan_progress, reuse=kept)
        # The listing kept for the next open ("": none to keep); a reused one stays.
        self._listing = None if scan.reused else (scan.listing or ("" if kept else None))
        self.images = scan.images
        if listed is not None:
            listed(self.root, [e.image for e in scan.images])
        self.by_image = dict(zip(map(_IMAGE, scan.images), scan.images, strict=True))
        self.problems = [Problem(path, msg) for path, msg in scan.problems]
        if self.store is not None and not self.store.read_only:
            for rel in scan.temp_files:
                if remove_temp_file(self.root / rel):
                    self.problems.append(
                        Problem(rel, "removed a temp file an interrupted save left")
                    )
        self._parser = TagParser(fmt.underscores)
        self._read_captions(progress, record, prestat)
        self._listing = None  # handed to the state's save (25 MB at a million images)
        self._load_scores()

    def _load_scores(self) -> None:
        """Read the latest model's scores (read-only: a dataset never tagged gets nothing
        created); a scores database that cannot be read is a problem, not a failed open."""
        try:
            store = ScoreStore.open_read(self.root)
        except ScoreStoreError as exc:
            self.problems.append(Problem(f"{STATE_DIR}/{SCORES_FILE}", str(exc)))
            return
        if store is None:
            return
        try:
            model = store.latest_model()
            if model is None:
                self.model_spec = store.meta(MODEL_SPEC_KEY) or ""
                return
            self.model_spec = store.meta(MODEL_SPEC_KEY) or ""
            name = dict(store.models()).get(model, "")
            labels = store.labels(model)
            wide = store.is_wide(model)
            by_image = self.by_image
            table = [(lb.name, lb.raw or lb.name, lb.category) for lb in labels]
            mode = self.strategy.caption.underscores
            rank, by_rank = _ranks(_label_spellings(table, mode))
            keys = {
                i: _pack_keys(b, wide, rank) for i, b in store.packed_scores(model) if i in by_image
            }
        except Exception as exc:  # sqlite3.Error: a damaged file must not stop the curator
            self.problems.append(
                Problem(
                    f"{STATE_DIR}/{SCORES_FILE}",
                    f"cannot read the tagger scores ({exc}); delete the file and tag again",
                )
            )
            return
        finally:
            store.close()
        self._score_keys = keys
        self._keys_mode, self._by_rank = mode, by_rank
        self._score_labels = table
        self._label_categories = [lb.category for lb in labels]
        self._names_by_mode = {}
        self._score_wide = wide
        self.score_model = name
        self._derived = {}

    def _read_captions(
        self, progress: Progress | None, record: ReopenRecord | None, prestat: Prestat | None
    ) -> None:
        """Read every caption file, or only what changed since the last open (see
        `_read_changed`, with the reopen record the state kept, and the stats `prestat`
        takes of it); what the state kept is a cache: a bad one is ignored."""
        problems = len(self.problems)
        if not self._read_changed(progress, True, record, prestat):
            del self.problems[problems:]
            for kept in (self.disk_hash, self._packed, self.unreadable, self.links):
                kept.clear()
            self._link_targets.clear()
            self.changed_on_disk.clear()
            self._warned.clear()
            self._parser = TagParser(self.strategy.caption.underscores)
            self._read_changed(progress, False, None, None)

    def _read_changed(
        self,
        progress: Progress | None,
        trust_seen: bool,
        record: ReopenRecord | None,
        prestat: Prestat | None,
    ) -> bool:
        """Read every caption file, or only what changed since the last open.

        The state keeps, per caption, what the last open saw (`Store.file_rows`: its stat,
        the digest of its bytes and its original's tags as ids). A file whose stat (size,
        mtime in ns, inode) is what was seen is not read: its content is trusted to be what
        it was (as make and rsync trust mtime + size). Files new, changed, or never seen
        are read (and parsed only when no tags of their original are kept), exactly as a
        first open reads them; what was seen is recorded for the next open.

        False (nothing recorded) when kept tags use ids the tag table does not have."""
        store = self.store
        parser = self._parser
        assert parser is not None
        signature = parser.signature()
        cached = store.tag_names(signature) if store is not None else None
        use_seen = trust_seen and cached is not None and parser.load_names(cached)
        first_id = len(parser.names) if use_seen else 0
        captions = list(map(_CAPTION, self.images))
        if self.scan.collisions:  # images that share a caption: each caption once
            captions = list(dict.fromkeys(captions))
        total = len(captions)
        root = str(self.root)
        special = self.scan.special
        adopted = self.state.adopted
        present = set(captions)  # for this load only (42 MB at a million captions)
        self._caption_set = None
        packed = self._packed
        disk_hash = self.disk_hash
        # The reopen record, when the last open kept one and no file record changed since.
        kept = record if use_seen else None
        if kept is not None and kept.signature != signature:
            kept = None
        self._records_checked = kept is not None
        names = encode_names(captions)
        aligned = kept is not None and kept.names == names
        if prestat is not None and not aligned:
            prestat.close()  # its answers are of the record's captions: none is asked for
            prestat = None
        todo, stale = (
            (captions, [])
            if kept is None
            else self._reuse_record(kept, captions, aligned, progress, prestat)
        )
        # Every file record, or (the reopen record held) only those of the captions left.
        every_row = kept is None or len(todo) > total // 8
        if store is None:
            rows: dict[str, tuple[Any, ...]] = {}
        else:
            rows = store.file_rows() if every_row else store.file_rows(todo)
        # A file changed less than this before it was read could change again within the
        # same timestamp tick and keep its stat: it is read again next time.
        racy = time.time_ns() - RACY_NS
        new_files: list[tuple[str, bytes | None, bytes | None, bytes | None]] = []
        seen_rows: list[tuple[str, bytes | None]] = []
        need_original: list[str] = []
        fix_known: list[tuple[str, bytes | None]] = []
        # Captions read now (changed, new or never seen) → their stat key (None: not kept).
        fresh: dict[str, bytes | None] = {}
        original_ids: dict[str, bytes | None] = {}  # caption → its original's tags, packed
        record = store is not None and not store.read_only
        lstat, pack = os.lstat, SEEN_STAT.pack
        get_row = rows.get
        base = total - len(todo)
        # A first open (no file records): a second process reads from the last captions.
        pre = None
        if not rows and len(todo) >= PREREAD_MIN:
            pre = Preread.start(
                root,
                ["" if c in special else c for c in todo],
                _PREREAD_BLOCK,
                SEEN_STAT.format,
                parser.underscores,
                MAX_CAPTION_BYTES,
                racy,
            )
        block_end = skip_to = base
        try:
            for i, caption in enumerate(todo, base):
                if i < skip_to:
                    continue  # the second process read it
                if pre is not None and i == block_end:
                    block_end += _PREREAD_BLOCK
                    got = pre.take((i - base) // _PREREAD_BLOCK, parser.intern)
                    if got is not None:
                        skip_to = min(block_end, total)
                        self._take_read(todo[i - base : skip_to - base], got, new_files, fresh)
                        if progress is not None:
                            progress("read", skip_to, total)
                        continue
                if progress is not None and (i % 1000 == 0 or i == total - 1):
                    # A reopen only looks at each file's stat: reading is for what changed.
                    progress("changed" if use_seen else "read", i + 1, total)
                row = get_row(caption)
                seen = row[4] if row is not None and use_seen else None
                data: bytes | None = None
                read = True
                if seen is not None and caption not in special:
                    try:
                        st = lstat(f"{root}/{caption}")
                    except OSError:
                        st = None
                    # The hot loop of a reopen: one lstat, one compare (see `store.stat_key`).
                    if st is not None and seen.startswith(
                        pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
                    ):
                        digest: bytes | None = seen[_STAT_END:_DIGEST_END]
                        disk_hash[caption] = digest
                        if seen[_DIGEST_END] and caption not in adopted:
                            tags = seen[SEEN_HEADER:]
                            if digest == row[1] or digest == row[2] or digest == row[3]:
                                # The original, or what we last wrote: the source is the
                                # original's tags (kept); see the general case below.
                                packed[caption] = tags
                                if digest == row[1] and row[2] != digest:
                                    fix_known.append((caption, digest))
                                elif digest != row[1] and digest != row[2]:
                                    fix_known.append((caption, digest))  # a pending write done
                                continue
                        read = False
                if read:
                    try:
                        data, st = self._read_one_stat(f"{root}/{caption}", caption)
                    except CaptionRefused as exc:
                        self._mark_unreadable(caption, str(exc))
                        fresh[caption] = None
                        continue
                    except NotRegularFileError as exc:
                        self._mark_unreadable(caption, f"{exc.strerror}: never read or written")
                        fresh[caption] = None
                        continue
                    except OSError as exc:
                        self._mark_unreadable(
                            caption,
                            f"cannot read ({exc.strerror}): treated as no tags and never written",
                        )
                        fresh[caption] = None
                        continue
                    digest = content_hash(data)
                    if not record:  # read-only, or no state: nothing is recorded
                        pass
                    elif data is not None and st is not None:
                        fresh[caption] = (
                            stat_key(st) if st.st_mtime_ns < racy and st.st_size >= 0 else NO_STAT
                        )
                    else:
                        fresh[caption] = None
                disk_hash[caption] = digest
                tags = seen[SEEN_HEADER:] if seen is not None and seen[_DIGEST_END] else None
                if row is None:  # a new file: its bytes are its original
                    packed[caption] = tags = self._parse_source(caption, data)
                    if store is not None:
                        stat = fresh.get(caption)
                        keep = tags if caption not in self._warned else None
                        seen_now = (
                            None
                            if stat is None or digest is None
                            else pack_seen(stat, digest, keep)
                        )
                        new_files.append((caption, data, digest, seen_now))
                    continue
                if caption in adopted or digest != row[1]:
                    # The source is not what is on disk: an adopted version or the original.
                    if caption in adopted or tags is None:
                        need_original.append(caption)
                    else:
                        packed[caption] = tags
                    if digest != row[2]:
                        if digest is not None and digest == row[3]:
                            fix_known.append((caption, digest))
                        else:
                            self.changed_on_disk.add(caption)
                else:
                    if tags is not None:
                        packed[caption] = tags
                    elif read:
                        packed[caption] = tags = self._parse_source(caption, data)
                        if caption in self._warned:
                            tags = None
                    else:
                        need_original.append(caption)
                    if row[2] != digest:
                        fix_known.append((caption, digest))
                original_ids[caption] = tags
        finally:
            if pre is not None:
                pre.close()  # it is stopped and reaped, whatever happened
        if need_original and store is not None:
            originals = store.originals(need_original)
            for caption in need_original:
                seq = adopted.get(caption)
                if seq is not None:
                    self._set_source(caption, store.blob(seq, caption))
                    continue
                tags = self._parse_source(caption, originals.get(caption))
                packed[caption] = tags
                if caption not in self._warned:
                    original_ids[caption] = tags
                    if record and caption not in fresh:  # tags not kept yet: keep them
                        fresh[caption] = rows[caption][4][:_STAT_END]
        # Every caption as the record holds it: so are the counts of their tags.
        counted = None
        if (
            kept is not None
            and aligned
            and not todo
            and kept.tag_counts
            and ids_below(kept.tags, len(parser.names))
        ):
            counted = kept.tag_counts
        if use_seen and not self._ids_valid(counted):
            return False  # kept ids the tag table does not have: read everything again
        if fix_known and store is not None and not store.read_only:
            store.set_known(fix_known)
        if store is not None and not store.read_only:
            for caption, stat in fresh.items():
                if caption not in rows:
                    continue
                digest = disk_hash.get(caption)
                seen_rows.append(
                    (
                        caption,
                        None
                        if stat is None or digest is None
                        else pack_seen(stat, digest, original_ids.get(caption)),
                    )
                )
        # The captions the state has records of: every row, when all were read; else those
        # the kept record says (no record changed since it was made).
        if every_row or kept is None:
            recorded = set(rows)
        elif aligned:  # the record's captions are the dataset's
            recorded = present.union(kept.gone).difference(kept.unrecorded)
        else:
            recorded = {*kept.caption_names(), *kept.gone}.difference(kept.unrecorded)
        gone = sorted(recorded - present)
        if store is not None and not store.read_only:
            writes = bool(new_files or seen_rows or fix_known or parser.names[first_id:])
            keep = None
            if kept is None or writes or not aligned or stale:
                # Made on the writer thread, from copies: the session may change these.
                skip = (
                    self.state.adopted.keys() | self.scan.special | self.unreadable.keys()
                    | self.links.keys() | self._warned | self.changed_on_disk
                )  # fmt: skip
                recorded.update(map(itemgetter(0), new_files))
                keep = partial(
                    _pack_record,
                    signature,
                    kept,
                    aligned,
                    names,
                    captions,
                    set(todo),
                    gone,
                    [c for c in captions if c not in recorded],
                    skip,
                    rows,
                    fresh,
                    dict(fix_known),
                    dict(packed),
                    dict(disk_hash),
                )
            store.save_scan(
                new_files,
                seen_rows,
                parser.names[first_id:],
                first_id,
                signature,
                background=True,
                listing=self._listing,
                reopen=keep,
            )
        for caption in gone:
            self.problems.append(
                Problem(caption, "its image is gone since the last open; its history is kept")
            )
        for caption in sorted(self.changed_on_disk):
            self.problems.append(
                Problem(caption, "changed on disk since lora-curator last wrote it")
            )
        return True

    def _take_read(
        self,
        block: list[str],
        got: tuple[list[Any], ...],
        new_files: list[tuple[str, bytes | None, bytes | None, bytes | None]],
        fresh: dict[str, bytes | None],
    ) -> None:
        """New captions the second process read (`preread`): kept as a first open keeps
        what it reads, a block at once."""
        datas, digests, stats, tags = got
        self.disk_hash.update(zip(block, digests, strict=True))
        self._packed.update(zip(block, tags, strict=True))
        store = self.store
        if store is None:
            return
        if store.read_only:
            new_files.extend(zip(block, datas, digests, repeat(None), strict=False))
            return
        fresh.update(zip(block, stats, strict=True))
        seen = [
            None if s is None or d is None else pack_seen(s, d, t)
            for s, d, t in zip(stats, digests, tags, strict=True)
        ]
        new_files.extend(zip(block, datas, digests, seen, strict=True))

    def _reuse_record(
        self,
        kept: ReopenRecord,
        captions: list[str],
        aligned: bool,
        progress: Progress | None,
        prestat: Prestat | None = None,
    ) -> tuple[list[str], list[str]]:
        """Take each caption whose file's stat is what the reopen record holds of it (its
        digest and source tags); the captions left are returned, for the general way, with
        those of them the record held (stale: it is made anew).

        The hot loop of a reopen. When the record's captions are the dataset's, a block of
        captions is taken at once: their stats packed and compared with the record's in one
        go, their digests and tags taken as slices, the maps updated in C; a block with any
        difference (a changed, missing or excluded file) is looked at caption by caption.
        `prestat`, when it runs, has compared the blocks' stats already (see `prestat`)."""
        exclude = self.state.adopted.keys() | self.scan.special
        stats, digests, tags = kept.stats, kept.digests, kept.tags
        offsets = list(accumulate(kept.counts, initial=0))
        index: dict[str, int] = {}
        if not aligned:
            index = {name: j for j, name in enumerate(kept.caption_names())}
        packed, disk_hash = self._packed, self.disk_hash
        pack = SEEN_STAT.pack
        total = len(captions)
        todo: list[str] = []
        stale: list[str] = []  # captions the record held that changed since
        with _folder_stat(self.root) as lstat:
            if prestat is not None and not prestat.stats_folder(lstat(".")):
                prestat = None  # the dataset's folder was replaced since the child began

            def one_by_one(block: list[str], first: int | None) -> None:
                for k, caption in enumerate(block):
                    j = index.get(caption) if first is None else first + k
                    if j is None or (exclude and caption in exclude):
                        todo.append(caption)
                        continue
                    try:
                        st = lstat(caption)
                    except FileNotFoundError:
                        if stats.startswith(ABSENT, j * STAT_SIZE):
                            disk_hash[caption] = None
                            packed[caption] = b""
                        else:
                            todo.append(caption)
                        continue
                    except OSError:
                        todo.append(caption)
                        continue
                    key = pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
                    if stats.startswith(key, j * STAT_SIZE):
                        disk_hash[caption] = digests[j * DIGEST_SIZE : (j + 1) * DIGEST_SIZE]
                        packed[caption] = tags[offsets[j] * 4 : offsets[j + 1] * 4]
                        continue
                    todo.append(caption)
                    if not stats.startswith(NOT_HELD, j * STAT_SIZE):
                        stale.append(caption)  # held, and changed since

            for start in range(0, total, _BLOCK):
                if progress is not None:
                    progress("changed", start, total)
                block = captions[start : start + _BLOCK]
                end = start + len(block)
                if not aligned:
                    one_by_one(block, None)
                    continue
                same = prestat.next_block() if prestat is not None else None  # every block
                if not exclude or exclude.isdisjoint(block):
                    if same is None:
                        try:
                            keys = stat_keys(lstat, block, pack)
                        except OSError:
                            keys = b""
                        same = keys == stats[start * STAT_SIZE : end * STAT_SIZE]
                    if same:
                        at = range(start * DIGEST_SIZE, end * DIGEST_SIZE, DIGEST_SIZE)
                        taken = [digests[i : i + DIGEST_SIZE] for i in at]
                        disk_hash.update(zip(block, taken, strict=True))
                        ends = offsets[start : end + 1]
                        taken = [tags[x * 4 : y * 4] for x, y in pairwise(ends)]
                        packed.update(zip(block, taken, strict=True))
                        continue
                one_by_one(block, start)
        if progress is not None:
            progress("changed", total, total)
        return todo, stale

    def _mark_unreadable(self, caption: str, why: str) -> None:
        self.problems.append(Problem(caption, why))
        self._packed[caption] = b""
        self._id_counts = None
        self.disk_hash[caption] = None
        self.unreadable[caption] = why

    def _read_one(self, path: str, caption: str) -> bytes | None:
        """A caption's bytes (None: absent); `CaptionRefused`, `NotRegularFileError` or
        `OSError` when it cannot or must not be read."""
        return self._read_one_stat(path, caption)[0]

    def _read_one_stat(self, path: str, caption: str) -> tuple[bytes | None, os.stat_result | None]:
        """`_read_one`, with the file's stat (None: absent, or read through a symlink)."""
        if caption in self.scan.special:  # a FIFO, socket or device: never opened
            mode = os.lstat(path).st_mode
            raise NotRegularFileError(0, f"is {file_kind(mode)}, not a file", path)
        try:
            return read_caption_stat(path)
        except FileNotFoundError:
            return None, None
        except NotRegularFileError:
            raise
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return self._read_link(caption), None  # a symlink: see where it leads first

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
        self._packed[caption] = self._parse_source(caption, data)
        self._id_counts = None

    def _parse_source(self, caption: str, data: bytes | None) -> bytes:
        """A caption's tags as packed ids; its decoding warnings become problems."""
        if data is None:
            return b""
        decoded = decode_caption(data)
        if decoded.warnings:
            self._warned.add(caption)
            for warning in decoded.warnings:
                self.problems.append(Problem(caption, warning))
        assert self._parser is not None
        return pack_ids(self._parser.parse_ids(decoded.text))

    def _ids_valid(self, counted: dict[int, int] | None = None) -> bool:
        """Whether every packed id is one of the tag table's (the count of each id, which
        this needs, is kept for `tag_counts`; `counted` when it is known already)."""
        assert self._parser is not None
        self._id_counts = counts = self._count_ids() if counted is None else counted
        return not counts or max(counts) < len(self._parser.names)

    def _count_ids(self) -> dict[int, int]:
        """How many images have each tag id in their source, by first appearance."""
        packed = b"".join(map(self._packed.__getitem__, (e.caption for e in self.images)))
        return count_ids(packed)

    @property
    def sources(self) -> Mapping[str, tuple[str, ...]]:
        """caption → its parsed source tags (the original's, or an adopted version's)."""
        assert self._parser is not None
        return _Sources(self._packed, self._parser.names)

    def _source_of(self, caption: str) -> tuple[str, ...]:
        packed = self._packed.get(caption)
        if not packed:
            return ()
        assert self._parser is not None
        return tuple(map(self._parser.names.__getitem__, unpack_ids(packed)))

    # ---- reading ----------------------------------------------------------------------------

    def caption_source(self, image: str) -> tuple[str, ...]:
        """The image's tags as its caption file holds them (the original, or adopted)."""
        return self._source_of(self.by_image[image].caption)

    @property
    def has_scores(self) -> bool:
        """Whether some image of the dataset has tagger scores."""
        return bool(self._score_keys)

    def is_tagged(self, image: str) -> bool:
        """Whether the tagger scored this image."""
        return image in self._score_keys

    def image_scores(self, image: str) -> list[tuple[str, int, float]]:
        """The image's (tag, category, score) triples by descending score, tags spelled as
        the captions spell them (empty when it was not tagged)."""
        by_rank = self._ranked()
        keys = self._score_keys.get(image)
        if keys is None:
            return []
        names = self._label_names()
        categories = self._label_categories
        n = len(names)
        out = []
        for k in keys:  # already by descending score, ties by name
            i = by_rank[k % n]
            out.append((names[i], categories[i], (QUANT - k // n) / QUANT))
        return out

    def _ranked(self) -> list[int]:
        """Rank → label index for the keys, ranked again first when the captions' spelling
        (`underscores`) changed since they were packed (ties sort by the new names)."""
        mode = self.strategy.caption.underscores
        if mode != self._keys_mode and self._score_keys:
            rank, by_rank = _ranks(_label_spellings(self._score_labels, mode))
            old = self._by_rank
            n = len(old)
            kind = _key_type(n)
            self._score_keys = {
                image: array(kind, sorted((k // n) * n + rank[old[k % n]] for k in keys))
                for image, keys in self._score_keys.items()
            }
            self._keys_mode, self._by_rank = mode, by_rank
        return self._by_rank

    def _label_names(self) -> list[str]:
        """The labels spelled as the captions are (one string per label, shared by every
        image's tags): converted by the parser's rule, or as the CSV has them with
        `underscores = "keep"`."""
        underscores = self.strategy.caption.underscores
        names = self._names_by_mode.get(underscores)
        if names is None:
            names = self._names_by_mode[underscores] = _label_spellings(
                self._score_labels, underscores
            )
        return names

    def tagger_tags(self, settings: TaggerSettings | None = None) -> dict[str, tuple[str, ...]]:
        """Every tagged image's tagger tags under `settings` (default: the strategy's),
        by descending score. Derived once per settings: a render only looks them up."""
        settings = settings or self.strategy.tagger
        key = (settings, self.strategy.caption.underscores)
        hit = self._derived.get(key)
        if hit is None:
            if settings.mode == "fixed":
                hit = self._select_fixed(settings)
            else:
                hit = {
                    image: tuple(select_tags(self.image_scores(image), settings))
                    for image in self._score_keys
                }
            if len(self._derived) >= 4:  # moving a threshold step by step: keep a few
                self._derived.pop(next(iter(self._derived)))
            self._derived[key] = hit
        return hit

    def _select_fixed(self, settings: TaggerSettings) -> dict[str, tuple[str, ...]]:
        """`select_tags` with fixed thresholds, for every tagged image, on the stored ints: a
        threshold key re-derives every image (100k of them), and floats, tuples and string
        comparisons cost several times more. The same tags, in the same order.

        An image's keys are sorted by descending score, ties by name: the scores at or above
        the lower threshold are a prefix (one bisect), already in caption order."""
        by_rank = self._ranked()
        names = self._label_names()
        n = len(names)
        if not n:
            return {}
        ranked_names = [names[i] for i in by_rank]
        ranked_categories = [self._label_categories[i] for i in by_rank]
        ratings = {r for r, c in enumerate(ranked_categories) if c == CATEGORY_RATING}
        general_q = _least_quantised(settings.general_threshold)
        character_q = _least_quantised(settings.character_threshold)
        # Per rank: the largest `QUANT - q` kept (-1: never; a rating is chosen apart).
        most = [
            -1
            if c == CATEGORY_RATING
            else QUANT - (character_q if c == CATEGORY_CHARACTER else general_q)
            for c in ranked_categories
        ]
        cut = (QUANT - min(general_q, character_q) + 1) * n  # keys below it: at or above
        # Two labels converted to one tag appear once (rare: only then is it checked).
        dedupe = len({t.casefold() for t in names}) != n
        want_rating = settings.rating and bool(ratings)
        out: dict[str, tuple[str, ...]] = {}
        for image, keys in self._score_keys.items():
            kept = [k for k in keys[: bisect_left(keys, cut)] if k // n <= most[k % n]]
            if want_rating:
                # The top rating: the highest score, then the last by name (as `max`).
                top = -1
                for k in keys:
                    if top >= 0 and k // n != top // n:
                        break
                    if k % n in ratings:
                        top = k
                if top >= 0:
                    insort(kept, top)
            tags = [ranked_names[k % n] for k in kept]
            if dedupe:
                seen: set[str] = set()
                tags = [t for t in tags if not (t.casefold() in seen or seen.add(t.casefold()))]
            out[image] = tuple(tags)
        return out

    def reload_scores(self) -> None:
        """Read the scores again (after tagging): the sources are derived anew."""
        self._load_scores()
        self._counts = None
        self._renderer = None

    def tagger_candidates(self, image: str, margin: float = 0.10) -> list[tuple[str, float]]:
        """General tags of the image scored just below the general threshold (within
        `margin`), not among its tags: what one more step down would add. None in `mcut`
        mode (its threshold is per image) or when the tagger is not a source."""
        settings = self.strategy.tagger
        if settings.mode != "fixed" or settings.source == "caption" or not self.is_tagged(image):
            return []
        low, high = settings.general_threshold - margin, settings.general_threshold
        present = {t.casefold() for t in self.image_tags(image, include_removed=True)}
        return [
            (tag, score)
            for tag, category, score in self.image_scores(image)
            if category == 0 and low <= score < high and tag.casefold() not in present
        ]

    def tagger_moves(self, old: TaggerSettings, new: TaggerSettings) -> tuple[int, int]:
        """How many tags (on every image, per-image edits aside) enter and leave the
        dataset's sources when the `[tagger]` table goes from `old` to `new`."""
        if old.source == "caption" or new.source == "caption":
            return 0, 0
        before, after = self.tagger_tags(old), self.tagger_tags(new)
        entered = left = 0
        for image, tags in after.items():
            was = before.get(image, ())
            if tags != was:
                old_keys = {t.casefold() for t in was}
                new_keys = {t.casefold() for t in tags}
                entered += len(new_keys - old_keys)
                left += len(old_keys - new_keys)
        return entered, left

    def source_tags(self, image: str) -> tuple[str, ...]:
        """The image's source tags, before per-image edits: from its caption file, or from
        its tagger scores by the strategy's `[tagger]` table (`source`: auto = tagger tags
        where the image was tagged, caption tags elsewhere; tagger; caption; both = caption
        tags, then the tagger tags not already there)."""
        caption_tags = self._source_of(self.by_image[image].caption)
        if not self._score_keys:
            return caption_tags
        source = self.strategy.tagger.source
        if source == "caption":
            return caption_tags
        tagged = self.tagger_tags().get(image)
        if source == "auto":
            return caption_tags if tagged is None else tagged
        if source == "tagger":
            return tagged or ()
        if not tagged:
            return caption_tags
        present = {t.casefold() for t in caption_tags}
        return caption_tags + tuple(t for t in tagged if t.casefold() not in present)

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

    def tag_ids(self, images: Iterable[str]) -> tuple[list[str], list[bytes]]:
        """The tags of these images as `image_tags` gives them, as packed ids (`pack_ids`,
        distinct within an image, in the image's order) into the returned table of tags: the
        parser's, then any that only the tagger or per-image edits give. What a pass over
        the whole dataset reads instead of a `str` per image x tag: an image whose tags are
        its caption's, unedited, costs a lookup (its ids are the ones kept at open)."""
        assert self._parser is not None
        names = list(self._parser.names)
        packed = self._packed
        by_image = self.by_image
        edits = self.state.image_edits
        scored = bool(self._score_keys) and self.strategy.tagger.source != "caption"
        if not scored and not edits:  # the common case, in C: no tag as a string at all
            captions = map(attrgetter("caption"), map(by_image.__getitem__, images))
            return names, list(map(packed.get, captions, repeat(b"")))
        id_of: dict[str, int] | None = None
        out: list[bytes] = []
        for image in images:
            if not scored and image not in edits:
                out.append(packed.get(by_image[image].caption) or b"")
                continue
            if id_of is None:
                id_of = {name: i for i, name in enumerate(names)}
            ids: list[int] = []
            for tag in self.image_tags(image):
                i = id_of.get(tag)
                if i is None:
                    i = id_of[tag] = len(names)
                    names.append(tag)
                ids.append(i)
            out.append(pack_ids(list(dict.fromkeys(ids))))
        return names, out

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
        problems = [p for p in self.problems if p.path not in self.changed_on_disk]
        paths = {p.path for p in problems}
        by_caption: dict[str, list[str]] = {}
        if paths:  # (the images of the captions with a problem only)
            for entry in self.images:
                if entry.caption in paths:
                    by_caption.setdefault(entry.caption, []).append(entry.image)
        for problem in problems:
            for image in by_caption.get(problem.path, [problem.path]):
                if image in self.by_image:
                    warnings.setdefault(image, []).append(problem.message)
        return warnings

    def tag_counts(self) -> Counter[str]:
        """Number of images each tag is on (per-image edits included)."""
        if self._counts is None:
            if self.state.image_edits:
                tags = map(self.image_tags, (e.image for e in self.images))
            elif self._score_keys and self.strategy.tagger.source != "caption":
                tags = map(self.source_tags, (e.image for e in self.images))
            else:  # the common case, in C: every image's source as it is, as ids
                assert self._parser is not None
                names = self._parser.names
                by_id = self._id_counts if self._id_counts is not None else self._count_ids()
                self._id_counts = None
                self._counts = Counter({names[i]: n for i, n in by_id.items()})
                return self._counts
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

    def leading_triggers(self, image: str) -> list[str]:
        """The triggers that lead this image's caption: the character's, then its concept's."""
        return list(self.renderer_for(image).triggers)

    def triggers_in_use(self) -> list[str]:
        """Every trigger a caption can start with (the character's and each concept's)."""
        found = [self.strategy.trigger, *(c.trigger for c in self.strategy.concepts)]
        return [t for t in dict.fromkeys(found) if t]

    def empty_on_disk(self, images: Iterable[str]) -> list[str]:
        """Of these images, those whose caption file exists and holds nothing but blanks (a
        trainer such as kohya stops on it)."""
        out = []
        for image in images:
            entry = self.by_image[image]
            if not entry.caption_exists:
                continue
            try:
                data = read_caption_file(str(self.root / entry.caption))
            except OSError:
                continue
            if not data.strip():
                out.append(image)
        return out

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
        if kind in ("image_tags", "images_tags", "adopt", "strategy", "tagger"):
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

    def set_tagger(self, settings: TaggerSettings) -> None:
        """Change how tagger scores become source tags (thresholds, mode, rating, source):
        one undo step; the captions re-render from the stored scores, no model is run."""
        self.record("tagger", {"settings": tagger_settings_to_dict(settings)})

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

    def edit_many(
        self, images: Iterable[str], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> int:
        """Add and remove tags on many images at once (e.g. the images a query found): one
        edit of the log, one undo step. Returns how many images it touched (0: nothing was
        recorded: no image, no tag, or an image that is not in the dataset is refused)."""
        add, remove = list(add), list(remove)
        images = self.batch_targets(images, add, remove)
        if not images:
            return 0
        self.record("images_tags", {"images": images, "add": add, "remove": remove})
        return len(images)

    def batch_targets(
        self, images: Iterable[str], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> list[str]:
        """The images among `images` whose tags `edit_many` would change: those missing a tag
        to add or having a tag to remove (in their order, each once). A `ValueError` names
        an image that is not in the dataset."""
        add_keys = {t.casefold() for t in add}
        remove_keys = {t.casefold() for t in remove}
        if not (add_keys or remove_keys):
            return []
        targets: list[str] = []
        for image in dict.fromkeys(images):
            if image not in self.by_image:
                raise ValueError(f"not an image of the dataset: {image!r}")
            have = {t.casefold() for t in self.image_tags(image)}
            if add_keys - have or remove_keys & have:
                targets.append(image)
        return targets

    def set_alias(self, tag: str, target: str | None) -> None:
        """Write `tag` as `target` everywhere in the dataset (rename it; onto a tag that exists
        already: merge it into that one); `target` None or empty removes the alias. One undo
        step, in the working strategy (saved into the profile)."""
        tag = tag.strip()
        target = (target or "").strip() or None
        if not tag:
            raise ValueError("an alias needs the tag it renames")
        if target is not None and target.casefold() == tag.casefold():
            raise ValueError(f"{tag!r} would be renamed to itself")
        if target is None and tag.casefold() not in self.strategy.alias_index:
            raise ValueError(f"{tag!r} has no alias to remove")
        # Keep the table's own spelling of the source, so the alias replaces, never doubles.
        spelled = next((t for t in self.strategy.aliases if t.casefold() == tag.casefold()), tag)
        self.record("alias", {"tag": spelled, "target": target})

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
        if self._caption_set is None:  # made when first needed (a symlinked caption)
            self._caption_set = set(map(_CAPTION, self.images))
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
