"""Writing captions back and restoring the originals: the only code that writes them.

Functions of an open `Workspace` (its scan, sources, hashes and store): `apply` renders and
writes every caption that changes, `restore` puts the original bytes back. Each file is
checked on disk right before it is written; what is not written is reported, never lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.dataset import (
    CaptionRefused,
    ImageEntry,
    NotRegularFileError,
    Problem,
    read_caption_file,
)
from tui.core.store import content_hash
from tui.core.writer import fsync_folder, write_file_atomic

if TYPE_CHECKING:  # the workspace calls in here; this module never needs it at run time
    from tui.core.workspace import Workspace


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


def save_outcome(ws: Workspace, entry: ImageEntry) -> tuple[str, bytes | str]:
    """What a save does with one image's caption, before touching the disk:
    ("write", bytes) | ("unchanged", "") | ("collision" | "empty", "") | ("refuse", why)."""
    caption = entry.caption
    if caption in ws.scan.collisions:
        return "collision", ""
    text = ws.caption_for(entry.image)
    if not text:
        return "empty", ""
    data = text.encode("utf-8")
    if content_hash(data) == ws.disk_hash.get(caption):
        return "unchanged", ""
    why = ws.unreadable.get(caption)
    if why is not None:
        if why.startswith("cannot read"):
            return "refuse", "could not be read: not written (its tags would be lost)"
        return "refuse", why
    if caption in ws.changed_on_disk:
        return "refuse", _changed_message(ws.disk_hash.get(caption) is None)
    return "write", data


def _current(ws: Workspace, caption: str) -> tuple[Path, bytes | None]:
    """Where a caption is written and its bytes there now (None: absent), checked right
    before writing; `CaptionRefused` or `OSError` when it must not be written."""
    real = os.path.realpath(f"{ws.root}/{caption}")
    why = ws.write_refusal(caption, real)
    if why is not None:
        raise CaptionRefused(why)
    try:
        return Path(real), read_caption_file(real, follow=True, stat_first=True)
    except FileNotFoundError:
        return Path(real), None
    except NotRegularFileError as exc:
        raise CaptionRefused(f"{exc.strerror}: not written") from None


def apply(
    ws: Workspace, overwrite_changed: bool = False, adopt_changed: bool = False
) -> ApplyReport:
    """Write every caption whose bytes change, atomically; report the rest.

    A caption file changed by another tool since lora-curator last read or wrote it is
    never overwritten silently: it fails, unless `adopt_changed` (its content becomes the
    source first) or `overwrite_changed` (ours wins). Each file is checked again right
    before it is written: one changed (created, deleted) since it was read joins
    `changed_on_disk` exactly as at open."""
    for _ in range(2):  # a second round settles what the check before writing found
        for caption in sorted(ws.changed_on_disk):
            if adopt_changed:
                ws.adopt_disk_version(caption)
            elif overwrite_changed:
                ws.keep_ours(caption)
        report = ApplyReport()
        plan = _plan(ws, report)
        if not ws.changed_on_disk or not (adopt_changed or overwrite_changed):
            break
    _write(ws, plan, report)
    return report


def _plan(ws: Workspace, report: ApplyReport) -> list[tuple[str, Path, bytes]]:
    """The writes a save makes, each file checked on disk now; the rest reported."""
    plan: list[tuple[str, Path, bytes]] = []
    seen_captions: set[str] = set()
    targets: dict[Path, str] = {}
    plan_index: dict[str, int] = {}  # caption → its place in the plan
    settled: list[tuple[str, bytes | None]] = []
    for entry in ws.images:
        caption = entry.caption
        outcome, detail = save_outcome(ws, entry)
        if outcome == "write":
            assert isinstance(detail, bytes)
            try:
                target, current = _current(ws, caption)
            except CaptionRefused as exc:
                report.failed.append((caption, str(exc)))
                continue
            except OSError as exc:
                report.failed.append((caption, f"not written: {exc.strerror or exc}"))
                continue
            digest = content_hash(current)
            if digest == content_hash(detail):  # another tool wrote just what we would
                ws.disk_hash[caption] = digest
                settled.append((caption, digest))
                report.unchanged.append(caption)
                continue
            if digest != ws.disk_hash.get(caption):
                # Changed, created or deleted since it was read: flagged as at open.
                gone = current is None
                ws.disk_hash[caption] = digest
                ws.changed_on_disk.add(caption)
                ws.problems.append(Problem(caption, _changed_message(gone)))
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
    if settled and ws.store is not None and not ws.store.read_only:
        ws.store.set_known(settled)
    kept = set(plan_index.values())
    return [w for i, w in enumerate(plan) if i in kept]


def _write(ws: Workspace, plan: list[tuple[str, Path, bytes]], report: ApplyReport) -> None:
    store = ws.store
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
        ws.disk_hash[caption] = digest
        ws.changed_on_disk.discard(caption)
        report.written.append(caption)
    for folder in folders:
        fsync_folder(folder)
    if store is not None:
        written = {c for c, _ in done}
        kept = [(c, ws.disk_hash.get(c)) for c, _, _ in plan if c not in written]
        store.set_known(done + kept)


def restore(ws: Workspace) -> ApplyReport:
    """Put every original caption file back byte for byte (removing those that did not
    exist). The working strategy and edits are kept.

    Only a file whose bytes are what lora-curator last wrote (or still the original) is
    touched: one another tool changed or created is reported and kept, and the rules of
    `apply` hold (never through a link into an image, the state or outside the dataset)."""
    report = ApplyReport()
    if ws.store is None:
        return report
    records = ws.store.file_records()
    done: list[tuple[str, bytes | None]] = []
    for caption, original in sorted(ws.store.originals().items()):
        try:
            target, current = _current(ws, caption)
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
        ws.disk_hash[caption] = digest
        ws.changed_on_disk.discard(caption)
        report.written.append(caption)
    ws.store.set_known(done)
    return report
