"""The tag checklist: the current image's tags, or every tag of the dataset (`v`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence

from rich.text import Text

from tui.app.themes import bucket_variable
from tui.app.widgets.virtual_list import VirtualList
from tui.core.buckets import BUCKET_BY_NAME, UNSORTED
from tui.core.strategy import Concept
from tui.core.suggest import Suggestion
from tui.core.text import safe_text
from tui.core.workspace import Workspace


class TagList(VirtualList[str]):
    """Rows are tags. In the image view a tag removed from this image is struck through."""

    BORDER_TITLE = "Tags"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.workspace: Workspace | None = None
        self.dataset_view = False
        # In the image view: the rows removed from the image shown (struck through).
        self.removed: Collection[str] = frozenset()
        self.suggestions: Mapping[str, Suggestion] = {}
        # The concept whose buckets the image view shows (None: the profile's).
        self.concept: Concept | None = None
        # In the image view: tagger scores (casefolded tag → score) and the candidates, tags
        # just under the general threshold shown dim after the image's tags (space adds one).
        self.scores: Mapping[str, float] = {}
        self.candidates: Collection[str] = frozenset()
        # False while the app still counts the dataset's tags: the counts are left blank.
        self.counts_ready = True

    def show_image_tags(
        self,
        rows: Sequence[str],
        removed: Collection[str],
        keep: str | None = None,
        scores: Mapping[str, float] | None = None,
        candidates: Collection[str] = (),
    ) -> None:
        """The image view's rows: the image's tags, `removed` the ones removed from it,
        `scores` the tagger's, `candidates` (among `rows`) the tags under the threshold."""
        self.removed = removed
        self.scores = scores or {}
        self.candidates = frozenset(candidates)
        self.set_rows(rows, keep=keep)

    def bucket_style(self, bucket: str, extra: str = "") -> str:
        return self.theme_style(bucket_variable(bucket), extra)

    def row_key(self, row: str) -> Hashable:
        """What a row shows: bucket, count, share, marks, score, suggestion, alias."""
        ws = self.workspace
        if ws is None:
            return (row,)
        strategy = ws.strategy
        bucket = strategy.effective_bucket(row, None if self.dataset_view else self.concept)
        n = ws.tag_counts().get(row, 0) if self.counts_ready else None
        total = len(ws.images) or 1
        removed = not self.dataset_view and row in self.removed
        candidate = not self.dataset_view and row in self.candidates
        score = None if self.dataset_view else self.scores.get(row.casefold())
        suggestion = self.suggestions.get(row) if bucket == UNSORTED else None
        ghost = suggestion.bucket if suggestion is not None else None
        written = strategy.alias_of(row)
        return (row, bucket, n, total, removed, candidate, score, ghost, written)

    def row_text(self, row: str, width: int) -> Text:
        ws = self.workspace
        if ws is None:
            return Text(safe_text(row))
        key = self.row_key(row)
        _, bucket, n, total, removed, candidate, score, ghost, written = key  # type: ignore[misc]
        text = Text()
        letter = f" {BUCKET_BY_NAME[bucket].letter} "
        if candidate:
            text.append(" + ", style="dim")
        elif ghost is not None:
            # A ghost: the suggested bucket's letter, lower case and dim, until accepted (s).
            letters = f" {BUCKET_BY_NAME[ghost].letter.lower()} "
            text.append(letters, style=self.bucket_style(ghost, "dim italic"))
        elif bucket == UNSORTED:
            text.append(letter, style=self.bucket_style(bucket, "bold"))
        else:
            text.append(letter, style=self.bucket_style(bucket, "bold reverse"))
        text.append(" ")
        stats = f"{n:>6} {100 * n / total:5.1f}%" if n is not None else f"{'…':>6} {'':6}"
        # Cut, not rounded, to two decimals: a tag shown 0.xy is kept at a threshold of 0.xy
        # and not above (the threshold keys move by hundredths).
        shown_score = "" if score is None else f" {math.floor(score * 100) / 100:.2f}"
        name_width = max(1, width - 4 - len(stats) - 1 - len(shown_score))
        shown = safe_text(row)  # a tag's control characters are escaped, not obeyed
        if written != row:  # renamed or merged (r, m): what the captions will say
            shown = f"{shown} → {safe_text(written)}"
        name = shown if len(shown) <= name_width else shown[: name_width - 1] + "…"
        if removed:
            style = "strike dim"
        elif candidate:
            style = "dim italic"
        else:
            style = self.bucket_style(bucket)
        text.append(name.ljust(name_width), style=style)
        if shown_score:
            text.append(shown_score, style="dim" if candidate else "")
        text.append(" ")
        text.append(stats, style="dim")
        return text
