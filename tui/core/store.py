"""The dataset's state: `<dataset>/.lora-curator/state.sqlite3` (SQLite, WAL).

It holds the original bytes of every caption file (snapshotted once, so `restore` is exact),
what this tool last wrote to each file, the working strategy's base, and the edit log whose
cursor gives undo/redo and crash safety; and, as a cache, what the last open saw of each
caption file (its stat, digest and original's tags as ids: `files.seen`, `tag_names`), so a
reopen reads only the files that changed. Only this module touches the database.

Trust: a state is checked when it is opened (schema version, tables, SQLite's quick check,
the edit log's numbering, cursor) and each row when it is read (JSON objects, types, the
digest of every original copy, checked at every open by `verify_originals`). A damaged state
raises `CorruptStateError`, one written by a newer version `NewerStateError`: neither is used
or changed, and nothing is written from it. The `seen` cache is never trusted blindly: a
value of the wrong shape, or tags with ids the tag table does not have, is ignored (the file
is read again), and failing to record it (a full disk) fails nothing.

Threads: see `Store`. In short, one SQLite connection per thread, writes serialised with a
bounded wait, so an edit never fails because a background job holds the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tui import __version__
from tui.core.captions import content_hash
from tui.core.dataset import STATE_DIR
from tui.core.writer import fsync_folder

STATE_FILE = "state.sqlite3"
# 1: files, edits, blobs, meta. 2: + `files.seen` and `tag_names` (what the last open saw of
# each caption file, so a reopen reads only the files that changed). An older state is
# migrated in place when opened for writing (read-only, it is read as it is). 3: + `reopen`
# (what a reopen needs when nothing changed, in one row: see `reopen_record`) and the
# triggers that forget it whenever a file record or the tag table changes.
STATE_SCHEMA = 3

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    caption TEXT PRIMARY KEY,      -- relative path, '/' separators
    original BLOB,                 -- exact bytes when first seen; NULL = the file did not exist
    original_hash BLOB,            -- NULL when absent
    known_hash BLOB,               -- what should be on disk now (NULL = absent)
    pending_hash BLOB,             -- a write in progress (crash: disk holds known or pending)
    seen BLOB                      -- what the last open saw on disk (see `pack_seen`)
);
CREATE TABLE IF NOT EXISTS edits (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (seq INTEGER NOT NULL, caption TEXT NOT NULL, data BLOB,
    PRIMARY KEY (seq, caption));
CREATE TABLE IF NOT EXISTS tag_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
"""

_MIGRATE_1_TO_2 = (
    "ALTER TABLE files ADD COLUMN seen BLOB",
    "CREATE TABLE IF NOT EXISTS tag_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
)
# Any change to a file record or to the tag table, by this program or any other SQLite
# client, forgets the reopen record: it only ever describes the records as they are.
_REOPEN_TRIGGERS = tuple(
    (f"reopen_{table}_{op.lower()}", table, op)
    for table in ("files", "tag_names")
    for op in ("INSERT", "UPDATE", "DELETE")
)
_MIGRATE_2_TO_3 = (
    "CREATE TABLE IF NOT EXISTS reopen (id INTEGER PRIMARY KEY CHECK (id = 0), data BLOB)",
    *(
        f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {op} ON {table} BEGIN DELETE FROM reopen; END"
        for name, table, op in _REOPEN_TRIGGERS
    ),
)
_SCHEMA_SQL += "".join(f"{sql};\n" for sql in _MIGRATE_2_TO_3)

# `files.seen`: the caption file as the last open found it. A stat (size, mtime in ns,
# inode, and its mode), the digest of the bytes read then, whether tags follow, and the tags of the
# caption's original as ids into `tag_names` (4 bytes each). When a file's stat is equal
# on the next open, its content is trusted to be equal too and it is not read (as make and
# rsync trust mtime + size): a file rewritten to the same size with its mtime put back is
# the accepted blind spot. The tags depend only on the original (which never changes) and
# on the parser (`meta.tag_parser`): parsed under another parser, they are ignored.
SEEN_STAT = _SEEN_STAT = struct.Struct("<qqQI")  # size, mtime_ns, inode, mode (and chmod)
SEEN_STAT_SIZE = _SEEN_STAT.size
SEEN_HEADER = SEEN_STAT_SIZE + 16 + 1
# The stat of a file changed so recently that a change in the same clock tick could keep
# it: never equal to a real one, so the file is read again next time (racy timestamps).
NO_STAT = b"\xff" * _SEEN_STAT.size


def stat_key(st: os.stat_result) -> bytes:
    """A file's stat as `files.seen` keeps it: size, mtime (ns), inode and mode."""
    return _SEEN_STAT.pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)


def pack_seen(stat: bytes, digest: bytes, tags: bytes | None) -> bytes:
    """A `files.seen` value: the file's `stat_key` (or `NO_STAT`), the digest of the bytes
    read, and the ids of its original's tags (None: not kept, parsed again when needed)."""
    return stat + digest + (b"\x00" if tags is None else b"\x01" + tags)


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
    """The state database cannot be opened or used; the message (one line) says what to do."""


class DatasetLockedError(StateError):
    """Another lora-curator process has the dataset open for editing."""


class CorruptStateError(StateError):
    """The state database is damaged or was tampered with: nothing in it is used."""


class NewerStateError(StateError):
    """The state was written by a newer (or unknown) version: it is neither used nor changed."""


class StateWriteError(StateError):
    """A change could not be committed (disk full, I/O error, ...): it was not made."""


class StateBusyError(StateError):
    """The database stayed locked by someone else for longer than `BUSY_TIMEOUT`."""


LOCK_FILE = "lock"

# How long a write waits for another writer (a background job of this process, or another
# program holding the file) before it gives up with a `StateBusyError`.
BUSY_TIMEOUT = 15.0
# The background snapshot of the originals commits in chunks of this many rows (or bytes):
# a foreground write waits for one chunk at most, never for the whole snapshot.
SNAPSHOT_CHUNK_ROWS = 500
SNAPSHOT_CHUNK_BYTES = 4 << 20

_TABLES = ("meta", "files", "edits", "blobs")
_TABLES_2 = (*_TABLES, "tag_names")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(text: str, limit: int = 60) -> str:
    """Text read from the state, safe to print on one line (controls escaped, cut short)."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
            f"{folder.parent}: open in another lora-curator (pid {_shown(holder)}); close it "
            "first (read-only commands such as `apply --dry-run` and `tags` still work)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def state_path(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


def _commit(conn: sqlite3.Connection) -> None:
    """The one place a write transaction commits (the tests make it fail like a full disk)."""
    conn.execute("COMMIT")


class _WriteGate:
    """Serialises this process's write transactions: foreground writes first, in the order
    they came (a ticket each), the background snapshot only when none is waiting.

    SQLite lets one writer in at a time and neither its busy handler nor a Python `Condition`
    is fair: a thread that commits in a loop (a save, the snapshot) would take the gate again
    before a woken waiter runs, and starve an edit. With tickets, a foreground write waits at
    most for the writes that were already waiting when it came."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket whose turn it is
        self._abandoned: set[int] = set()  # tickets of writers that gave up waiting
        self._waiting = 0  # foreground writers waiting now

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1

    @contextmanager
    def hold(self, path: Path, background: bool = False) -> Iterator[None]:
        ticket: int | None = None
        with self._cond:
            if background:
                self._cond.wait_for(lambda: not self._busy and self._serving == self._next)
            else:
                ticket = self._next
                self._next += 1
                self._waiting += 1
                try:
                    turn = self._cond.wait_for(
                        lambda: not self._busy and self._serving == ticket, timeout=BUSY_TIMEOUT
                    )
                finally:
                    self._waiting -= 1
                if not turn:
                    if self._serving == ticket:
                        self._advance()
                    else:
                        self._abandoned.add(ticket)
                    self._cond.notify_all()
                    raise StateBusyError(
                        f"{path}: the state stayed busy for {BUSY_TIMEOUT:.0f} s; "
                        "nothing was changed: try again"
                    )
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                if ticket is not None:
                    self._advance()
                self._cond.notify_all()


class Store:
    """The SQLite state of one dataset.

    Threading contract: a `Store` may be used from any number of threads at once (the app's
    UI thread, its save and diagnostics workers, the snapshot thread). Each thread gets its
    own SQLite connection (`conn`), opened on first use and closed by `close`; no connection
    is ever shared between threads. Writes go through `transaction`, which serialises this
    process's writers (`_WriteGate`) and waits at most `BUSY_TIMEOUT` for other programs
    (SQLite's busy timeout); WAL lets readers go on meanwhile. The cursor and the saved
    position are kept in memory as well, so a status refresh never touches the database.

    Errors: every failure reaches the caller as a `StateError` with a one-line message; no
    `sqlite3` exception leaves this module.
    """

    def __init__(self, path: Path, uri: str, read_only: bool, lock_fd: int | None = None) -> None:
        self.path = path
        self.read_only = read_only
        self._uri = uri
        self._lock_fd = lock_fd
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._gate = _WriteGate()
        self._cursor = 0
        self._saved = 0
        self.schema = STATE_SCHEMA
        self._snapshot: threading.Thread | None = None
        self._snapshot_error: BaseException | None = None
        # Whether the `reopen` table and every trigger that keeps it true are in place.
        self._reopen_guarded = False
        self._integrity: threading.Thread | None = None  # see `checked`
        self._integrity_error: StateError | None = None

    # ---- connections ------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the state (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StateError(f"{self.path}: the state is closed")
        with self._guard("cannot open the state"):
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT,
                # Only ever used by this thread; `close` may close it from another one.
                check_same_thread=False,
            )
            if not self.read_only:
                conn.execute("PRAGMA synchronous=NORMAL")
        with self._conns_lock:
            # Connections of threads that have ended (finished workers) are closed here.
            alive = []
            for thread, other in self._conns:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((threading.current_thread(), conn))
            self._conns = alive
        self._local.conn = conn
        return conn

    def _release_conn(self) -> None:
        """Close this thread's connection now (a thread that is about to end)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._conns_lock:
            self._conns = [(t, c) for t, c in self._conns if c is not conn]
        conn.close()

    # ---- errors -----------------------------------------------------------------------------

    def damaged(self, what: str) -> CorruptStateError:
        """The error for a damaged state: what is wrong, that the captions are untouched, and
        how to start over."""
        dataset = shlex.quote(str(self.path.parent.parent))
        return CorruptStateError(
            f"{self.path}: the state is damaged ({what}); the caption files are untouched. "
            f"To start over run `lora-curator reset-state {dataset}` (it keeps the old state "
            f"as a backup), or move {STATE_DIR}/ out of the dataset"
        )

    def _error(self, exc: BaseException, doing: str) -> StateError:
        if isinstance(exc, StateError):
            return exc
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError):
            text = exc.strerror or text
        low = text.lower()
        if "locked" in low or "busy" in low:
            return StateBusyError(
                f"{self.path}: {doing}: the state stayed locked by another program for "
                f"{BUSY_TIMEOUT:.0f} s; try again"
            )
        if isinstance(exc, OSError) or any(
            word in low
            for word in ("full", "i/o error", "readonly", "read-only", "unable to open", "closed")
        ):
            advice = (
                "free some disk space and try again"
                if "full" in low or "space" in low
                else "check the disk and that the dataset folder is writable"
            )
            return StateWriteError(f"{self.path}: {doing} ({text}); {advice}")
        return self.damaged(text)

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn any database or OS error into a one-line `StateError`."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, doing) from None

    # ---- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, read_only: bool = False) -> Store | None:
        """Open (creating unless `read_only`) the state of the dataset at `root`, after
        checking it: a damaged state is a `CorruptStateError`, a newer one a
        `NewerStateError`, and neither is used or changed.

        Read-only with no state yet returns None: nothing is created.
        """
        path = state_path(root)
        if read_only:
            if not os.path.lexists(path) or not path.parent.is_dir():
                return None
            # Without a live WAL (no writer open, none crashed), `immutable` reads the
            # file without creating -wal/-shm files: a read-only command writes nothing.
            wal = path.with_name(path.name + "-wal").exists()
            uri = f"{path.as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
            store = cls(path, uri, read_only=True)
            try:
                store._check()
            except BaseException:
                store.close()
                raise
            return store
        folder = path.parent
        if os.path.lexists(folder) and not folder.is_dir():
            raise StateError(
                f"{folder}: is a file, not lora-curator's state folder; move it away "
                f"(or run `lora-curator reset-state {shlex.quote(str(root))}`)"
            )
        try:
            folder.mkdir(exist_ok=True)
            lock_fd = _acquire_lock(folder)
        except OSError as exc:
            raise StateError(
                f"{folder}: cannot create the state folder ({exc.strerror}); "
                "check the dataset folder is writable"
            ) from None
        store = cls(path, path.as_uri(), read_only=False, lock_fd=lock_fd)
        try:
            if not os.path.lexists(path):
                store._create()
            store._check()
            with store._guard("cannot open the state"):
                # After the checks: a state this version cannot read is never changed (a
                # state in WAL mode already, as every state this version made, is not).
                if store.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    store.checked()
                    store.conn.execute("PRAGMA journal_mode=WAL")
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    def _create(self) -> None:
        """Make a new, empty state: built beside and renamed into place, so a state file is
        always a whole database (an empty or cut one is damage, never "new")."""
        path = self.path
        temp = path.with_name(path.name + ".new")
        with self._guard("cannot create the state"):
            for stale in (temp, path.with_name(path.name + "-wal"),
                          path.with_name(path.name + "-shm")):  # fmt: skip
                # A WAL without its database would be replayed into the new one.
                if os.path.lexists(stale):
                    os.unlink(stale)
            conn = sqlite3.connect(temp, isolation_level=None)
            made = False
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA_SQL)
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema", str(STATE_SCHEMA)), ("cursor", "0"), ("saved", "0"),
                     ("written_by", f"lora-curator {__version__}")],
                )  # fmt: skip
                _commit(conn)
                made = True
            finally:
                conn.close()  # checkpoints: the whole database is in the file
                if not made:
                    with suppress(OSError):
                        os.unlink(temp)  # a half-made state is never left behind
            os.replace(temp, path)
            fsync_folder(path.parent)

    def _check(self) -> None:
        """Refuse a state this version cannot trust, before anything in it is used."""
        path = self.path
        if os.path.isdir(path):
            raise self.damaged("it is a folder, not a database file")
        if not os.path.isfile(path):
            raise self.damaged("it is not a regular file")
        if os.path.getsize(path) == 0:
            raise self.damaged("the file is empty")
        with self._guard("cannot read the state"):
            conn = self.conn
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "meta" not in tables:
                raise self.damaged("the meta table is missing")
            schema = self.meta("schema")
            if schema is None:
                raise self.damaged("no schema version in the meta table")
            self.schema = self._check_schema(schema)
            for table in _TABLES_2 if self.schema >= 2 else _TABLES:
                if table not in tables:
                    raise self.damaged(f"the {table} table is missing")
            # A cache: without its table or a trigger it is not used (and made again).
            self._reopen_guarded = self.schema >= 3 and {
                "reopen",
                *(name for name, _, _ in _REOPEN_TRIGGERS),
            }.issubset(tables)
            count, low, high = conn.execute(
                "SELECT count(*), min(seq), max(seq) FROM edits"
            ).fetchone()
            last = int(high or 0)
            if count and (low != 1 or count != last):
                raise self.damaged(f"the edit log has gaps ({count} edits numbered {low}..{high})")
            self._cursor = self._int_meta("cursor", 0, last)
            self._saved = self._int_meta("saved", -1, last)
            for key in ("base", "profile_ref"):
                self.meta(key)  # type-checked
        self._start_integrity_check()

    def _start_integrity_check(self) -> None:
        """SQLite's quick check of the whole file, on a thread of its own (it reads every
        page: at a million files, most of a second the open spends stat-ing captions
        meanwhile). `checked` waits for it; nothing is written before it passed."""

        def run() -> None:
            try:
                with self._guard("cannot read the state"):
                    problem = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if problem != "ok":
                    text = " ".join(str(problem).replace("*** in database main ***", "").split())
                    self._integrity_error = self.damaged(
                        f"the integrity check failed: {_shown(text, 120)}"
                    )
            except StateError as exc:
                self._integrity_error = exc
            finally:
                self._release_conn()

        self._integrity = threading.Thread(target=run, name="state-check", daemon=True)
        self._integrity.start()

    def checked(self) -> None:
        """Wait for the integrity check started when the state was opened; the
        `CorruptStateError` it found, if any (every write waits for it first)."""
        thread = self._integrity
        if thread is not None:
            thread.join()
        if self._integrity_error is not None:
            raise self._integrity_error

    def _check_schema(self, schema: str) -> int:
        """The schema version, when this version can read it."""
        try:
            version = int(schema)
        except ValueError:
            version = None
        if version is not None and 1 <= version <= STATE_SCHEMA:
            return version
        if version is not None and version < 1:
            raise self.damaged(f"schema version {version} is not valid")
        try:
            writer = self.meta("written_by")
        except StateError:
            writer = None
        by = f" (created by {_shown(writer)})" if writer else ""
        this = f"lora-curator {__version__} reads state schema {STATE_SCHEMA}"
        what = (
            f"schema {version}, newer than this version understands"
            if version is not None
            else f"an unknown schema {_shown(schema)!r}"
        )
        raise NewerStateError(
            f"{self.path}: this state has {what}{by} ({this}); upgrade lora-curator. The state "
            "was not used or changed, and the caption files are untouched"
        )

    def _migrate(self) -> None:
        """Bring an older (checked) state to this version's schema, in place, in one
        transaction: a failure leaves it as it was (and still usable by the older version)."""
        if self.schema >= STATE_SCHEMA and self._reopen_guarded:
            return
        with self.transaction("cannot update the state to this version's schema") as conn:
            if self.schema < 2:
                for sql in _MIGRATE_1_TO_2:
                    conn.execute(sql)
            for sql in _MIGRATE_2_TO_3:  # also what puts back a dropped trigger
                conn.execute(sql)
            conn.execute("DELETE FROM reopen")
            if self.schema < STATE_SCHEMA:
                self.set_meta("schema", str(STATE_SCHEMA))
                self.set_meta("written_by", f"lora-curator {__version__}")
        self.schema = STATE_SCHEMA
        self._reopen_guarded = True

    def _int_meta(self, key: str, low: int, high: int) -> int:
        label = {"saved": "saved position"}.get(key, key)
        raw = self.meta(key)
        if raw is None:
            raise self.damaged(f"no {label} in the meta table")
        try:
            value = int(raw)
        except ValueError:
            raise self.damaged(f"the {label} {_shown(raw)!r} is not a number") from None
        if not low <= value <= high:
            raise self.damaged(f"the {label} {value} is outside the edit log ({low} to {high})")
        return value

    def close(self) -> None:
        """Wait for the snapshot, close every thread's connection and release the lock."""
        try:
            if self._integrity is not None:
                self._integrity.join()
            self.wait_for_snapshot()
        finally:
            self._closed = True
            with self._conns_lock:
                conns, self._conns = self._conns, []
            for _, conn in conns:
                with suppress(sqlite3.Error):  # closing what cannot be used any more
                    conn.close()
            self._local = threading.local()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = None

    @contextmanager
    def transaction(self, doing: str = "cannot save to the state") -> Iterator[sqlite3.Connection]:
        """One write transaction, committed at the end (rolled back on any error).

        `doing` starts the message of the `StateError` raised when it fails."""
        if self.read_only:
            raise StateError(f"{self.path}: opened read-only; nothing is saved")
        self.checked()
        with self._gate.hold(self.path), self._guard(doing):
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                _commit(conn)
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # SQLite has rolled back already
                        conn.execute("ROLLBACK")
                raise

    # ---- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._guard("cannot read the state"):
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        # Only a path (the profile's) may be kept as bytes: see `path_key`.
        if not isinstance(row[0], str) and not (key == "profile_ref" and isinstance(row[0], bytes)):
            raise self.damaged(f"the {key} in the meta table is not text")
        return path_from_key(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set one meta value; inside a `transaction`. A value can be a path (the profile's):
        one that is not valid UTF-8 is kept as bytes."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, path_key(value)),
        )

    def base_strategy(self) -> dict[str, Any] | None:
        """The profile the working strategy started from (as a TOML-shaped dict)."""
        raw = self.meta("base")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            raise self.damaged("the working strategy (meta 'base') is not valid JSON") from None
        if not isinstance(data, dict):
            raise self.damaged("the working strategy (meta 'base') is not an object")
        return data

    def set_base_strategy(self, data: dict[str, Any], ref: str) -> None:
        with self.transaction("cannot save the working strategy"):
            self.set_meta("base", json.dumps(data))
            self.set_meta("profile_ref", ref)

    # ---- caption files ---------------------------------------------------------------------

    def file_records(self) -> dict[str, FileRecord]:
        """What the state knows of every caption file."""
        self.wait_for_snapshot()
        with self._guard("cannot read the state"):
            rows = self.conn.execute(
                "SELECT caption, original_hash, known_hash, pending_hash FROM files"
            ).fetchall()
        out: dict[str, FileRecord] = {}
        for row in rows:
            if not isinstance(row[0], (str, bytes)) or not all(_is_hash(h) for h in row[1:]):
                raise self.damaged(f"the record of caption {_shown(str(row[0]))!r} is not valid")
            out[path_from_key(row[0])] = FileRecord._make(row[1:])
        return out

    def file_rows(self, captions: list[str] | None = None) -> dict[str, tuple[Any, ...]]:
        """What the state knows of every caption file (or of `captions`), as opening a
        dataset reads it: caption → (its key, original hash, known hash, pending hash, seen).
        `seen` is what the last open saw of the file (see `pack_seen`; None when unknown or
        not usable: a cache, so a bad one is ignored, never trusted). The hashes are checked
        like `file_records`'s, in SQL: a dataset of a million files reads this in one pass."""
        self.wait_for_snapshot()
        ok = " AND ".join(
            f"({c} IS NULL OR (typeof({c}) = 'blob' AND length({c}) = 16))"
            for c in ("original_hash", "known_hash", "pending_hash")
        )
        seen = (
            "CASE WHEN typeof(seen) = 'blob' AND length(seen) >= ?1 "
            "AND (length(seen) - ?1) % 4 = 0 THEN seen END"
            if self.schema >= 2
            else "?1 IS NULL"
        )
        # A row that is not valid gets no key: one such row sends it the slow way, which
        # names it.
        query = (
            f"SELECT CASE WHEN typeof(caption) IN ('text', 'blob') AND {ok} THEN caption "
            f"END, original_hash, known_hash, pending_hash, {seen} FROM files"
        )
        with self._guard("cannot read the state"):
            if captions is None:
                rows = self.conn.execute(query, (SEEN_HEADER,)).fetchall()
            else:
                rows = []
                for caption in captions:
                    rows.extend(
                        self.conn.execute(
                            query + " WHERE caption = ?2", (SEEN_HEADER, path_key(caption))
                        )
                    )
        out = {(r[0] if r[0].__class__ is str else path_from_key(r[0])): r for r in rows if r[0]}
        if len(out) != len(rows) and any(r[0] is None for r in rows):
            self.file_records()  # raises the `CorruptStateError` naming the row
        return out

    def verify_originals(self) -> None:
        """Check every original copy against its digest (a `CorruptStateError` naming the
        first one that does not match), streaming: memory stays flat at a million files.

        A reopen reads no original (the tags of each are kept): this is what still refuses
        a state whose copies were damaged, as reading them would. A reopen that finds the
        `reopen_record` skips it: the records are as they were when it was last checked."""
        with self._guard("cannot read the originals"):
            damaged = self._damaged_original(self.conn)
        if damaged is not None:
            raise self.damaged(
                f"the copy of the original of {_shown(damaged)!r} does not match its digest"
            )

    @staticmethod
    def _damaged_original(conn: sqlite3.Connection) -> str | None:
        """The first caption whose original copy does not match its digest (None: none)."""
        blake = hashlib.blake2b
        cursor = conn.execute("SELECT caption, original, original_hash FROM files")
        for key, data, digest in cursor:
            if data is None:
                if digest is None:
                    continue
            elif data.__class__ is bytes and blake(data, digest_size=16).digest() == digest:
                continue
            cursor.close()
            return path_from_key(key) if isinstance(key, (str, bytes)) else str(key)
        return None

    def reopen_record(self) -> bytes | None:
        """What the last open kept for the next one (`save_scan`'s `reopen`), while no file
        record and no tag changed since (the triggers forget it at any change) and every
        original copy was checked since; None when there is none, or its table or a trigger
        is missing (a cache: the open then reads the records and checks the copies)."""
        if not self._reopen_guarded:
            return None
        try:
            with self._guard("cannot read the state"):
                row = self.conn.execute("SELECT data FROM reopen WHERE id = 0").fetchone()
        except StateError:
            return None
        data = row[0] if row is not None else None
        return data if data.__class__ is bytes and data else None

    def _record_reopen(self, data: bytes, background: bool) -> None:
        """Keep `data` as the reopen record, once every original copy is checked, unless a
        file record changes meanwhile. The check reads in its own snapshot, holding no
        write lock (an edit never waits for it): an empty placeholder is written first, any
        change deletes it (the triggers), and the record replaces it only if it is there."""
        if not self._reopen_guarded:
            return
        hold = self._gate.hold
        with hold(self.path, background=background), self._guard("cannot keep the reopen"):
            self.conn.execute("INSERT OR REPLACE INTO reopen (id, data) VALUES (0, x'')")
        conn = self.conn
        with self._guard("cannot keep the reopen"):
            conn.execute("BEGIN")
            try:
                damaged = self._damaged_original(conn)
            finally:
                conn.execute("COMMIT")
        with hold(self.path, background=background), self._guard("cannot keep the reopen"):
            if damaged is None:
                conn.execute("UPDATE reopen SET data = ? WHERE id = 0 AND data = x''", (data,))
            else:
                conn.execute("DELETE FROM reopen")

    def listing(self) -> str | None:
        """The scan of the dataset's folders kept by the last open (`save_scan`), for the
        scan to reuse while no folder changed; None when none is kept or it cannot be read
        (a cache: never needed)."""
        if self.schema < 2:
            return None
        try:
            value = self.meta("listing")
        except StateError:
            return None
        return value if isinstance(value, str) else None

    def tag_names(self, signature: str) -> list[str] | None:
        """The tag table the `seen` rows' ids index, when it was made by a parser of this
        `signature` (None otherwise, or when it is not a table of ids 0..n-1)."""
        if self.schema < 2:
            return None
        try:
            if self.meta("tag_parser") != signature:
                return None
            with self._guard("cannot read the state"):
                rows = self.conn.execute("SELECT id, name FROM tag_names ORDER BY id").fetchall()
        except StateError:
            return None
        if rows and (rows[0][0] != 0 or rows[-1][0] != len(rows) - 1):
            return None
        return [r[1] for r in rows]

    def save_scan(
        self,
        originals: list[tuple[str, bytes | None, bytes | None, bytes | None]],
        seen: list[tuple[str, bytes | None]],
        names: list[str],
        first_id: int,
        signature: str,
        background: bool = False,
        listing: str | None = None,
        reopen: Callable[[], bytes] | None = None,
    ) -> None:
        """After an open: snapshot the caption files seen for the first time (caption,
        bytes, their hash, seen), and record what was seen of the others (caption, seen).

        `names` are the tags from id `first_id` on, which the seen rows use; `first_id` 0
        replaces the tag table (the parser changed: every other seen row is forgotten).
        `listing` is the scan to keep for the next open (see `listing`; "" forgets the kept
        one, None leaves it). What `reopen()` makes is kept as the `reopen_record` once all
        of that is recorded and the originals are checked. `background` as for
        `add_originals`: on a thread, in chunks."""
        if self.read_only:
            return
        rows = [(path_key(c), data, digest, digest, s) for c, data, digest, s in originals]
        updates = [(s, path_key(c)) for c, s in seen]
        if not (rows or updates or names or first_id == 0 or listing is not None or reopen):
            return

        def record_listing(bg: bool) -> None:
            if listing is None:
                return
            with (
                self._gate.hold(self.path, background=bg),
                self._guard("cannot record the folders' listing"),
            ):
                if listing:
                    self.set_meta("listing", listing)
                else:
                    self.conn.execute("DELETE FROM meta WHERE key = 'listing'")

        def record_names(bg: bool) -> None:
            if not (names or first_id == 0):
                return
            with (
                self._gate.hold(self.path, background=bg),
                self._guard("cannot record the tags of the captions"),
            ):
                conn = self.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if first_id == 0:
                        conn.execute("DELETE FROM tag_names")
                        conn.execute("UPDATE files SET seen = NULL WHERE seen IS NOT NULL")
                    conn.executemany(
                        "INSERT OR REPLACE INTO tag_names (id, name) VALUES (?, ?)",
                        enumerate(names, first_id),
                    )
                    self.set_meta("tag_parser", signature)
                    _commit(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

        def run(bg: bool) -> None:
            # What was seen is a cache: when it cannot be recorded (a full disk), the next
            # open reads those files again. Only the snapshot of the originals must succeed.
            # Nor does it wait for another program holding the database.
            keep = reopen
            try:
                with self._impatient():
                    record_names(bg)
            except StateError:
                rows[:] = [(*r[:4], None) for r in rows]
                updates.clear()
                keep = None  # its tag ids are not all in the table
            self._insert_originals(rows, background=bg)
            with suppress(StateError), self._impatient():
                self._chunked(
                    "UPDATE files SET seen = ? WHERE caption = ?",
                    updates,
                    "cannot record what was seen on disk",
                    bg,
                )
            with suppress(StateError), self._impatient():
                record_listing(bg)
            if keep is not None:
                try:
                    data = keep()
                except Exception:  # a cache: not keeping it costs the next open time only
                    return
                with suppress(StateError), self._impatient():
                    self._record_reopen(data, bg)

        self._start(run, background)

    @contextmanager
    def _impatient(self) -> Iterator[None]:
        """This thread's writes give up at once when another program holds the database."""
        conn = self.conn
        with self._guard("cannot record what was seen on disk"):
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            yield
        finally:
            with suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

    def _start(self, run: Any, background: bool) -> None:
        """Run `run(background)` now, or on the one background writer thread (after the
        job before it), its error kept for `wait_for_snapshot`."""
        self.checked()
        if not background:
            run(False)
            return
        self.wait_for_snapshot()

        def job() -> None:
            try:
                run(True)
            except BaseException as exc:  # reported by wait_for_snapshot
                self._snapshot_error = exc
            finally:
                self._release_conn()

        self._snapshot = threading.Thread(target=job, name="snapshot-originals", daemon=True)
        self._snapshot.start()

    def originals(self, captions: Iterable[str] | None = None) -> dict[str, bytes | None]:
        """Original bytes (None = did not exist) of the given caption files (default all).

        Each copy is checked against its digest: a damaged copy is a `CorruptStateError`,
        never bytes to write back."""
        self.wait_for_snapshot()
        with self._guard("cannot read the originals"):
            if captions is None:
                rows = self.conn.execute(
                    "SELECT caption, original, original_hash FROM files"
                ).fetchall()
            else:
                rows = []
                for caption in captions:
                    rows.extend(
                        self.conn.execute(
                            "SELECT caption, original, original_hash FROM files WHERE caption = ?",
                            (path_key(caption),),
                        ).fetchall()
                    )
        out: dict[str, bytes | None] = {}
        for key, data, digest in rows:
            if not isinstance(key, (str, bytes)):
                raise self.damaged("a caption name in the files table is not text")
            caption = path_from_key(key)
            if not (data is None or isinstance(data, bytes)) or content_hash(data) != digest:
                raise self.damaged(
                    f"the copy of the original of {_shown(caption)!r} does not match its digest"
                )
            out[caption] = data
        return out

    def add_originals(
        self,
        snapshots: Iterable[tuple[str, bytes | None, bytes | None]],
        background: bool = False,
    ) -> None:
        """Snapshot caption files seen for the first time: (caption, bytes, their hash);
        existing records are kept.

        `background` inserts them on a thread (SQLite releases the GIL while it works, so
        opening a large dataset overlaps parsing with this), in chunks each committed on its
        own, so edits made meanwhile wait for one chunk at most. Every method that reads or
        changes the file records waits for it first. A crash part-way loses nothing: files
        are written only after the snapshot is complete, and the next open snapshots what
        is missing."""
        rows = [
            (path_key(caption), data, digest, digest, None) for caption, data, digest in snapshots
        ]
        if rows:
            self._start(lambda bg: self._insert_originals(rows, background=bg), background)

    def _insert_originals(self, rows: list[tuple[Any, ...]], background: bool = False) -> None:
        if self.schema < 2:
            rows = [r[:4] for r in rows]
        self._chunked(
            "INSERT OR IGNORE INTO files (caption, original, original_hash, known_hash"
            + (") VALUES (?, ?, ?, ?)" if self.schema < 2 else ", seen) VALUES (?, ?, ?, ?, ?)"),
            rows,
            "cannot keep a copy of the original captions",
            background,
        )

    def _chunked(
        self, sql: str, rows: list[tuple[Any, ...]], doing: str, background: bool = False
    ) -> None:
        """`executemany` in transactions of at most `SNAPSHOT_CHUNK_ROWS` rows (or about
        `SNAPSHOT_CHUNK_BYTES`): a foreground write waits for one chunk at most."""
        start = 0
        while start < len(rows):
            end, size = start, 0
            while end < len(rows) and end - start < SNAPSHOT_CHUNK_ROWS:
                row = rows[end]
                size += len(row[1] or b"") if len(row) > 2 else len(row[0] or b"")
                end += 1
                if size >= SNAPSHOT_CHUNK_BYTES:
                    break
            with self._gate.hold(self.path, background=background), self._guard(doing):
                conn = self.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows[start:end])
                    _commit(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            start = end

    def wait_for_snapshot(self) -> None:
        """Wait until the originals are in the state; a `StateError` if they could not be."""
        # Any thread may call this: each one waits for the end, and the error stays, so no
        # caption is ever written after a snapshot that failed.
        thread = self._snapshot
        if thread is not None:
            thread.join()
        error = self._snapshot_error
        if error is not None:
            detail = str(error) if isinstance(error, StateError) else f"{self.path}: {error}"
            raise StateWriteError(
                f"{detail} (could not keep a copy of the original captions; nothing was written)"
            )

    def set_pending(self, pending: Iterable[tuple[str, bytes | None]]) -> None:
        """Record the hashes about to be written, before any file is touched."""
        self.wait_for_snapshot()
        rows = [(h, path_key(c)) for c, h in pending]
        with self.transaction("cannot record the save; no caption was written") as conn:
            conn.executemany("UPDATE files SET pending_hash = ? WHERE caption = ?", rows)

    def set_known(self, known: Iterable[tuple[str, bytes | None]]) -> None:
        """Record what is now on disk; clears the pending write."""
        self.wait_for_snapshot()
        rows = [(h, path_key(c)) for c, h in known]
        doing = "cannot record what is on disk (the next open checks the files again)"
        with self.transaction(doing) as conn:
            conn.executemany(
                "UPDATE files SET known_hash = ?, pending_hash = NULL WHERE caption = ?", rows
            )

    # ---- the edit log ----------------------------------------------------------------------

    def cursor(self) -> int:
        """The number of edits in effect (undo moves it back)."""
        return self._cursor

    def saved_cursor(self) -> int:
        """The cursor when captions were last saved (-1: not reachable by undo/redo)."""
        return self._saved

    def mark_saved(self, cursor: int | None = None) -> None:
        """Record that the captions on disk are the working state at `cursor` (default: now);
        a save passes the cursor it rendered, so edits made meanwhile stay unsaved."""
        value = self._cursor if cursor is None else cursor
        with self.transaction("cannot record the save"):
            self.set_meta("saved", str(value))
        self._saved = value

    def edits(self, upto: int | None = None) -> list[Edit]:
        """The edits up to `upto` (default: the cursor), oldest first; each payload is a JSON
        object (a damaged row is a `CorruptStateError`)."""
        limit = self._cursor if upto is None else upto
        with self._guard("cannot read the edit log"):
            rows = self.conn.execute(
                "SELECT seq, kind, payload FROM edits WHERE seq <= ? ORDER BY seq", (limit,)
            ).fetchall()
        out = []
        for seq, kind, raw in rows:
            if not isinstance(kind, str) or not isinstance(raw, str):
                raise self.damaged(f"edit {seq} is not text")
            try:
                payload = json.loads(raw)
            except ValueError:
                raise self.damaged(f"edit {seq} ({_shown(kind)}) is not valid JSON") from None
            if not isinstance(payload, dict):
                raise self.damaged(f"edit {seq} ({_shown(kind)}) is not an object")
            out.append(Edit(seq, kind, payload))
        return out

    def append_edit(
        self, kind: str, payload: dict[str, Any], blobs: dict[str, bytes | None] | None = None
    ) -> Edit:
        """Append an edit after the cursor (dropping any redo history) and commit it.

        A `StateError` when it cannot be committed: then nothing changed."""
        doing = "the edit was not saved, nor applied"
        with self.transaction(doing) as conn:
            cursor = self._cursor
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
            saved = self._saved
            if saved > cursor:
                # The saved state is no longer reachable by undo/redo.
                saved = -1
                self.set_meta("saved", "-1")
        self._cursor, self._saved = seq, saved
        return Edit(seq, kind, payload)

    def blob(self, seq: int, caption: str) -> bytes | None:
        """The bytes an edit kept for a caption (an adopted version; None = absent)."""
        with self._guard("cannot read the edit log"):
            row = self.conn.execute(
                "SELECT data FROM blobs WHERE seq = ? AND caption = ?", (seq, path_key(caption))
            ).fetchone()
        if row is None:
            raise self.damaged(f"edit {seq} lost the copy of {_shown(caption)!r}")
        if not (row[0] is None or isinstance(row[0], bytes)):
            raise self.damaged(f"edit {seq} keeps {_shown(caption)!r} as something not bytes")
        return row[0]

    def last_seq(self) -> int:
        with self._guard("cannot read the edit log"):
            row = self.conn.execute("SELECT max(seq) FROM edits").fetchone()
        return int(row[0] or 0)

    def move_cursor(self, seq: int) -> None:
        with self.transaction("undo/redo was not saved, nor applied"):
            self.set_meta("cursor", str(seq))
        self._cursor = seq

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
    _MEASURE_TYPES = ((str, bytes), int, int, int, bytes, int, int, (int, float), int, str)

    def measures(self) -> dict[str, tuple[Any, ...]]:
        """The cached image measures: image → its row, as given to `save_measures`.

        Empty when none were saved yet (the table is created by the first save). A cache:
        rows that are not what `save_measures` writes are left out (measured again)."""
        try:
            rows = self.conn.execute(
                "SELECT image, version, size, mtime_ns, digest, width, height, sharpness, "
                "dhash, error FROM measures"
            ).fetchall()
        except (sqlite3.Error, StateError):  # no table yet, or one that cannot be read
            return {}
        return {
            path_from_key(r[0]): (path_from_key(r[0]), *r[1:8], r[8] & 0xFFFF_FFFF_FFFF_FFFF, r[9])
            for r in rows
            if all(isinstance(v, t) for v, t in zip(r, self._MEASURE_TYPES, strict=True))
        }

    def save_measures(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Cache image measures, replacing older rows of the same images (safe from a worker
        thread, like every method: see the class's threading contract)."""
        if self.read_only:
            raise StateError(f"{self.path}: opened read-only; measures are not saved")
        data = [(path_key(row[0]), *row[1:8], _signed64(row[8]), row[9]) for row in rows]
        if not data:
            return
        with self.transaction("cannot save image measures") as conn:
            conn.execute(self._MEASURES_SQL)
            conn.executemany("INSERT OR REPLACE INTO measures VALUES (?,?,?,?,?,?,?,?,?,?)", data)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _is_hash(value: object) -> bool:
    return value is None or (isinstance(value, bytes) and len(value) == 16)


def reset_state(root: Path) -> Path | None:
    """Move the dataset's state folder aside to `.lora-curator.bak-YYYYmmdd-HHMMSS/` (a
    dot-folder inside the dataset, so the scan skips it) and return where it went; None when
    there is no state. Refused (`DatasetLockedError`) while another lora-curator has the
    dataset open. Nothing in the state is read: a damaged one is moved like any other."""
    folder = root / STATE_DIR
    if not os.path.lexists(folder):
        return None
    lock_fd = None
    try:
        if folder.is_dir() and not folder.is_symlink():
            lock_fd = _acquire_lock(folder)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = root / f"{STATE_DIR}.bak-{stamp}"
        n = 1
        while os.path.lexists(backup):
            n += 1
            backup = root / f"{STATE_DIR}.bak-{stamp}-{n}"
        os.rename(folder, backup)
        fsync_folder(root)
    except OSError as exc:
        raise StateError(
            f"{folder}: cannot move the state aside ({exc.strerror or exc}); "
            "check the dataset folder is writable"
        ) from None
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    return backup


def state_exists(root: Path) -> bool:
    return os.path.exists(state_path(root))
