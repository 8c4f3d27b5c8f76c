"""Where tagger scores live: `DATASET/.lora-curator/scores.sqlite3`, a database of its own.

Tagging a large dataset writes for hours while the app may be open on the same dataset; a
separate file (WAL mode) means the tagger never contends with the edit log in
`state.sqlite3`. Compact by design: every model's labels are interned once (`labels`), and an
image's scores are one BLOB of packed little-endian (label index, score) pairs — index uint16
(uint32 for models with more than 65,535 labels), score uint16 quantised over 0..1 — holding
only the scores at or above `SCORE_FLOOR` (and the ratings, always). A row per image is
committed with its batch, so `kill -9` loses at most the batch in flight.

One `ScoreStore` per thread (a sqlite3 connection must not be shared between threads). No
numpy: the curator reads scores without the tagger installed."""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tui.core.dataset import STATE_DIR

SCORES_FILE = "scores.sqlite3"
TAGGING_LOCK_FILE = "tagging.lock"
SCORE_FLOOR = 0.05
QUANT = 65535  # a score s is stored as round(s * QUANT)
RATING_CATEGORY = 9
MODEL_SPEC_KEY = "model_spec"  # meta: the `--model` of the last `tag` (a folder or a repo id)
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,          -- a Hugging Face repo id, or the model folder's name
    labels_sha TEXT NOT NULL,    -- two models of one name but other labels are two models
    wide INTEGER NOT NULL,       -- label indexes packed as uint32 (1) or uint16 (0)
    last_used INTEGER NOT NULL,  -- ordering: the model tagged with most recently is highest
    UNIQUE(name, labels_sha)
);
CREATE TABLE IF NOT EXISTS labels(
    model INTEGER NOT NULL REFERENCES models(id),
    idx INTEGER NOT NULL,        -- row of selected_tags.csv = output column of the model
    name TEXT NOT NULL,          -- converted as the caption parser converts tags
    category INTEGER NOT NULL,
    raw TEXT NOT NULL,           -- as in selected_tags.csv (for `underscores = "keep"`)
    PRIMARY KEY(model, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores(
    id INTEGER PRIMARY KEY,
    model INTEGER NOT NULL REFERENCES models(id),
    image TEXT NOT NULL,         -- relative to the dataset root, '/' separators
    size INTEGER NOT NULL,       -- the image file when tagged: a changed file is tagged again
    mtime_ns INTEGER NOT NULL,
    pairs BLOB NOT NULL,
    UNIQUE(model, image)
);
"""


class ScoreStoreError(Exception):
    """The scores database cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Label:
    """One output of a model: the tag as the curator spells it (underscores → spaces, as the
    parser does by default), its CSV category, and its name as the CSV spells it."""

    name: str
    category: int
    raw: str = ""


@dataclass(frozen=True)
class ScoredImage:
    """One image's scores, ready to write: `pairs` from `encode_pairs`."""

    image: str
    size: int
    mtime_ns: int
    pairs: bytes


def scores_path(root: str | os.PathLike[str]) -> Path:
    """The scores database of the dataset at `root`."""
    return Path(root) / STATE_DIR / SCORES_FILE


def needs_wide(label_count: int) -> bool:
    """Whether a model with this many labels packs its indexes as uint32 (else uint16)."""
    return label_count > 0xFFFF


def quantise(score: float) -> int:
    """A score in 0..1 as a uint16 (clamped: a model may return 1.0000001)."""
    return min(QUANT, max(0, round(score * QUANT)))


def encode_pairs(indexes: Sequence[int], quantised: Sequence[int], wide: bool) -> bytes:
    """Pack (label index, quantised score) pairs, little-endian, as one BLOB."""
    if len(indexes) != len(quantised):
        raise ValueError("one score per label index")
    if wide:
        return struct.pack(f"<{len(indexes)}I", *indexes) + struct.pack(
            f"<{len(quantised)}H", *quantised
        )
    packed = array("H", [0]) * (2 * len(indexes))
    packed[0::2] = array("H", indexes)
    packed[1::2] = array("H", quantised)
    if sys.byteorder == "big":  # pragma: no cover - the file is little-endian everywhere
        packed.byteswap()
    return packed.tobytes()


def decode_pairs(blob: bytes, wide: bool) -> list[tuple[int, float]]:
    """The (label index, score) pairs of a BLOB written by `encode_pairs`."""
    indexes, quantised = unpack_pairs(blob, wide)
    return [(i, q / QUANT) for i, q in zip(indexes, quantised, strict=True)]


def unpack_pairs(blob: bytes, wide: bool) -> tuple[Sequence[int], Sequence[int]]:
    """The label indexes and the quantised scores of a BLOB, as two sequences of ints (no
    float made: the fast path of selecting tags compares quantised scores)."""
    if wide:
        n = len(blob) // 6
        indexes = struct.unpack_from(f"<{n}I", blob)
        quantised = struct.unpack_from(f"<{n}H", blob, 4 * n)
    else:
        packed = array("H")
        packed.frombytes(blob)
        if sys.byteorder == "big":  # pragma: no cover
            packed.byteswap()
        indexes, quantised = packed[0::2], packed[1::2]
    return indexes, quantised


def _lock_tagging(folder: Path) -> int:
    """An exclusive lock held while one process tags this dataset: two `tag` runs would
    only do the same work twice. `flock` dies with its process, even by `kill -9`."""
    fd = os.open(folder / TAGGING_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ScoreStoreError(
            f"{folder.parent}: another `tag` is already tagging this dataset; "
            "wait for it to finish (or stop it) and run again"
        ) from None
    return fd


class ScoreStore:
    """A connection to a dataset's scores database (one per thread)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock_fd: int | None) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd
        self._labels: dict[int, list[Label]] = {}
        self._wide: dict[int, bool] = {}

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open_for_tagging(cls, root: str | os.PathLike[str]) -> ScoreStore:
        """Open (creating the state folder and the database when needed) to write scores,
        holding the dataset's tagging lock (not the app's lock: tagging only writes this
        file, so it runs while the curator is open)."""
        path = scores_path(root)
        try:
            path.parent.mkdir(exist_ok=True)
            lock_fd = _lock_tagging(path.parent)
        except OSError as exc:
            raise ScoreStoreError(
                f"{path.parent}: cannot create the state folder ({exc.strerror}); "
                "make the dataset folder writable"
            ) from None
        try:
            conn = sqlite3.connect(path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                conn.execute("INSERT INTO meta VALUES('schema', ?)", (str(_SCHEMA_VERSION),))
                conn.commit()
            elif version[0] != str(_SCHEMA_VERSION):
                conn.close()
                raise ScoreStoreError(
                    f"{path}: written by another version of lora-curator (schema "
                    f"{version[0]}); upgrade, or delete the file and tag again"
                )
        except sqlite3.DatabaseError as exc:
            os.close(lock_fd)
            raise ScoreStoreError(
                f"{path}: not a usable scores database ({exc}); delete it and tag again"
            ) from None
        except ScoreStoreError:
            os.close(lock_fd)
            raise
        return cls(conn, path, lock_fd)

    @classmethod
    def open_read(cls, root: str | os.PathLike[str]) -> ScoreStore | None:
        """Open to read, creating nothing; None when the dataset has never been tagged."""
        path = scores_path(root)
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
            conn.execute("SELECT 1 FROM models LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ScoreStoreError(
                f"{path}: not a usable scores database ({exc}); delete it and tag again"
            ) from None
        return cls(conn, path, None)

    def close(self) -> None:
        """Close the connection and release the tagging lock (if held)."""
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ----------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A value of the meta table (e.g. `model_spec`, the `--model` of the last `tag`)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the meta table."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO meta VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # -- models and labels ---------------------------------------------------------------

    def register_model(self, name: str, labels_sha: str, labels: Sequence[Label]) -> int:
        """The id of a model (inserting it and its labels the first time), marked as the
        latest model used."""
        conn = self._conn
        row = conn.execute(
            "SELECT id FROM models WHERE name=? AND labels_sha=?", (name, labels_sha)
        ).fetchone()
        (top,) = conn.execute("SELECT COALESCE(MAX(last_used), 0) FROM models").fetchone()
        with conn:
            if row is None:
                cur = conn.execute(
                    "INSERT INTO models(name, labels_sha, wide, last_used) VALUES(?,?,?,?)",
                    (name, labels_sha, int(needs_wide(len(labels))), top + 1),
                )
                model_id = int(cur.lastrowid or 0)
                conn.executemany(
                    "INSERT INTO labels VALUES(?,?,?,?,?)",
                    (
                        (model_id, i, lb.name, lb.category, lb.raw or lb.name)
                        for i, lb in enumerate(labels)
                    ),
                )
            else:
                model_id = int(row[0])
                conn.execute("UPDATE models SET last_used=? WHERE id=?", (top + 1, model_id))
        return model_id

    def models(self) -> list[tuple[int, str]]:
        """Every model that tagged images here, as (id, name), the latest first."""
        return [
            (int(i), str(n))
            for i, n in self._conn.execute("SELECT id, name FROM models ORDER BY last_used DESC")
        ]

    def latest_model(self) -> int | None:
        """The model tagged with most recently (None when none has)."""
        models = self.models()
        return models[0][0] if models else None

    def model_id(self, name: str) -> int | None:
        """The latest-used model of this name (a repo id or folder name), or None."""
        row = self._conn.execute(
            "SELECT id FROM models WHERE name=? ORDER BY last_used DESC LIMIT 1", (name,)
        ).fetchone()
        return None if row is None else int(row[0])

    def _model(self, model: int | str | None) -> int | None:
        """A model id from an id, a name (the latest model of that name) or None (the
        latest model)."""
        if model is None:
            return self.latest_model()
        if isinstance(model, str):
            return self.model_id(model)
        return model

    def labels(self, model: int) -> list[Label]:
        """A model's labels, in output order (cached: they never change)."""
        labels = self._labels.get(model)
        if labels is None:
            labels = self._labels[model] = [
                Label(n, int(c), r)
                for n, c, r in self._conn.execute(
                    "SELECT name, category, raw FROM labels WHERE model=? ORDER BY idx", (model,)
                )
            ]
        return labels

    def is_wide(self, model: int) -> bool:
        """Whether the model's label indexes are packed as uint32."""
        wide = self._wide.get(model)
        if wide is None:
            row = self._conn.execute("SELECT wide FROM models WHERE id=?", (model,)).fetchone()
            wide = self._wide[model] = bool(row and row[0])
        return wide

    # -- scores --------------------------------------------------------------------------

    def tagged_images(self, model: int | str | None = None) -> dict[str, tuple[int, int]]:
        """Images tagged by `model` (an id, a name, or None for the latest model): relative
        path → (size, mtime_ns) of the file when tagged."""
        model = self._model(model)
        if model is None:
            return {}
        return {
            str(image): (int(size), int(mtime))
            for image, size, mtime in self._conn.execute(
                "SELECT image, size, mtime_ns FROM scores WHERE model=?", (model,)
            )
        }

    def write_batch(self, model: int, rows: Iterable[ScoredImage]) -> None:
        """Store the scores of a batch of images in one transaction (replacing old ones)."""
        with self._conn:
            self._conn.executemany(
                "INSERT INTO scores(model, image, size, mtime_ns, pairs) VALUES(?,?,?,?,?) "
                "ON CONFLICT(model, image) DO UPDATE SET size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, pairs=excluded.pairs",
                ((model, r.image, r.size, r.mtime_ns, r.pairs) for r in rows),
            )

    def scores(self, image: str, model: int | str | None = None) -> list[tuple[str, int, float]]:
        """An image's (tag, category, score) triples by descending score, from `model` (an
        id, a name, by default the latest model); empty when it has not tagged the image."""
        model = self._model(model)
        if model is None:
            return []
        row = self._conn.execute(
            "SELECT pairs FROM scores WHERE model=? AND image=?", (model, image)
        ).fetchone()
        if row is None:
            return []
        labels = self.labels(model)
        out = []
        for idx, score in decode_pairs(row[0], self.is_wide(model)):
            if idx < len(labels):
                label = labels[idx]
                out.append((label.name, label.category, score))
        out.sort(key=lambda t: (-t[2], t[0]))
        return out

    def all_scores(
        self, model: int | str | None = None
    ) -> Iterable[tuple[str, list[tuple[str, int, float]]]]:
        """Every image tagged by `model` with its triples (as `scores`), streamed."""
        model = self._model(model)
        if model is None:
            return
        labels = self.labels(model)
        wide = self.is_wide(model)
        for image, blob in self._conn.execute(
            "SELECT image, pairs FROM scores WHERE model=?", (model,)
        ):
            triples = [
                (labels[i].name, labels[i].category, s)
                for i, s in decode_pairs(blob, wide)
                if i < len(labels)
            ]
            triples.sort(key=lambda t: (-t[2], t[0]))
            yield str(image), triples

    def packed_scores(self, model: int) -> Iterable[tuple[str, bytes]]:
        """Every image tagged by `model` with its BLOB of packed pairs as stored (decode with
        `decode_pairs` and `is_wide`): what the curator keeps in memory, a few bytes a tag."""
        for image, blob in self._conn.execute(
            "SELECT image, pairs FROM scores WHERE model=?", (model,)
        ):
            yield str(image), bytes(blob)


CHARACTER_CATEGORY = 4  # selected_tags.csv: 0 general, 4 character, 9 rating


def character_tags(root: str | os.PathLike[str]) -> frozenset[str]:
    """The tags the latest model that tagged the dataset at `root` puts in its character
    category (case-folded, with spaces); empty when it was never tagged or its scores
    cannot be read (suggestions then go by the shape of the tag alone)."""
    try:
        store = ScoreStore.open_read(root)
    except ScoreStoreError:
        return frozenset()
    if store is None:
        return frozenset()
    with store:
        model = store.latest_model()
        if model is None:
            return frozenset()
        return frozenset(
            lb.name.replace("_", " ").casefold()
            for lb in store.labels(model)
            if lb.category == CHARACTER_CATEGORY
        )
