"""Caption length in CLIP tokens: what SD1.5/SDXL trainers cut at 75 by default, silently.

Counting needs the ``tokenizers`` library (``pip install 'lora-curator[tokens]'``) and the
``openai/clip-vit-large-patch14`` tokenizer already in the local Hugging Face cache (present
wherever kohya has run). It is never downloaded: without either, :func:`load_counter` gives
None and :data:`HOW_TO_ENABLE` says what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tui.core.tagger.model import cached_snapshot, hf_hub_cache

CLIP_REPO = "openai/clip-vit-large-patch14"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_MAX_TOKENS = 75
HOW_TO_ENABLE = (
    "caption token counts are off: pip install 'lora-curator[tokens]' and have the "
    f"{CLIP_REPO} tokenizer in the Hugging Face cache (kohya puts it there; it is never "
    "downloaded)"
)


def find_clip_tokenizer(cache: Path | None = None) -> Path | None:
    """The cached ``tokenizer.json`` of the CLIP tokenizer (the snapshot ``refs/main`` names,
    else the newest), or None; ``cache`` defaults to the local Hugging Face cache (found as
    the tagger finds its models)."""
    snapshot = cached_snapshot(cache or hf_hub_cache(), CLIP_REPO, (TOKENIZER_FILE,))
    return None if snapshot is None else snapshot / TOKENIZER_FILE


@dataclass(frozen=True)
class Length:
    """One caption's length: its tokens (without the start and end tokens) and the tags a
    trainer cutting at ``limit`` tokens loses (a tag cut in the middle is lost too)."""

    tokens: int
    cut: tuple[str, ...]


class TokenCounter:
    """Counts CLIP tokens of captions with a loaded ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: object, source: Path | None = None) -> None:
        self._tokenizer = tokenizer
        self.source = source

    def count(self, text: str) -> int:
        """The number of tokens of ``text`` (start and end tokens not counted)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

    def length(self, tags: Sequence[str], separator: str, limit: int) -> Length:
        """The length of the caption ``separator.join(tags)`` and the tags past ``limit``."""
        text = separator.join(tags)
        encoding = self._tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        n = len(encoding.ids)
        if n <= limit:
            return Length(n, ())
        # The first character the trainer no longer sees.
        cut_at = encoding.offsets[limit][0]
        cut: list[str] = []
        start = 0
        for tag in tags:
            end = start + len(tag)
            if end > cut_at:
                cut.append(tag)
            start = end + len(separator)
        return Length(n, tuple(cut))


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> TokenCounter | None:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        return TokenCounter(Tokenizer.from_file(str(path)), path)
    except Exception:  # a damaged cache file: counted as absent (it is the trainer's file)
        return None


def load_counter(cache: Path | None = None) -> TokenCounter | None:
    """The CLIP token counter when ``tokenizers`` is installed and the tokenizer is cached;
    None otherwise (see :data:`HOW_TO_ENABLE`). Never touches the network."""
    path = find_clip_tokenizer(cache)
    if path is None:
        return None
    return _load(path)
