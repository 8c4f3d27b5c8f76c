"""The dataset's state: `<dataset>/.lora-curator/state.sqlite3` (SQLite, WAL).

It holds the original bytes of every caption file (snapshotted once, so `restore` is exact),
what this tool last wrote to each file, the working strategy's base, and the edit log whose
cursor gives undo/redo and crash safety. Only this module touches the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tui.core.dataset import STATE_DIR

STATE_FILE = "state.sqlite3"
STATE_SCHEMA = 1

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    caption TEXT PRIMARY KEY,      -- relative path, '/' separators
    original BLOB,                 -- exact bytes when first seen; NULL = the file did not exist
    original_hash BLOB,            -- NULL when absent
    known_hash BLOB,               -- what should be on disk now (NULL = absent)
    pending_hash BLOB              -- a write in progress (crash: disk holds known or pending)
);
CREATE TABLE IF NOT EXISTS edits (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (seq INTEGER NOT NULL, caption TEXT NOT NULL, data BLOB,
    PRIMARY KEY (seq, caption));
"""


def content_hash(data: bytes | None) -> bytes | None:
    """A short digest of a file's bytes (None for an absent file)."""
    if data is None:
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


def path_key(path: str) -> str | bytes:
    """A path as the state stores it: text, or its raw bytes when the name is not valid UTF-8
    (Python gives such bytes as lone surrogates, which SQLite cannot store as TEXT). A BLOB
    key never equals a TEXT key, so the two forms cannot collide."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_key(key: str | bytes) -> str:
    """The path a stored key names (the inverse of `path_key`)."""
    return os.fsdecode(key) if isinstance(key, bytes) else key


@dataclass(frozen=True)
class Edit:
    """One recorded user action."""

    seq: int
    kind: str
    payload: dict[str, Any]


class FileRecord(NamedTuple):
    """What the state knows of one caption file."""

    original_hash: bytes | None
    known_hash: bytes | None
    pending_hash: bytes | None


class StateError(Exception):
    """The state database cannot be opened or used; the message says what to do."""


class DatasetLockedError(StateError):
    """Another lora-curator process has the dataset open for editing."""


LOCK_FILE = "lock"


def _acquire_lock(folder: Path) -> int | None:
    """Hold an exclusive lock on the dataset while this process edits it.

    `flock` locks belong to the open file: the kernel drops them when the process dies, even
    by `kill -9`, so a lock never outlives its process and needs no clean-up.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        return None
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)
        raise DatasetLockedError(
            f"{folder.parent}: open in another lora-curator (pid {holder}); close it first "
            "(read-only commands such as `apply --dry-run` and `tags` still work)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def state_path(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


class Store:
    """The SQLite state of one dataset."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, read_only: bool, lock_fd: int | None = None
    ) -> None:
        self.conn = conn
        self.path = path
        self.read_only = read_only
        self._lock_fd = lock_fd
        self._snapshot: threading.Thread | None = None
        self._snapshot_error: BaseException | None = None

    # ---- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, read_only: bool = False) -> Store | None:
        """Open (creating unless `read_only`) the state of the dataset at `root`.

        Read-only with no state yet returns None: nothing is created.
        """
        path = state_path(root)
        if read_only:
            if not path.exists():
                return None
            try:
                # Without a live WAL (no writer open, none crashed), `immutable` reads the
                # file without creating -wal/-shm files: a read-only command writes nothing.
                wal = path.with_name(path.name + "-wal").exists()
                conn = sqlite3.connect(
                    f"{path.as_uri()}?mode=ro" + ("" if wal else "&immutable=1"),
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("SELECT count(*) FROM meta").fetchone()
            except sqlite3.Error as exc:
                raise StateError(f"{path}: cannot read the state ({exc})") from None
            return cls(conn, path, read_only=True)
        try:
            path.parent.mkdir(exist_ok=True)
            lock_fd = _acquire_lock(path.parent)
        except OSError as exc:
            raise StateError(
                f"{path.parent}: cannot create the state folder ({exc.strerror}); "
                "check the dataset folder is writable"
            ) from None
        try:
            # The app opens the dataset in a worker thread and edits from the UI thread; every
            # use is sequential, so sharing the connection across threads is safe.
            conn = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA_SQL)
        except (OSError, sqlite3.Error) as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StateError(
                f"{path}: cannot open the state ({exc}); check the folder is writable"
            ) from None
        store = cls(conn, path, read_only=False, lock_fd=lock_fd)
        if store.meta("schema") is None:
            store.set_meta("schema", str(STATE_SCHEMA))
            store.set_meta("cursor", "0")
            store.set_meta("saved", "0")
        return store

    def close(self) -> None:
        try:
            self.wait_for_snapshot()
        finally:
            self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else path_from_key(row[0])

    def set_meta(self, key: str, value: str) -> None:
        # A value can be a path (the profile's): one that is not valid UTF-8 is kept as bytes.
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, path_key(value)),
        )

    def base_strategy(self) -> dict[str, Any] | None:
        """The profile the working strategy started from (as a TOML-shaped dict)."""
        raw = self.meta("base")
        return None if raw is None else json.loads(raw)

    def set_base_strategy(self, data: dict[str, Any], ref: str) -> None:
        with self.transaction():
            self.set_meta("base", json.dumps(data))
            self.set_meta("profile_ref", ref)

    # ---- caption files ---------------------------------------------------------------------

    def file_records(self) -> dict[str, FileRecord]:
        """What the state knows of every caption file."""
        self.wait_for_snapshot()
        rows = self.conn.execute(
            "SELECT caption, original_hash, known_hash, pending_hash FROM files"
        )
        return {path_from_key(r[0]): FileRecord._make(r[1:]) for r in rows}

    def originals(self, captions: Iterable[str] | None = None) -> dict[str, bytes | None]:
        """Original bytes (None = did not exist) of the given caption files (default all)."""
        self.wait_for_snapshot()
        if captions is None:
            rows = self.conn.execute("SELECT caption, original FROM files")
            return {path_from_key(r[0]): r[1] for r in rows}
        out: dict[str, bytes | None] = {}
        for caption in captions:
            row = self.conn.execute(
                "SELECT original FROM files WHERE caption = ?", (path_key(caption),)
            ).fetchone()
            if row is not None:
                out[caption] = row[0]
        return out

    def add_originals(
        self,
        snapshots: Iterable[tuple[str, bytes | None, bytes | None]],
        background: bool = False,
    ) -> None:
        """Snapshot caption files seen for the first time: (caption, bytes, their hash);
        existing records are kept.

        `background` inserts them on a thread with its own connection (SQLite releases the
        GIL while it works, so opening a large dataset overlaps parsing with this); every
        method that reads or changes the file records waits for it first."""
        rows = [(path_key(caption), data, digest, digest) for caption, data, digest in snapshots]
        if not rows:
            return
        if not background:
            _insert_originals(self.conn, rows)
            return
        self.wait_for_snapshot()

        def run() -> None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                try:
                    conn.execute("PRAGMA synchronous=NORMAL")
                    _insert_originals(conn, rows)
                finally:
                    conn.close()
            except BaseException as exc:  # reported by wait_for_snapshot
                self._snapshot_error = exc

        self._snapshot = threading.Thread(target=run, name="snapshot-originals")
        self._snapshot.start()

    def wait_for_snapshot(self) -> None:
        """Wait until the originals are in the state; a `StateError` if they could not be."""
        thread, self._snapshot = self._snapshot, None
        if thread is not None:
            thread.join()
        error, self._snapshot_error = self._snapshot_error, None
        if error is not None:
            raise StateError(
                f"{self.path}: could not keep a copy of the original captions ({error}); "
                "nothing was written"
            )

    def set_pending(self, pending: Iterable[tuple[str, bytes | None]]) -> None:
        """Record the hashes about to be written, before any file is touched."""
        self.wait_for_snapshot()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE files SET pending_hash = ? WHERE caption = ?",
                [(h, path_key(c)) for c, h in pending],
            )

    def set_known(self, known: Iterable[tuple[str, bytes | None]]) -> None:
        """Record what is now on disk; clears the pending write."""
        self.wait_for_snapshot()
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE files SET known_hash = ?, pending_hash = NULL WHERE caption = ?",
                [(h, path_key(c)) for c, h in known],
            )

    # ---- the edit log ----------------------------------------------------------------------

    def cursor(self) -> int:
        return int(self.meta("cursor") or 0)

    def saved_cursor(self) -> int:
        return int(self.meta("saved") or 0)

    def mark_saved(self) -> None:
        with self.transaction():
            self.set_meta("saved", str(self.cursor()))

    def edits(self, upto: int | None = None) -> list[Edit]:
        """The edits up to `upto` (default: the cursor), oldest first."""
        limit = self.cursor() if upto is None else upto
        rows = self.conn.execute(
            "SELECT seq, kind, payload FROM edits WHERE seq <= ? ORDER BY seq", (limit,)
        )
        return [Edit(r[0], r[1], json.loads(r[2])) for r in rows]

    def append_edit(
        self, kind: str, payload: dict[str, Any], blobs: dict[str, bytes | None] | None = None
    ) -> Edit:
        """Append an edit after the cursor (dropping any redo history) and commit it."""
        with self.transaction() as conn:
            cursor = self.cursor()
            conn.execute("DELETE FROM edits WHERE seq > ?", (cursor,))
            conn.execute("DELETE FROM blobs WHERE seq > ?", (cursor,))
            seq = cursor + 1
            conn.execute(
                "INSERT INTO edits (seq, kind, payload, at) VALUES (?, ?, ?, ?)",
                (seq, kind, json.dumps(payload), time.time()),
            )
            for caption, data in (blobs or {}).items():
                conn.execute(
                    "INSERT INTO blobs (seq, caption, data) VALUES (?, ?, ?)",
                    (seq, path_key(caption), data),
                )
            self.set_meta("cursor", str(seq))
            if self.saved_cursor() > cursor:
                # The saved state is no longer reachable by undo/redo.
                self.set_meta("saved", "-1")
        return Edit(seq, kind, payload)

    def blob(self, seq: int, caption: str) -> bytes | None:
        row = self.conn.execute(
            "SELECT data FROM blobs WHERE seq = ? AND caption = ?", (seq, path_key(caption))
        ).fetchone()
        return None if row is None else row[0]

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM edits").fetchone()
        return int(row[0] or 0)

    def move_cursor(self, seq: int) -> None:
        with self.transaction():
            self.set_meta("cursor", str(seq))

    # ---- image measures (a cache for tui/core/checks.py) -----------------------------------

    # One row per image: (image, version, size, mtime_ns, digest, width, height, sharpness,
    # dhash, error). `dhash` is an unsigned 64-bit hash, kept signed in SQLite's INTEGER.
    _MEASURES_SQL = """
    CREATE TABLE IF NOT EXISTS measures (
        image TEXT PRIMARY KEY, version INTEGER NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, digest BLOB NOT NULL, width INTEGER NOT NULL,
        height INTEGER NOT NULL, sharpness REAL NOT NULL, dhash INTEGER NOT NULL,
        error TEXT NOT NULL
    )
    """

    def measures(self) -> dict[str, tuple[Any, ...]]:
        """The cached image measures: image → its row, as given to `save_measures`.

        Empty when none were saved yet (the table is created by the first save)."""
        try:
            rows = self.conn.execute(
                "SELECT image, version, size, mtime_ns, digest, width, height, sharpness, "
                "dhash, error FROM measures"
            ).fetchall()
        except sqlite3.OperationalError:  # no table yet (or a read-only state without it)
            return {}
        return {
            path_from_key(r[0]): (path_from_key(r[0]), *r[1:8], r[8] & 0xFFFF_FFFF_FFFF_FFFF, r[9])
            for r in rows
        }

    def save_measures(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Cache image measures, replacing older rows of the same images.

        Written through a connection of its own, so a worker thread can save while the
        app's thread uses the main connection (WAL lets them take turns)."""
        if self.read_only:
            raise StateError(f"{self.path}: opened read-only; measures are not saved")
        data = [(path_key(row[0]), *row[1:8], _signed64(row[8]), row[9]) for row in rows]
        if not data:
            return
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot save image measures ({exc})") from None
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(self._MEASURES_SQL)
            conn.executemany("INSERT OR REPLACE INTO measures VALUES (?,?,?,?,?,?,?,?,?,?)", data)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot save image measures ({exc})") from None
        finally:
            conn.close()


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _insert_originals(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR IGNORE INTO files (caption, original, original_hash, known_hash) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def state_exists(root: Path) -> bool:
    return os.path.exists(state_path(root))
