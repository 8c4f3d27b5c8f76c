"""The curator: a keyboard-only Textual app over one dataset.

It calls the core for everything (tui.core.workspace.Workspace); it never reads or writes a
caption file itself. Long jobs run in worker threads, which report back only by posting a
message of tui/app/messages.py (the rule is in tui/ARCHITECTURE.md); `busy` says which runs.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import replace
from enum import Enum
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.reactive import Reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from tui.app import graphics
from tui.app.bindings import APP_BINDINGS, BUCKET_KEYS
from tui.app.messages import (
    DatasetOpened,
    FilesListed,
    IndexBuilt,
    LoadFinished,
    OpenFailed,
    OpenProgress,
    QueryDone,
    Saved,
    TaggingDone,
    TaggingProgress,
)
from tui.app.screens.dialogs import ConfirmScreen, ProfilePicker, PromptScreen
from tui.app.screens.help import HelpScreen
from tui.app.screens.image import ImageScreen
from tui.app.screens.reports import DiagnosticsScreen, GuideScreen
from tui.app.themes import DEFAULT_THEME, bucket_colour_defaults, load_themes, stylesheet
from tui.app.widgets.caption_view import CaptionView
from tui.app.widgets.file_list import FileList
from tui.app.widgets.preview import PreviewPane
from tui.app.widgets.tag_list import TagList
from tui.app.widgets.virtual_list import VirtualList
from tui.core.captions import parse_tags
from tui.core.heap import give_back_free_memory
from tui.core.implied import implied_counts_ids, workspace_implied
from tui.core.profile import (
    ProfileError,
    list_library,
    load_profile,
)
from tui.core.query import QueryError, TagIndex, build_index, index_source, workspace_index
from tui.core.scores import character_tags
from tui.core.session import guide_text, save_all
from tui.core.store import StateError
from tui.core.strategy import PATTERNS, UNSORTED, Concept, Strategy
from tui.core.suggest import suggest_buckets
from tui.core.text import is_safe, safe_text
from tui.core.tokens import load_counter
from tui.core.workspace import Workspace
from tui.progress import describe

# Full garbage collections wait for this long a pause in typing (one costs 15-50 ms at 100k
# images). Without them the cyclic garbage of each key is never reclaimed: bench/memory.py
# measured +269 MB over 2000 keys at 100k images, +17 MB with them.
IDLE_GC_SECONDS = 1.5


class Busy(Enum):
    """The long job running, if any: edits wait while one runs (see `EDIT_ACTIONS`)."""

    IDLE = ""
    LOADING = "loading"
    SAVING = "saving"
    CHECKING = "checking"

    def __bool__(self) -> bool:
        return self is not Busy.IDLE


# Actions that change the working state: disabled while the dataset loads or saves.
EDIT_ACTIONS = {
    "bucket",
    "toggle_image_tag",
    "add_tag",
    "cycle_pattern",
    "edit_trigger",
    "save",
    "undo",
    "redo",
    "open_profile",
    "adopt_disk",
    "keep_ours",
    "accept_suggestion",
    "accept_all_suggestions",
    "diagnostics",
    "new_concept",
    "threshold",
    "batch_add",
    "batch_remove",
    "rename_tag",
    "merge_tag",
}
# The app's own phases of opening, as the status bar names them; Workspace.open's (scan,
# read) are named as the command line's progress names them (tui/progress.py).
OPEN_PHASES = {
    "tidy": "almost open",
    "counts": "counting tags",
    "implied": "finding implied tags",
    "index": "indexing for queries",
}


OPEN_PROGRESS_EVERY = 0.1  # seconds between two progress updates of one phase of opening


def phase_label(phase: str) -> str:
    """What the status bar calls a phase of opening."""
    return OPEN_PHASES.get(phase) or describe(phase)[0]


# How far below the general threshold a tag is shown as a candidate in the image view.
CANDIDATE_MARGIN = 0.10


class CuratorScreen(Screen[None]):
    """The curator's screen. Textual repaints a whole screen when its focus moves (its
    `focused` reactive); the widgets that gain and lose the focus repaint themselves (their
    styles change), so here nothing else is sent: `tab` costs two panes, not a screen."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)


class CuratorApp(App[int]):
    """Open with a dataset folder and, optionally, a profile (a strategy to start from)."""

    TITLE = "lora-curator"
    CSS = stylesheet()
    BINDINGS = APP_BINDINGS
    ENABLE_COMMAND_PALETTE = True
    # Below 100 columns the screen gets `-compact`: the preview gives its room away.
    HORIZONTAL_BREAKPOINTS = [(0, "-compact"), (100, "-wide")]
    # None: no collection when idle (bench/memory.py measures the app without it).
    idle_gc_seconds: float | None = IDLE_GC_SECONDS

    def __init__(
        self,
        dataset: str | Path,
        profile: Strategy | None = None,
        profile_ref: str = "",
        theme: str | None = None,
        keymap: dict[str, str] | None = None,
        warnings: Iterable[str] = (),
        model: str | None = None,
    ) -> None:
        super().__init__()
        self.model = model  # the tagger model for ctrl+t (None: the last one `tag` used)
        self.tagging = ""  # the tagging progress shown in the status bar ("" = not tagging)
        self.dataset = Path(dataset)
        self.start_profile = profile
        self.start_profile_ref = profile_ref
        self.requested_theme = theme
        self.keymap = dict(keymap or {})
        self.start_warnings = list(warnings)
        self.ws: Workspace | None = None
        self.image: str | None = None
        self.busy = Busy.LOADING
        self.filter_target: VirtualList[str] | None = None
        self.fatal = ""  # why the app could not open the dataset
        self.not_saved = ""  # why the last change could not be saved ("" = it was)
        # Bucket keys act on the current image's concept (True) or on the profile (False).
        self.keys_on_concept = False
        self.concept_scope = ""  # the concept the file list is narrowed to ("" = none)
        self._footer_shows_disk_keys = False
        self._idle_gc: Timer | None = None
        self.loading_phase = ""  # what the background part of opening does ("" = done)
        self._last_key = 0.0  # time.monotonic() of the last key
        self._garbage = False  # a key came since the last idle collection
        # The file list's query index needs building again (the images' tags changed).
        self._index_stale = True

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification is literal text: messages quote tags, file names and profile
        names, which must neither be read as Rich markup nor reach the terminal raw."""
        super().notify(
            safe_text(str(message), keep_lines=True),
            title=safe_text(str(title)),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # ---- layout -----------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return CuratorScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with Horizontal(id="main"):
            yield FileList(id="files")
            yield PreviewPane(id="preview")
            yield TagList(id="tags")
        yield Input(placeholder="filter (enter keeps it, escape clears)", id="filter")
        yield CaptionView("", id="caption")
        yield Footer()

    @property
    def files(self) -> FileList:
        return self.query_one("#files", FileList)

    @property
    def tags(self) -> TagList:
        return self.query_one("#tags", TagList)

    @property
    def preview(self) -> PreviewPane:
        return self.query_one("#preview", PreviewPane)

    @property
    def caption(self) -> CaptionView:
        return self.query_one("#caption", CaptionView)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Bucket colours for any theme that does not define them (Textual's built-ins).
        return bucket_colour_defaults()

    def on_mount(self) -> None:
        for theme in load_themes():
            self.register_theme(theme)
        wanted = self.requested_theme or DEFAULT_THEME
        if self.get_theme(wanted) is None:
            self.notify(f"no theme named {wanted!r}; using {DEFAULT_THEME}", severity="warning")
            wanted = DEFAULT_THEME
        self.theme = wanted
        if self.keymap:
            self.set_keymap(self.keymap)
        for warning in self.start_warnings:
            self.notify(warning, severity="warning", timeout=8)
        self.files.on_move = self._file_moved
        self.files.query_runner = self._run_query
        self.files.border_title = "Files"
        self.tags.border_title = "Tags · image"
        self.preview.border_title = "Preview"
        self.caption.border_title = "Caption"
        self.files.focus()
        self._set_status(Text(f"opening {safe_text(str(self.dataset))} …"))
        self._open_dataset()

    # ---- loading ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="open")
    def _open_dataset(self, strategy: Strategy | None = None, ref: str = "") -> None:
        start = strategy or self.start_profile
        start_ref = ref or self.start_profile_ref

        shown = ["", 0.0]  # the phase last posted, and when

        def progress(phase: str, done: int, total: int) -> None:
            # At most ten a second: each one redraws the status bar on the UI thread, which
            # would take the time (and the GIL) from the open it reports on.
            now = time.monotonic()
            if phase == shown[0] and now - shown[1] < OPEN_PROGRESS_EVERY and done != total:
                return
            shown[0], shown[1] = phase, now
            self.post_message(OpenProgress(phase, done, total))

        def listed(root: Path, images: list[str]) -> None:
            self.post_message(FilesListed(root, images))

        try:
            ws = Workspace.open(self.dataset, strategy=start, progress=progress, listed=listed)
        except Exception as exc:  # shown to the user once the screen is back
            self.post_message(OpenFailed(str(exc)))
            return
        try:
            if start is not None:
                ws.use_strategy(start, start_ref)
        except Exception as exc:  # shown to the user, the app stays up
            with suppress(StateError):  # the first error is the one to tell
                ws.close()  # never keep the dataset locked
            self.post_message(OpenFailed(str(exc)))
            return
        # The loaded dataset is long-lived: collect once here, while the screen only says
        # "opening", and freeze it, so collections during keys never rescan it.
        progress("tidy", 0, 0)
        gc.collect()
        gc.freeze()
        self.post_message(DatasetOpened(ws))

    def on_open_progress(self, message: OpenProgress) -> None:
        if self.ws is not None and self.busy is Busy.LOADING:  # the files are shown already
            self.loading_phase = phase_label(message.phase)
            self._update_status()
            return
        label = phase_label(message.phase)
        done, total = message.done, message.total
        shown = f"{done:,}/{total:,} " if total else f"{done:,} " if done else ""
        self._set_status(Text(f"opening … {shown}{label}"))

    def on_open_failed(self, message: OpenFailed) -> None:
        # Nothing to curate: leave the screen and say why on the terminal.
        self.fatal = message.reason
        self.exit(1)

    def on_files_listed(self, message: FilesListed) -> None:
        """The folders are scanned, the captions not read yet: the images can be browsed
        and previewed already; tags, caption and edits come with the workspace."""
        if self.ws is not None:  # opened again (another profile): the list is shown
            return
        self.files.index_pending = True  # a query typed now waits for the index
        self.preview.root = message.root
        self.files.set_rows(message.images)
        self._show_image(self.files.current)

    def on_dataset_opened(self, message: DatasetOpened) -> None:
        self._loaded(message.workspace)

    def _loaded(self, ws: Workspace) -> None:
        """The workspace is open: show the files now (they are usable: moving, previews,
        `/` typed), and derive the rest (tag counts, warnings, suggestions, the query index)
        in a worker; edits wait for it (`busy` stays LOADING until `on_load_finished`)."""
        if self.ws is not None and self.ws is not ws:
            self.ws.close()
        self.ws = ws
        self.busy = Busy.LOADING
        self.loading_phase = OPEN_PHASES["counts"]
        self._implied_cache = None
        self._characters = frozenset()
        self.tags.suggestions = {}
        self.tags.counts_ready = False  # counting every tag is the worker's first step
        self.files.workspace = ws
        self.files.warnings = {}
        self.files.index = None
        self._index_stale = True
        self.files.index_pending = True  # a query typed now is applied once the index is in
        self.tags.workspace = ws
        self.preview.root = ws.root
        self.files.set_rows([e.image for e in ws.images])
        self._show_image(self.files.current)
        # Run full collections when the user pauses, not in the middle of a key.
        gc.set_threshold(700, 10, 1_000_000)
        if self._idle_gc is None and self.idle_gc_seconds is not None:
            self._idle_gc = self.set_interval(self.idle_gc_seconds / 3, self._collect_when_idle)
        self.refresh_bindings()
        self._finish_loading(ws)

    @work(thread=True, exclusive=True, group="finish")
    def _finish_loading(self, ws: Workspace) -> None:
        """Everything the app derives from the whole dataset, off the UI thread. It reads
        the workspace while edits are off (`busy`) until its `LoadFinished`; the query index
        is built after that, of what was read before (`IndexBuilt`): edits need no index."""

        def phase(name: str) -> None:
            self.post_message(OpenProgress(name, 0, 0))

        try:
            ws.tag_counts()  # cached in the workspace: the tag list's counts
            warnings = ws.warnings_by_image()
            # WD14's character names, when the dataset was tagged here (read once per dataset).
            characters = character_tags(ws.root)
            tokens = load_counter()
            phase("implied")
            aliases = tuple(sorted(ws.strategy.alias_index.items()))
            # Every image's tags as interned ids (aliases applied), for both passes below.
            source = index_source(ws)
            implied = implied_counts_ids(source.tags)
            suggestions = suggest_buckets(
                ws.tag_counts(), len(ws.images), ws.strategy, implied, characters
            )
        except Exception as exc:  # nothing is edited yet (edits wait): say why and leave
            self.post_message(OpenFailed(f"{ws.root}: cannot finish loading: {exc}"))
            return
        self.post_message(
            LoadFinished(ws, warnings, characters, tokens, aliases, implied, suggestions)
        )
        try:  # of `source` alone: the workspace may be edited meanwhile (the status bar
            # names this phase from `on_load_finished` on)
            index = build_index(source)
        except Exception as exc:  # edits may have begun: they are saved; the app stays
            self.post_message(IndexBuilt(ws, None, str(exc)))
            return
        del source  # its posting lists: the index keeps its own
        give_back_free_memory()
        self.post_message(IndexBuilt(ws, index, ""))

    def on_load_finished(self, message: LoadFinished) -> None:
        ws = message.workspace
        if ws is not self.ws:  # opened again meanwhile: that open's result will come
            return
        self.files.warnings = message.warnings
        self._characters = message.characters
        self.caption.tokens = message.tokens
        self._implied_cache = (ws, message.aliases, message.implied)
        self.tags.suggestions = message.suggestions
        self.tags.counts_ready = True
        # The index comes next (`on_index_built`), of the workspace as it is now: an edit
        # made meanwhile makes it stale (`_refresh_all`).
        self._index_stale = False
        self.busy = Busy.IDLE
        self.loading_phase = OPEN_PHASES["index"]
        self.files.refresh_rows()
        self.tags.refresh_rows()
        self._show_caption()
        self._update_status()
        self.refresh_bindings()

    def on_index_built(self, message: IndexBuilt) -> None:
        if message.workspace is not self.ws:  # opened again meanwhile
            return
        self.loading_phase = ""
        self.files.index = message.index
        self.files.index_pending = False
        if message.index is None:  # built again when the filter is next opened
            self._index_stale = True
            self.notify(f"cannot index the tags for queries: {message.error}", severity="error")
        if self.files.filter_text.strip():  # typed while the index was being built
            if message.index is not None:
                self._fresh_index()  # when an edit came meanwhile: that index is stale
            self.files.set_filter(self.files.filter_text)
            self._show_query_state()
        self._update_status()
        # What was made in the background is long-lived too (see `_open_dataset`).
        gc.freeze()

    # ---- showing ----------------------------------------------------------------------------

    _status_shown: Text | None = None

    def _set_status(self, text: Text) -> None:
        if text == self._status_shown:  # unchanged: nothing to send to the terminal
            return
        self._status_shown = text
        self.query_one("#status", Static).update(text, layout=False)

    def _update_status(self) -> None:
        ws = self.ws
        if ws is None:
            return
        s = ws.strategy
        # Short enough for 80 columns: the value first, its label after.
        parts: list[tuple[str, str]] = [
            (safe_text(s.trigger) or "no trigger", ""),
            (s.pattern, ""),
            # One suggestion per unsorted tag: their number is the count.
            (
                "…" if self.busy is Busy.LOADING else str(len(self.tags.suggestions)),
                " unsorted",
            ),
            (f"{len(ws.images):,}", " images"),
        ]
        if s.concepts:
            concept = ws.concept_of(self.image) if self.image else None
            parts.append((safe_text(concept.name) if concept else "no concept", ""))
            target = self._bucket_target()
            parts.append(("keys→", safe_text(target.name) if target else "profile"))
            if self.concept_scope:
                parts.append(("only ", safe_text(self.concept_scope)))
        if self.files.warnings:
            parts.append((str(len(self.files.warnings)), " need a look"))
        if ws.unsaved:
            parts.append(("● unsaved", ""))
        if self.not_saved:
            parts.append(("⚠ last change NOT saved", ""))
        if ws.has_scores and s.tagger.source != "caption":
            t = s.tagger
            if t.mode == "mcut":
                parts.append(("mcut", " tagger"))
            else:
                parts.append(
                    (f"{t.general_threshold:.2f}/{t.character_threshold:.2f}", " thresholds")
                )
        if self.tagging:
            parts.append((self.tagging, ""))
        if self.loading_phase and (self.busy is Busy.LOADING or self.files.index_pending):
            parts.append((f"{self.loading_phase} …", ""))
        if self.busy and self.busy is not Busy.LOADING:
            parts.append((f"{self.busy.value}…", ""))
        text = Text()
        text.append(f" {safe_text(s.name or ws.root.name)} ", style="bold reverse")
        for value, label in parts:
            text.append(" │ ", style="dim")
            text.append(value, style="bold")
            text.append(label)
        self._set_status(text)

    def _show_image_tags(self, image: str | None, keep: str | None = None) -> None:
        """The tag list's image view: the image's tags, those removed from it marked."""
        ws = self.ws
        assert ws is not None
        if image is None:
            self.tags.show_image_tags([], frozenset(), keep)
            return
        rows = list(ws.image_tags(image, include_removed=True))
        removed = ws.removed_on(image, rows)
        # The tagger's scores after each tag, and the tags just under the threshold (dim).
        scores = {tag.casefold(): score for tag, _, score in ws.image_scores(image)}
        candidates = [tag for tag, _ in ws.tagger_candidates(image, CANDIDATE_MARGIN)]
        self.tags.show_image_tags(rows + candidates, removed, keep, scores, candidates)

    def _dataset_rows(self) -> list[str]:
        ws = self.ws
        assert ws is not None
        counts = ws.tag_counts()
        return sorted(counts, key=lambda t: (-counts[t], t.casefold()))

    def _show_image(self, image: str | None) -> None:
        ws = self.ws
        if ws is None:  # still opening: once the files are listed, their pictures show
            if self.preview.root is not None:
                self.image = image
                self.preview.show(image, self._neighbours())
            return
        self.image = image
        self.tags.concept = ws.concept_of(image) if image else None
        if not self.tags.dataset_view:
            self._show_image_tags(image)
        else:
            self.tags.refresh_rows()
        neighbours = self._neighbours()
        self.preview.show(image, neighbours)
        if isinstance(self.screen, ImageScreen):  # `]` / `[` in the full-screen view
            self.screen.show(image, neighbours)
        self._show_caption()
        self._update_status()
        # The Footer rebuilds itself on a bindings refresh (tens of ms): only when the
        # adopt/overwrite keys appear or go.
        changed = self._changed_on_disk(image)
        if changed != self._footer_shows_disk_keys:
            self._footer_shows_disk_keys = changed
            self.refresh_bindings()

    def _neighbours(self) -> list[str]:
        """The images next to the cursor's, whose previews are made ahead."""
        rows = self.files.rows
        i = self.files.cursor
        return [rows[j] for j in (i + 1, i - 1, i + 2) if 0 <= j < len(rows)]

    def _show_caption(self) -> None:
        ws = self.ws
        assert ws is not None
        notes = list(self.files.warnings.get(self.image or "", []))
        if self._changed_on_disk(self.image):
            notes.insert(
                0,
                "changed on disk by another tool: A adopts its tags as the source, "
                "O overwrites it with this caption on save",
            )
        self.caption.show(ws, self.image, notes)

    _implied_cache: tuple[object, tuple[tuple[str, str], ...], dict[str, tuple[int, str]]] | None
    _implied_cache = None
    _characters: frozenset[str] = frozenset()

    def _implied_counts(self) -> dict[str, tuple[int, str]]:
        """Which tags a more specific tag implies, per image (for the suggestions). Counted
        when the dataset opens and when the aliases change, not after every per-image edit:
        it walks every image (half a second at 100k), and one image's edit barely moves a
        share of images."""
        ws = self.ws
        assert ws is not None
        aliases = tuple(sorted(ws.strategy.alias_index.items()))
        hit = self._implied_cache
        if hit is not None and hit[0] is ws and hit[1] == aliases:
            return hit[2]
        found = workspace_implied(ws, dict(aliases))
        self._implied_cache = (ws, aliases, found)
        return found

    def _update_suggestions(self, changed: list[str] | None = None) -> None:
        """Suggest a bucket for every unsorted tag; after a bucket change of `changed` tags
        only, only theirs can differ (unless aliases map other tags onto them)."""
        ws = self.ws
        assert ws is not None
        counts = ws.tag_counts()
        implied = self._implied_counts()
        if changed is None or ws.strategy.aliases:
            self.tags.suggestions = suggest_buckets(
                counts, len(ws.images), ws.strategy, implied, self._characters
            )
            return
        subset = {t: counts[t] for t in changed if t in counts}
        suggestions = dict(self.tags.suggestions)
        for tag in changed:
            suggestions.pop(tag, None)
        suggestions.update(
            suggest_buckets(subset, len(ws.images), ws.strategy, implied, self._characters)
        )
        self.tags.suggestions = suggestions

    def _refresh_all(self, changed_tags: list[str] | None = None) -> None:
        """After a change of the working state: every pane shows it in this frame.
        `changed_tags`: only these tags changed bucket (a cheaper update)."""
        ws = self.ws
        if ws is None:
            return
        self._update_suggestions(changed_tags)
        index = self.files.index
        if changed_tags is not None and index is not None and not self._index_stale:
            # Only buckets moved: the tags of the images are the same.
            with self.files.query_lock:  # not while a query worker reads it
                index.set_buckets(ws.strategy.bucket_of, changed_tags)
                index.set_changed(ws.will_change)
        else:
            self._index_stale = True
            if self.files.filter_text.strip():
                self._fresh_index()  # the shown rows stay; the next keystroke sees the edit
        if self.tags.dataset_view:
            self.tags.refresh_rows()
        elif self.image is not None:
            self._show_image_tags(self.image)
        self.files.refresh_rows()
        self._show_caption()
        self._update_status()

    def _file_moved(self, image: str | None) -> None:
        # Straight from the cursor's move: the image comes in the cursor's frame.
        if image != self.image:
            self._show_image(image)

    def on_virtual_list_highlighted(self, event: VirtualList.Highlighted[str]) -> None:
        if event.list is self.files and event.row != self.image:
            self._show_image(event.row)

    # ---- actions ----------------------------------------------------------------------------

    def _change(self, change: Callable[[], object]) -> bool:
        """Run one change of the working state. When the state cannot commit it (disk full,
        a damaged database, ...) the change is not made: the user is told (notification and
        status bar), and the app goes on as it was."""
        try:
            change()
        except StateError as exc:
            self.not_saved = str(exc)
            self.notify(
                f"not saved, not applied: {exc}", severity="error", timeout=20, markup=False
            )
            self._update_status()
            return False
        self.not_saved = ""
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in EDIT_ACTIONS and (self.ws is None or self.busy):
            return False
        if action in ("adopt_disk", "keep_ours"):
            # Shown only for an image whose caption another tool changed.
            return self._changed_on_disk(self.image) or None
        return True

    def _changed_on_disk(self, image: str | None) -> bool:
        ws = self.ws
        return ws is not None and ws.is_changed_on_disk(image)

    def action_adopt_disk(self) -> None:
        self._settle_disk_change(adopt=True)

    def action_keep_ours(self) -> None:
        self._settle_disk_change(adopt=False)

    def _settle_disk_change(self, adopt: bool) -> None:
        """For a caption another tool changed: take its tags (adopt) or let ours win."""
        ws = self.ws
        if ws is None or self.image is None or not self._changed_on_disk(self.image):
            return
        caption = ws.caption_path(self.image)
        if adopt:
            if not self._change(partial(ws.adopt_disk_version, caption)):
                return
            self.notify("the file's new tags are now its source (ctrl+z undoes)")
        else:
            if not self._change(partial(ws.keep_ours, caption)):
                return
            self.notify("the next save overwrites this file with the caption shown")
        self._refresh_all()
        self._footer_shows_disk_keys = False
        self.refresh_bindings()

    def action_bucket(self, bucket: str) -> None:
        ws = self.ws
        tag = self.tags.current
        if ws is None or tag is None:
            return
        target = self._bucket_target()
        change = [(ws.strategy.alias_of(tag), bucket)]  # the tag as written (aliases)
        if not self._change(partial(ws.set_buckets, change, target.name if target else "")):
            return
        self._refresh_all(changed_tags=[tag])
        self._move_to_next_unsorted()

    def _move_to_next_unsorted(self) -> None:
        ws = self.ws
        assert ws is not None
        rows = self.tags.rows
        start = self.tags.cursor
        s = ws.strategy
        concept = self._bucket_target()
        for offset in range(1, len(rows) + 1):
            i = (start + offset) % len(rows)
            if s.effective_bucket(rows[i], concept) == UNSORTED:
                self.tags.cursor = i
                return

    def action_accept_suggestion(self) -> None:
        ws = self.ws
        tag = self.tags.current
        if ws is None or tag is None:
            return
        suggestion = self.tags.suggestions.get(tag)
        if suggestion is None:
            self.notify(f"{tag} is already in a bucket")
            return
        # The tag as written (aliases).
        if not self._change(partial(ws.set_buckets, [(suggestion.tag, suggestion.bucket)])):
            return
        self._refresh_all(changed_tags=[tag])
        self._move_to_next_unsorted()

    def action_accept_all_suggestions(self) -> None:
        ws = self.ws
        if ws is None:
            return
        changes = list({s.tag: (s.tag, s.bucket) for s in self.tags.suggestions.values()}.values())
        if not changes:
            self.notify("no unsorted tag left")
            return
        if not self._change(partial(ws.set_buckets, changes)):  # one edit: one undo step
            return
        self._refresh_all()
        self.notify(f"{len(changes)} suggestion(s) accepted (ctrl+z undoes them all)")

    def action_diagnostics(self) -> None:
        ws = self.ws
        if ws is None:
            return
        self.busy = Busy.CHECKING

        def done(image: str | None) -> None:
            self.busy = Busy.IDLE
            if image is not None:
                self.files.set_filter("")
                self.files.move_to(image)
            self._update_status()

        self.push_screen(DiagnosticsScreen(ws), done)

    def action_guide(self) -> None:
        ws = self.ws
        if ws is None:
            return
        self.push_screen(GuideScreen(self._guide_text()))

    def _guide_text(self) -> str:
        ws = self.ws
        assert ws is not None
        return guide_text(ws)

    def action_toggle_image_tag(self) -> None:
        ws = self.ws
        tag = self.tags.current
        if ws is None or tag is None or self.image is None:
            return
        if self.tags.dataset_view:
            self.notify("space edits one image: switch to the image view with v first")
            return
        if tag in self.tags.candidates:  # a tag under the threshold: added to this image
            change = partial(ws.edit_image_tags, self.image, add=[tag])
        elif tag in ws.removed_on(self.image):
            change = partial(ws.edit_image_tags, self.image, restore=[tag])
        else:
            change = partial(ws.edit_image_tags, self.image, remove=[tag])
        if self._change(change):
            self._refresh_all()

    def action_add_tag(self) -> None:
        ws = self.ws
        if ws is None or self.image is None:
            return
        image = self.image

        def done(value: str | None) -> None:
            if not value or self.ws is None:
                return
            new = parse_tags(value, self.ws.strategy.caption.underscores)
            have = {t.casefold() for t in self.ws.image_tags(image)}
            if new and all(t.casefold() in have for t in new):
                self.notify(f"{', '.join(new)}: already on this image")
                return
            if new and self._change(partial(self.ws.edit_image_tags, image, add=list(new))):
                self._refresh_all()
                self.tags.move_to(new[0])

        # A completion is typed into the box as it is shown: only tags that show as they are.
        # The tags the image lacks come first, the most used first: `bl` completes to a tag
        # the image can still get, not to the `black hair` it has.
        counts = ws.tag_counts()
        have = {t.casefold() for t in ws.image_tags(image)}
        suggestions = sorted(
            (t for t in counts if is_safe(t)),
            key=lambda t: (t.casefold() in have, -counts[t], t.casefold()),
        )
        self.push_screen(
            PromptScreen(
                f"Add a tag to {image}",
                suggestions=suggestions,
                present=ws.image_tags(image),
                present_note="{} is already on this image",
            ),
            done,
        )

    # ---- batches: the images the file list shows, the tags of the dataset ------------------

    def _shown_images(self) -> list[str] | None:
        """The images a batch acts on: those the filtered file list shows (None: the list is
        not filtered, and the user is told how to filter it)."""
        if not self.files.filter_text.strip() and self.files.scope is None:
            self.notify(
                "filter the files first (/ types a query, e.g. black hair, -smile): "
                "a batch acts on every image shown"
            )
            return None
        return list(self.files.rows)

    def _safe_tags(self, tags: Iterable[str]) -> list[str]:
        # A completion is typed into the box as it is shown: only tags that show as they are.
        return sorted((t for t in tags if is_safe(t)), key=str.casefold)

    def action_batch_add(self) -> None:
        ws = self.ws
        if ws is None:
            return
        shown = self._shown_images()
        if shown is None:
            return
        self._ask_batch_tag(
            shown,
            f" b: adds a tag to each of the {len(shown):,} images shown",
            f"Add a tag to each of the {len(shown):,} images shown (one undo step)",
            ws.tag_counts(),
            remove=False,
        )

    def _ask_batch_tag(
        self, shown: list[str], status: str, title: str, tags: Iterable[str], remove: bool
    ) -> None:
        """Ask which tag a batch adds to (or removes from) the images shown, then run it."""
        self._set_status(Text(status))

        def done(value: str | None) -> None:
            ws = self.ws
            self._update_status()
            if not value or ws is None:
                return
            typed = list(parse_tags(value, ws.strategy.caption.underscores))
            if remove:
                self._run_batch(shown, remove=typed)
            else:
                self._run_batch(shown, add=typed)

        self.push_screen(PromptScreen(title, suggestions=self._safe_tags(tags)), done)

    def action_batch_remove(self) -> None:
        ws = self.ws
        if ws is None:
            return
        shown = self._shown_images()
        if shown is None:
            return
        tag = self.tags.current
        if tag is None:
            self._ask_batch_tag(
                shown,
                f" x: removes a tag from the {len(shown):,} images shown",
                f"Remove a tag from the {len(shown):,} images shown (one undo step)",
                {t for image in shown for t in ws.image_tags(image)},
                remove=True,
            )
            return
        targets = ws.batch_targets(shown, remove=[tag])
        if not targets:
            self.notify(f"none of the {len(shown):,} images shown has {safe_text(tag)}")
            return
        question = (
            f"Remove {tag} from {len(targets):,} image(s) "
            f"(of the {len(shown):,} shown)? One undo step."
        )
        self._set_status(Text(f" x: {safe_text(question)}"))  # the dialog escapes its own

        def confirmed(yes: bool | None) -> None:
            self._update_status()
            if yes:
                self._run_batch(shown, remove=[tag])

        self.push_screen(ConfirmScreen(question), confirmed)

    def _run_batch(
        self, images: list[str], add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """One batch edit (one undo step), and what it did."""
        ws = self.ws
        if ws is None or not (add or remove):
            return
        touched: list[int] = []
        if not self._change(lambda: touched.append(ws.edit_many(images, add=add, remove=remove))):
            return
        what = ", ".join(safe_text(t) for t in [*add, *remove])
        if not touched[0]:
            self.notify(f"nothing to change: the {len(images):,} images shown are as asked")
            return
        verb = "added to" if add else "removed from"
        self.notify(
            f"{what} {verb} {touched[0]:,} image(s) of the {len(images):,} shown (ctrl+z undoes)"
        )
        self._refresh_all()

    def action_rename_tag(self) -> None:
        ws = self.ws
        tag = self.tags.current
        if ws is None or tag is None:
            return
        current = ws.strategy.alias_of(tag)
        n = ws.tag_counts().get(tag, 0)

        def done(value: str | None) -> None:
            if value is None or not value.strip() or value.strip() == current:
                return
            self._set_alias(tag, value.strip())

        self.push_screen(
            PromptScreen(
                f"Rename {tag} in every caption ({n:,} images; an alias, ctrl+z undoes)",
                value=safe_text(current) if current != tag else "",
            ),
            done,
        )

    def action_merge_tag(self) -> None:
        ws = self.ws
        tag = self.tags.current
        if ws is None or tag is None:
            return
        counts = ws.tag_counts()
        others = self._safe_tags(t for t in counts if t.casefold() != tag.casefold())

        def done(value: str | None) -> None:
            ws = self.ws
            if value is None or ws is None or not value.strip():
                return
            into = value.strip()
            known = {t.casefold(): t for t in ws.tag_counts()}
            if into.casefold() not in known:
                self.notify(
                    f"the dataset has no tag {safe_text(into)}: r renames {safe_text(tag)} instead"
                )
                return
            self._set_alias(tag, known[into.casefold()])

        self.push_screen(
            PromptScreen(
                f"Merge {tag} ({counts.get(tag, 0):,} images) into which tag? (ctrl+z undoes)",
                suggestions=others,
            ),
            done,
        )

    def _set_alias(self, tag: str, target: str) -> None:
        ws = self.ws
        if ws is None:
            return
        try:  # an alias replaces any earlier one of this tag
            if not self._change(partial(ws.set_alias, tag, target)):
                return
        except ValueError as exc:  # e.g. renamed to itself: nothing recorded
            self.notify(str(exc), severity="warning")
            return
        self.notify(
            f"{safe_text(tag)} is written as {safe_text(target)} in every caption (ctrl+z undoes)"
        )
        self._refresh_all()

    def action_next_image(self) -> None:
        self.files.cursor += 1
        self._show_image(self.files.current)  # in this frame, not after a message trip

    def action_full_screen(self) -> None:
        """The current image at the whole terminal's size; `]` / `[` go on moving."""
        ws = self.ws
        if ws is None or self.image is None:
            return
        rows = self.files.rows
        i = self.files.cursor
        neighbours = [rows[j] for j in (i + 1, i - 1) if 0 <= j < len(rows)]
        self.push_screen(ImageScreen(ws.root, self.image, neighbours))

    def action_previous_image(self) -> None:
        self.files.cursor -= 1
        self._show_image(self.files.current)

    def action_toggle_view(self) -> None:
        if self.ws is None:
            return
        tags = self.tags
        tags.dataset_view = not tags.dataset_view
        tags.border_title = "Tags · dataset" if tags.dataset_view else "Tags · image"
        current = tags.current
        if tags.filter_text:
            tags.set_filter("")
        if tags.dataset_view:
            tags.set_rows(self._dataset_rows(), keep=current)
        else:
            self._show_image_tags(self.image, keep=current)

    def action_cycle_pattern(self) -> None:
        ws = self.ws
        if ws is None:
            return
        i = PATTERNS.index(ws.strategy.pattern)
        if self._change(partial(ws.set_pattern, PATTERNS[(i + 1) % len(PATTERNS)])):
            self._refresh_all()

    # ---- concepts (several outfits) ---------------------------------------------------------

    def _bucket_target(self) -> Concept | None:
        """The concept the bucket keys act on (None: the profile's buckets)."""
        ws = self.ws
        if ws is None or not self.keys_on_concept or self.image is None:
            return None
        return ws.concept_of(self.image)

    def action_toggle_bucket_target(self) -> None:
        ws = self.ws
        if ws is None:
            return
        if not ws.strategy.concepts:
            self.notify("no concepts yet: N makes one from the current image's folder")
            return
        self.keys_on_concept = not self.keys_on_concept
        target = self._bucket_target()
        if self.keys_on_concept and target is None:
            self.notify("bucket keys act on the image's concept; this image is in none")
        self._update_status()

    def action_cycle_concept_scope(self) -> None:
        """Narrow the file list to one concept's images, then the next, then all."""
        ws = self.ws
        if ws is None:
            return
        names = [c.name for c in ws.strategy.concepts]
        if not names:
            self.notify("no concepts yet: N makes one from the current image's folder")
            return
        order = ["", *names]
        following = order[(order.index(self.concept_scope) + 1) % len(order)]
        self.concept_scope = following if following in names else ""
        if self.concept_scope:
            scope = {
                e.image
                for e in ws.images
                if (c := ws.concept_of(e.image)) is not None and c.name == self.concept_scope
            }
            self.files.set_scope(scope)
        else:
            self.files.set_scope(None)
        self._show_image(self.files.current)

    def action_new_concept(self) -> None:
        """A concept made of the current image's folder, with the trigger the user gives."""
        ws = self.ws
        if ws is None or self.image is None:
            return
        folder = self.image.rsplit("/", 1)[0] if "/" in self.image else ""
        if not folder:
            self.notify(
                "this image is in the dataset's top folder: put an outfit's images in a "
                "folder of their own (e.g. 10_school) to make it a concept"
            )
            return
        last = folder.rsplit("/", 1)[-1]
        name = last.split("_", 1)[1] if last.split("_", 1)[0].isdigit() and "_" in last else last
        if ws.strategy.concept_named(name) is not None:
            self.notify(f"a concept named {safe_text(name)} exists already")
            return

        def done(value: str | None) -> None:
            ws = self.ws
            if value is None or ws is None or not value.strip():
                return
            concept = Concept(name=name, trigger=value.strip(), folders=(folder,))
            if self._change(partial(ws.add_concept, concept)):
                self.notify(
                    f"concept {safe_text(name)} made of {safe_text(folder)}/ (ctrl+z undoes); "
                    "C makes the bucket keys act on it"
                )
                self._refresh_all()

        self.push_screen(
            PromptScreen(f"Trigger of the new concept {safe_text(name)} ({safe_text(folder)}/)"),
            done,
        )

    def action_edit_trigger(self) -> None:
        ws = self.ws
        if ws is None:
            return

        trigger = ws.strategy.trigger
        # The box shows the trigger escaped: given back unchanged, the trigger stays as it was.
        shown = safe_text(trigger)

        def done(value: str | None) -> None:
            ws = self.ws
            if (
                value is not None
                and ws is not None
                and value != shown
                and self._change(partial(ws.set_trigger, value))
            ):
                self._refresh_all()

        self.push_screen(PromptScreen("Trigger word (empty: none)", value=shown), done)

    def action_threshold(self, which: str, step: float) -> None:
        """Move the general or character threshold by `step`: an edit (ctrl+z undoes it);
        the captions re-render from the stored scores in this frame."""
        ws = self.ws
        if ws is None:
            return
        if not ws.has_scores:
            self.notify("no tagger scores yet: ctrl+t tags the images (or `lora-curator tag`)")
            return
        old = ws.strategy.tagger
        if old.source == "caption":
            self.notify(
                'the profile takes tags from the captions only ([tagger] source = "caption")'
            )
            return
        key = f"{which}_threshold"
        value = round(min(1.0, max(0.0, getattr(old, key) + step)), 2)
        # A threshold key asks for that threshold: MCut (per image) gives way to it.
        new = replace(old, mode="fixed", **{key: value})
        if new == old:
            self.notify(f"the {which} threshold is already {value:.2f}")
            return
        entered, left = ws.tagger_moves(old, new)
        if not self._change(partial(ws.set_tagger, new)):
            return
        self._refresh_all()
        self.notify(
            f"{which} threshold {value:.2f}: {entered} tag(s) enter, {left} leave (ctrl+z undoes)",
            timeout=4,
        )

    def action_tag_images(self) -> None:
        """Tag the images not yet tagged, in a worker: the app stays usable meanwhile."""
        ws = self.ws
        if ws is None:
            return
        if self.tagging:
            self.notify("already tagging")
            return
        model = self.model or ws.model_spec
        if not model:
            self.notify(
                "which tagger model? start the app with --model MODEL (a folder or a Hugging "
                "Face repo id), or tag once with `lora-curator tag DATASET --model MODEL`",
                severity="warning",
                timeout=10,
            )
            return
        self.tagging = "tagging…"
        self._update_status()
        self._tag_images(model, ws.root)

    @work(thread=True, exclusive=True, group="tag")
    def _tag_images(self, model: str, root: Path) -> None:
        # The tagger (numpy, onnxruntime) is imported only here, when the user asks for it.
        from tui.core.scores import ScoreStore, ScoreStoreError
        from tui.core.tagger import TaggerError
        from tui.core.tagger.pipeline import open_tagger, plan_tagging

        try:
            tagger, labels = open_tagger(model)
            with ScoreStore.open_for_tagging(root) as store:
                job, problems = plan_tagging(root, tagger, labels, store)
                self.post_message(TaggingProgress(0, len(job.todo)))
                tagged, failures = job.run(
                    store, lambda done, total: self.post_message(TaggingProgress(done, total))
                )
        except (TaggerError, ScoreStoreError) as exc:
            self.post_message(TaggingDone(0, [], str(exc)))
            return
        except Exception as exc:  # the app stays up; the user is told what failed
            self.post_message(TaggingDone(0, [], f"tagging failed: {exc}"))
            return
        self.post_message(TaggingDone(tagged, problems + failures, device=tagger.report.message))

    def on_tagging_progress(self, message: TaggingProgress) -> None:
        self.tagging = f"tagging {message.done:,}/{message.total:,}"
        self._update_status()

    def on_tagging_done(self, message: TaggingDone) -> None:
        self.tagging = ""
        ws = self.ws
        if message.error:
            self.notify(message.error, severity="error", timeout=15)
            self._update_status()
            return
        if ws is not None:
            ws.reload_scores()
            self._refresh_all()
        failed = message.failed
        text = f"{message.tagged} image(s) tagged, {len(failed)} failed"
        if message.device:
            text = f"{text} ({message.device})"
        if failed:
            details = "\n".join(f"{path}: {why}" for path, why in failed[:5])
            self.notify(f"{text}\n{details}", severity="warning", timeout=15)
        else:
            self.notify(text)

    def _fresh_index(self) -> None:
        """Build the file list's query index when the images' tags changed since the last
        build: once per open or tag-changing edit, never per keystroke."""
        ws = self.ws
        if ws is None or not self._index_stale or self.files.index_pending:
            return
        self.files.index = workspace_index(ws)
        self._index_stale = False

    def action_filter(self) -> None:
        focused = self.focused
        target = focused if isinstance(focused, VirtualList) else self.files
        self.filter_target = target
        if target is self.files:
            self._fresh_index()
        box = self.query_one("#filter", Input)
        box.value = target.filter_text
        box.add_class("visible")
        box.focus()

    def _run_query(self, text: str, index: TagIndex) -> None:
        self._query_worker(self.files, text, index)

    @work(thread=True, group="query")
    def _query_worker(self, files: FileList, text: str, index: TagIndex) -> None:
        """Evaluate the file list's query off the UI thread. One at a time; the newest
        query typed wins: one already overtaken by typing is not evaluated at all."""
        with files.query_lock:
            if text != files.filter_text:
                return
            try:
                found, error = index.evaluate(text), None
            except QueryError as exc:
                found, error = None, exc
        self.post_message(QueryDone(text, index, found, error))

    def on_query_done(self, message: QueryDone) -> None:
        shown = self.files.apply_query(message.text, message.index, message.found, message.error)
        if shown and self.filter_target is self.files:
            self._show_query_state()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and self.filter_target is not None:
            self.filter_target.set_filter(event.value)
            if self.filter_target is self.files:
                self._show_query_state()

    def _show_query_state(self) -> None:
        """A malformed query while typing: its error in the filter box and the status bar
        (the last good result stays shown); else how many images it finds."""
        box = self.query_one("#filter", Input)
        files = self.files
        if files.query_error:
            box.border_title = safe_text(f"query at {files.query_error}")
            box.add_class("-error")
            self._set_status(Text(f" query at {safe_text(files.query_error)}", style="bold"))
            return
        box.remove_class("-error")
        if files.index_pending and files.filter_text.strip():
            box.border_title = "indexing the tags: the query applies once that is done"
        else:
            box.border_title = (
                f"{len(files.rows):,} of {len(self.ws.images):,} images"
                if self.ws is not None and files.filter_text.strip()
                else ""
            )
        self._update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter(keep=True)

    def _close_filter(self, keep: bool) -> None:
        box = self.query_one("#filter", Input)
        target = self.filter_target or self.files
        if not keep:
            target.set_filter("")
        box.remove_class("visible")
        target.focus()

    def on_key(self, event) -> None:
        if event.key != "escape":
            return
        if self.focused is not None and self.focused.id == "filter":
            self._close_filter(keep=False)
            event.stop()
        elif isinstance(self.focused, VirtualList) and self.focused.filter_text:
            self.focused.set_filter("")
            event.stop()

    def action_undo(self) -> None:
        self._step(undo=True)

    def action_redo(self) -> None:
        self._step(undo=False)

    def _step(self, undo: bool) -> None:
        ws = self.ws
        if ws is None:
            return
        moved: list[bool] = []
        if not self._change(lambda: moved.append(ws.undo() if undo else ws.redo())):
            return
        if not moved[0]:
            self.notify("nothing to undo" if undo else "nothing to redo")
        self._refresh_all()

    def action_save(self) -> None:
        if self.ws is None:
            return
        self.busy = Busy.SAVING
        self._update_status()
        self._save()

    @work(thread=True, exclusive=True, group="save")
    def _save(self) -> None:
        ws = self.ws
        assert ws is not None
        report = save_all(ws)
        self.post_message(Saved(report.summary, report.failed))

    def on_saved(self, saved: Saved) -> None:
        message, failed = saved.summary, saved.failed
        self.busy = Busy.IDLE
        if failed:
            details = "\n".join(f"{path}: {why}" for path, why in failed[:5])
            more = f"\n… and {len(failed) - 5} more" if len(failed) > 5 else ""
            self.notify(f"{message}\n{details}{more}", severity="error", timeout=20, markup=False)
        else:
            self.notify(message, markup=False)
        self._refresh_all()

    def action_open_profile(self) -> None:
        ws = self.ws
        if ws is None:
            return
        local = (
            sorted((ws.root / "profiles").glob("*.toml")) if (ws.root / "profiles").is_dir() else []
        )
        try:
            library = list_library()
        except ProfileError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            library = []
        choices = library + local

        def done(path: Path | None) -> None:
            if path is None or self.ws is None:
                return
            try:
                strategy = load_profile(path)
            except ProfileError as exc:
                self.notify(str(exc), severity="error", timeout=15)
                return
            old = self.ws.strategy.caption
            new = strategy.caption
            if (old.extension, old.underscores) != (new.extension, new.underscores):
                # Captions pair or parse differently: open the dataset again with it
                # (closing this one first: it holds the dataset's lock).
                self.busy = Busy.LOADING
                try:
                    self.ws.close()
                except StateError as exc:
                    self.notify(str(exc), severity="error", timeout=20, markup=False)
                self._open_dataset(strategy, str(path))
                return
            if not self._change(partial(self.ws.use_strategy, strategy, str(path))):
                return
            self._refresh_all()
            self.notify(f"profile {strategy.name} opened")

        self.push_screen(ProfilePicker(choices), done)

    def action_help(self) -> None:
        # Said here, once, what optional parts are off and the one command that turns them on.
        off = []
        if self.caption.tokens is None:
            off.append(("token counts", "tokens"))
        if graphics.current().hint:
            off.append(("real pixels", "graphics"))
        note = ""
        if off:
            names = " and ".join(name for name, _ in off)
            extras = ",".join(extra for _, extra in off)
            note = f"{names} off: pip install 'lora-curator[{extras}]'"
        self.push_screen(HelpScreen(self.keymap, note))

    def action_quit_app(self) -> None:
        ws = self.ws
        if ws is None or not ws.unsaved:
            self.exit(0)
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        self.push_screen(
            ConfirmScreen(
                "Captions are not saved (your edits are kept for next time). Quit anyway?"
            ),
            done,
        )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in APP_BINDINGS:
            if binding.id in BUCKET_KEYS:
                title = f"Put tag in {binding.description}"
            else:
                title = binding.description.capitalize()
            yield SystemCommand(
                title, f"key: {binding.key}", partial(self.run_action, binding.action)
            )

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            # Only a time stamp: the key itself must not pay for anything here.
            self._last_key = time.monotonic()
            self._garbage = True
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        """A full collection once typing has paused for `idle_gc_seconds` (see `_loaded`)."""
        idle = self.idle_gc_seconds
        if self._garbage and idle is not None and time.monotonic() - self._last_key >= idle:
            self._garbage = False
            gc.collect()
            give_back_free_memory()  # what it freed, back to the system (a few ms)

    def on_unmount(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except StateError as exc:  # printed once the screen is back
                self.fatal = self.fatal or str(exc)
