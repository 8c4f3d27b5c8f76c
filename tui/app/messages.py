"""What workers hand back to the UI thread: one small message per kind of result.

The rule (tui/ARCHITECTURE.md, "How workers talk to the app"): a worker thread never touches
a widget or the app's state; it posts one of these to the widget or screen that started it
(`post_message` is thread-safe) and that one's `on_<message>` handler applies it on the UI
thread. They do not bubble: each is meant for the one that asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from textual.message import Message

if TYPE_CHECKING:
    from tui.core.checks import Finding
    from tui.core.query import QueryError, TagIndex
    from tui.core.suggest import Suggestion
    from tui.core.tokens import TokenCounter
    from tui.core.workspace import Workspace


class WorkerMessage(Message):
    """A result from a worker thread, for the one that started it."""

    bubble: ClassVar[bool] = False


@dataclass
class OpenProgress(WorkerMessage):
    """Opening the dataset: `done` of `total` (0: unknown) in a phase (`scan` or `read`)."""

    phase: str
    done: int
    total: int


@dataclass
class FilesListed(WorkerMessage):
    """The dataset's folders are scanned (its captions are being read): its images can be
    listed and previewed meanwhile."""

    root: Path
    images: list[str]


@dataclass
class DatasetOpened(WorkerMessage):
    """The dataset is open: the app owns `workspace` from now on."""

    workspace: Workspace


@dataclass
class LoadFinished(WorkerMessage):
    """What the app derives from an open workspace, made off the UI thread while the file
    list is already usable: the last step of opening before edits (they wait for it)."""

    workspace: Workspace
    warnings: dict[str, list[str]]
    characters: frozenset[str]
    tokens: TokenCounter | None
    aliases: tuple[tuple[str, str], ...]
    implied: dict[str, tuple[int, str]]
    suggestions: dict[str, Suggestion]


@dataclass
class IndexBuilt(WorkerMessage):
    """The file list's query index, built after `LoadFinished` of the workspace as it was
    then (None: it could not be built, `error` says why)."""

    workspace: Workspace
    index: TagIndex | None
    error: str


@dataclass
class QueryDone(WorkerMessage):
    """The file list's query `text` evaluated off the UI thread over `index`: `found` (a
    bytemap, see TagIndex.evaluate) or the `error` that makes it no query."""

    text: str
    index: TagIndex
    found: int | None
    error: QueryError | None


@dataclass
class OpenFailed(WorkerMessage):
    """The dataset could not be opened; `reason` names the file and what to do."""

    reason: str


@dataclass
class Saved(WorkerMessage):
    """Captions, profile and guide were saved (`failed`: (path, why) of what was not)."""

    summary: str
    failed: list[tuple[str, str]]


@dataclass
class PreviewBuilt(WorkerMessage):
    """One preview was built for a cache key (image, width, height)."""

    key: tuple[str, int, int]
    renderable: RenderableType


@dataclass
class MeasureProgress(WorkerMessage):
    """Diagnostics: `done` of `total` images measured."""

    done: int
    total: int


@dataclass
class FindingsReady(WorkerMessage):
    """Diagnostics: every finding, images measured."""

    findings: list[Finding]


@dataclass
class TaggingProgress(WorkerMessage):
    """Tagging from the app: `done` of `total` images scored."""

    done: int
    total: int


@dataclass
class TaggingDone(WorkerMessage):
    """Tagging from the app ended: `tagged` images scored, `failed` (path, why) skipped;
    `error` (the install line, a missing model, ...) when it could not run at all."""

    tagged: int
    failed: list[tuple[str, str]]
    error: str = ""
    device: str = ""  # e.g. "running on CPU (...)"
