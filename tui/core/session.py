"""Saving a dataset's strategy: what `apply` and the app's save each write.

One decision, kept here so the CLI and the app cannot drift apart:

- `write_captions` (the CLI's `apply`): the captions, the strategy they were rendered with
  recorded as the working strategy, and the log marked saved when nothing failed.
- `save_all` (the app's `ctrl+s`): the captions, the profile TOML and its prompt guide beside
  it, and the log marked saved (at the position the save rendered) when nothing failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tui.core import writeback
from tui.core.guide import render_guide
from tui.core.profile import ProfileError, library_path, save_profile
from tui.core.store import StateError
from tui.core.strategy import Strategy
from tui.core.workspace import ApplyReport, Workspace
from tui.core.writer import write_file_atomic


@dataclass
class SaveReport:
    """The outcome of a save: a one-line summary and every file that failed (path, why)."""

    summary: str
    failed: list[tuple[str, str]] = field(default_factory=list)
    captions: ApplyReport | None = None  # None: the captions were not written at all
    profile_path: Path | None = None  # where the profile went (None: not saved)


def guide_text(ws: Workspace) -> str:
    """The prompt guide of the dataset's working strategy."""
    return render_guide(ws.strategy, ws.tag_counts(), len(ws.images))


def write_captions(
    ws: Workspace,
    strategy: Strategy,
    ref: str = "",
    overwrite_changed: bool = False,
    adopt_changed: bool = False,
    progress: writeback.Progress | None = None,
) -> ApplyReport:
    """Record `strategy` (from the profile `ref`) as the working strategy, write every
    caption it changes, and mark the log saved when no file failed. `progress(phase, done,
    total)` hears how the writing goes (see `writeback.apply`).

    `StateError` when the state cannot record it (nothing written then)."""
    ws.use_strategy(strategy, ref)
    report = writeback.apply(
        ws, overwrite_changed=overwrite_changed, adopt_changed=adopt_changed, progress=progress
    )
    if not report.failed:
        ws.mark_saved()
    return report


def save_all(ws: Workspace) -> SaveReport:
    """Write the captions, the profile TOML and its guide, then mark the log saved.

    The log is marked saved at the position this save rendered: an edit made while it runs
    (the app keeps taking keys) stays unsaved. A profile that cannot be written does not stop
    the captions; it is reported like a failed caption. A `StateError` before any caption is
    written gives a report with `captions` None."""
    cursor = ws.edit_cursor()
    try:
        report = ws.apply()
    except StateError as exc:  # e.g. the disk is full: nothing was written
        return SaveReport("not saved", [("state", str(exc))])
    failed = report.failed
    recorded = ws.profile_ref
    profile_path = Path(recorded) if recorded else None
    message = report.summary()
    try:
        if profile_path is None:
            profile_path = library_path(ws.strategy.name or ws.root.name)
        save_profile(ws.strategy, profile_path)
        guide_path = profile_path.with_name(f"{profile_path.stem}.guide.md")
        write_file_atomic(guide_path, guide_text(ws).encode("utf-8"))
        if not recorded and ws.store is not None:
            before = ws.edit_cursor()
            ws.use_strategy(ws.strategy, str(profile_path))
            if cursor == before:  # recording the profile path changes no caption
                cursor = ws.edit_cursor()
        message += f"; profile saved to {profile_path}"
    except (OSError, ProfileError, StateError) as exc:
        failed.append((str(profile_path), f"profile not saved: {exc}"))
        profile_path = None
    if not failed:
        try:
            ws.mark_saved(cursor)
        except StateError as exc:
            failed.append(("state", str(exc)))
    return SaveReport(message, failed, report, profile_path)
