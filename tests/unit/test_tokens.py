"""Caption lengths in CLIP tokens, with a small tokenizer the test builds in a fake Hugging
Face cache (never a download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.checks import find_problems
from tui.core.dataset import ImageEntry
from tui.core.profile import ProfileError, parse_profile
from tui.core.strategy import Strategy
from tui.core.tokens import HOW_TO_ENABLE, find_clip_tokenizer, load_counter

tokenizers = pytest.importorskip("tokenizers")

WORDS = ["black", "hair", "smile", "orange", "shirt", "solo", "window", "red", "eyes", ","]


def fake_cache(root: Path, ref: str = "0123abcd") -> Path:
    """A Hugging Face cache holding a word-level 'CLIP' tokenizer: one token a word or comma."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    repo = root / "models--openai--clip-vit-large-patch14"
    snapshot = repo / "snapshots" / ref
    snapshot.mkdir(parents=True)
    tok.save(str(snapshot / "tokenizer.json"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(ref)
    return root


def test_found_in_the_cache_and_counted(tmp_path, monkeypatch):
    assert find_clip_tokenizer(tmp_path) is None
    assert load_counter(tmp_path) is None
    cache = fake_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    counter = load_counter()
    assert counter is not None
    assert counter.source == find_clip_tokenizer()
    # black, hair, ",", smile
    assert counter.count("black hair, smile") == 4
    length = counter.length(["black hair", "smile", "orange shirt"], ", ", 5)
    assert length.tokens == 7
    # Tokens 6 and 7 ("orange shirt" is cut at its second word): the tag is lost.
    assert length.cut == ("orange shirt",)
    assert counter.length(["black hair"], ", ", 5).cut == ()


def test_check_reports_captions_over_the_limit_with_what_is_cut(tmp_path):
    counter = load_counter(fake_cache(tmp_path / "hub"))
    assert counter is not None
    images = [ImageEntry("a.png", "a.txt", True), ImageEntry("b.png", "b.txt", True)]
    tags = {"a.png": ["black hair", "smile", "solo", "red eyes", "window"], "b.png": ["smile"]}
    strategy = parse_profile("schema = 1\n[checks]\nmax_tokens = 6\n", "p.toml")
    found = [
        f for f in find_problems(strategy, images, tags, tokens=counter) if f.kind == "long-caption"
    ]
    assert len(found) == 1
    assert found[0].images == ("a.png",)
    assert found[0].severity == "advice"
    assert "1 caption over 6 CLIP tokens" in found[0].message
    assert "a.png, has 11 tokens and loses red eyes, window" in found[0].message
    # Within the default 75: nothing; without a counter: nothing either.
    assert not [
        f
        for f in find_problems(Strategy(), images, tags, tokens=counter)
        if f.kind == "long-caption"
    ]
    assert not [f for f in find_problems(strategy, images, tags) if f.kind == "long-caption"]


def test_max_tokens_is_validated():
    with pytest.raises(ProfileError, match="max_tokens"):
        parse_profile("schema = 1\n[checks]\nmax_tokens = 0\n", "p.toml")


def test_check_says_once_how_to_enable_counts(make_dataset, run_cli):
    root = make_dataset({"a.png": b"", "a.txt": "smile\n"})
    result = run_cli("check", root)
    assert result.stderr.count("lora-curator[tokens]") == 1
    assert HOW_TO_ENABLE in result.stderr


def test_check_counts_with_the_cached_tokenizer(make_dataset, run_cli, tmp_path):
    cache = fake_cache(tmp_path / "hub")
    root = make_dataset({"a.png": b"", "a.txt": "black hair, smile, solo, red eyes, window\n"})
    (root / "p.toml").write_text("schema = 1\n[checks]\nmax_tokens = 6\n")
    result = run_cli("check", root, "--profile", root / "p.toml", env={"HF_HUB_CACHE": str(cache)})
    assert "lora-curator[tokens]" not in result.stderr
    assert "long-caption\t1 caption over 6 CLIP tokens" in result.stdout
    assert "loses red eyes, window" in result.stdout
