"""The query language (tui/core/query.py): every construct, real tags that hold its operators'
characters, malformed queries, and pasted captions finding the image they came from."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tui.core.captions import parse_tags
from tui.core.query import QueryError, TagIndex, parse_query, quote_term, tag_key

# Tags as the strategy sees them: real tags holding `( ) : - | < > ; _ ,`.
IMAGES: dict[str, tuple[str, ...]] = {
    "10_kaede/a.png": ("black hair", "smile", "kaede (blue archive)", "bow (weapon)", "t-shirt"),
    "10_kaede/b.png": ("black hair", "-_-", ":d", "re:zero", "orange shirt"),
    "10_kaede/sub/c.png": ("blonde hair", ">_<", ";)", "grin", "blurry"),
    "5_casual/d.jpg": ("Black Hair", "grin", ":|", "serafuku", "<|>_<|>"),
    "e.png": (),
    "f.png": ("a, b", "x|y", "changed", "(weighted:1.2)"),
}
BUCKETS = {
    "black hair": "trait",
    "blonde hair": "trait",
    "smile": "context",
    "grin": "context",
    "blurry": "flaw",
    "a, b": "drop",
}
ALL = sorted(IMAGES)


def index(**facts) -> TagIndex:
    defaults = {
        "buckets": BUCKETS,
        "aliases": {"grey shirt": "orange shirt"},
        "trigger": "kd",
        "changed": {"10_kaede/a.png", "e.png"},
        "flagged": lambda image: image.endswith(".jpg"),
    }
    defaults.update(facts)
    return TagIndex(list(IMAGES), list(IMAGES.values()), **defaults)


def names(*short: str) -> list[str]:
    """Image paths by their stem (`a` → `10_kaede/a.png`), in index order."""
    return [p for p in IMAGES if p.rsplit("/", 1)[-1].split(".")[0] in short]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        # terms: case-insensitive, `_` as a space, whitespace collapsed
        ("black hair", "abd"),
        ("BLACK_HAIR", "abd"),
        ("  black   hair ", "abd"),
        ("nothing like it", ""),
        # `,` AND; `-` NOT; `|` OR, tighter than `,`; parentheses
        ("black hair, smile", "a"),
        ("black hair, -smile", "bd"),
        ("smile | grin, -blurry", "ad"),
        ("black hair | blonde hair, grin", "cd"),  # (black | blonde), grin: not black | (...)
        ("-(smile | grin)", "bef"),
        ("-(black hair, smile), black hair", "bd"),
        ("- smile, - - grin", "cd"),
        ("smile|grin", "acd"),
        ("smile|:d", "ab"),
        ("black hair, , smile,", "a"),
        # wildcards
        ("* hair", "abcd"),
        ("*shirt", "ab"),
        ("bl*", "abcd"),
        ("*", "abcdf"),
        ("-*", "e"),
        ("*:*", "bdf"),
        # quoted terms: nothing inside is an operator or a wildcard
        ('"-_-"', "b"),
        ('-"-_-", black hair', "ad"),
        ("-_-, -:d", ""),
        ('"a, b"', "f"),
        ('"x|y"', "f"),
        ('"*"', ""),
        ('"changed"', "f"),
        ('"kaede (blue archive)" | "x|y"', "af"),
        # real tags pasted as they are
        ("kaede (blue archive), bow (weapon), t-shirt", "a"),
        ("-_-, :d, re:zero", "b"),
        (">_<, ;), grin", "c"),
        (":|, grin, <|>_<|>", "d"),
        ("(kaede (blue archive) | -_-), black hair", "ab"),
        ("(>_< | :|)", "cd"),
        ("kaede \\(blue archive\\)", "a"),
        ("x\\|y", "f"),
        ("(weighted:1.2)", ""),  # a group holding the tag `weighted:1.2`
        ('"(weighted:1.2)"', "f"),
        # aliases and the trigger
        ("grey shirt", "b"),
        ("kd", "abcdef"),
        ("-kd", ""),
        # qualifiers
        ("name:a.png", "a"),
        ("name:*.JPG", "d"),
        ("name:?.png", "abcef"),
        ("name:[ab].png", "ab"),
        ("name:10_kaede/*", "abc"),
        ("name:*/sub/*", "c"),
        ("folder:10_kaede", "abc"),
        ("folder:sub", "c"),
        ("folder:5_*", "d"),
        ("folder:.", "ef"),
        ("bucket:trait", "abcd"),
        ("bucket:FLAW", "c"),
        ("bucket:drop", "f"),
        ("bucket:context, -bucket:flaw", "ad"),
        ("bucket:unsorted", "abcdf"),
        ("changed", "ae"),
        ("flagged", "d"),
        ("-changed, -flagged", "bcf"),
        ("tags<1", "e"),
        ("tags>4", "abcd"),
        ("tags = 4", "f"),
        ("tags<5, tags>3", "f"),
        ("changed | flagged, black hair", "ad"),
    ],
)
def test_every_construct_finds_what_it_says(query: str, found: str) -> None:
    assert index().match(query) == names(*found)


def test_an_empty_query_finds_every_image() -> None:
    idx = index()
    assert idx.match("") == idx.match("  ,  ") == list(IMAGES)
    assert idx.count("black hair") == 3


def test_results_come_back_in_index_order() -> None:
    idx = TagIndex(["z.png", "a.png", "m.png"], [("x",), ("x",), ("y",)])
    assert idx.match("x") == ["z.png", "a.png"]
    assert idx.match_ids("x | y") == [0, 1, 2]


def test_concepts() -> None:
    concepts = {"School": ["10_kaede/a.png", "10_kaede/b.png"], "casual": ["5_casual/d.jpg"]}
    idx = index(concepts=concepts)
    assert idx.match("concept:school") == names("a", "b")
    assert idx.match("concept:casual | grin") == names("c", "d")
    unknown = r"column 1: no concept named 'beach' \(concepts: casual, School\)"
    with pytest.raises(QueryError, match=unknown):
        idx.match("concept:beach")
    with pytest.raises(QueryError, match="column 8: no concepts in this strategy"):
        index().match("smile, concept:school")


def test_scores() -> None:
    scores = {
        "10_kaede/a.png": {"black_hair": 0.9, "smile": 0.4},
        "10_kaede/b.png": {"black hair": 0.35},
    }
    idx = index(scores=scores)
    assert idx.match("score:black hair>0.5") == names("a")
    assert idx.match("score:black hair<0.5") == names("b", "c", "d", "e", "f")  # no score: 0
    assert idx.match("score:smile > .3, smile") == names("a")
    assert idx.match("score:* hair>0.3") == names("a", "b")
    assert idx.match('score:"black hair">0.8') == names("a")
    by_function = index(scores=lambda image: scores.get(image))
    assert by_function.match("score:black_hair>0.3") == names("a", "b")
    with pytest.raises(QueryError, match="no tagger scores: run lora-curator tag first"):
        index().match("score:smile>0.5")


def test_a_missing_fact_is_an_error_even_when_an_earlier_term_finds_nothing() -> None:
    with pytest.raises(QueryError, match="column 15: no tagger scores"):
        index().match("nothing here, score:smile>0.5")


def test_new_buckets_and_flags_are_seen_once_given() -> None:
    idx = index()
    assert idx.match("bucket:flaw") == names("c")
    idx.set_buckets({**BUCKETS, "serafuku": "flaw"})
    assert idx.match("bucket:flaw") == names("c", "d")
    idx.set_flagged({"e.png"})
    assert idx.match("flagged") == names("e")
    idx.set_changed(lambda image: False)
    assert idx.match("changed") == []
    idx.set_changed(None)
    with pytest.raises(QueryError, match="column 1: 'changed' is not known here"):
        idx.match("changed")


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("smile |", 8, "expected a tag or a qualifier after '|', found the end"),
        ("smile | | grin", 9, "expected a tag or a qualifier after '|', found '|'"),
        ("smile, -", 9, "expected a tag or a qualifier after '-'"),
        ("(smile", 7, "expected ')' to close the '(' of column 1, found the end"),
        ("a, (b | (c)", 12, "expected ')' to close the '(' of column 4"),
        ("()", 2, "expected a tag or a qualifier inside '( )'"),
        ("(a | b))", 8, "expected ',', '|' or the end, found ')'"),
        ('"smile', 1, "expected a closing '\"' for this quote"),
        ('a, "b", "c', 9, "expected a closing '\"'"),
        ("bucket:nope", 8, "expected a bucket: trait, context, flaw, drop, unsorted"),
        ("name:", 6, "expected a value after 'name:'"),
        ("smile, folder: ", 15, "expected a value after 'folder:'"),
        ("tags<many", 1, "expected a whole number after 'tags<'"),
        ("a, tags > 1.5", 4, "expected a whole number"),
        ("score:smile", 7, "expected a tag, '<' or '>' and a number"),
        ("score:>0.5", 7, "expected a tag, '<' or '>' and a number"),
        ('score:"smile"=1', 14, "expected '<' or '>' and a number after the tag"),
    ],
)
def test_a_malformed_query_names_the_column_and_what_was_expected(
    query: str, column: int, message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.column == column
    assert str(caught.value).startswith(f"column {column}: ")
    assert message in str(caught.value)


def test_an_error_message_never_holds_a_raw_control_character() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("(a)\x1b[31m")
    assert "\x1b" not in str(caught.value)
    with pytest.raises(QueryError) as caught:
        parse_query("(a\x07")
    assert "\x07" not in str(caught.value)


def test_quote_term_leaves_plain_tags_bare_and_quotes_the_rest() -> None:
    assert quote_term("black hair") == "black hair"
    assert quote_term("kaede (blue archive)") == "kaede (blue archive)"
    assert quote_term("-_-") == "-_-"
    assert quote_term(":|") == ":|"
    assert quote_term("changed") == '"changed"'
    assert quote_term("-smile") == '"-smile"'
    assert quote_term("a, b") == '"a, b"'
    assert quote_term('say "hi"') == 'say "hi"'
    assert quote_term('"hi"') == '"\\"hi\\""'
    assert quote_term("star*") == '"star*"'


# ---- properties: a caption's own tags find its image ------------------------------------------

TAG_TEXT = st.text(
    alphabet=st.sampled_from([*"abcdehkrstz019 ():-<>;_^.*'/!?=+\\\"|,", "é", "猫", "\t"]),
    min_size=1,
    max_size=14,
)


@settings(max_examples=300, deadline=None)
@given(tags=st.lists(TAG_TEXT, min_size=1, max_size=6), other=st.lists(TAG_TEXT, max_size=4))
def test_quoted_tags_of_an_image_find_it(tags: list[str], other: list[str]) -> None:
    tags = [t for t in tags if tag_key(t)]
    assume(tags)
    idx = TagIndex(["it.png", "other.png"], [tags, other])
    query = ", ".join(quote_term(t) for t in tags)
    assert "it.png" in idx.match(query)
    negated = ", ".join("-" + quote_term(t) for t in tags)
    assert "it.png" not in idx.match(negated)


# What the README says a pasted tag must not be: it starts a group, a quote or a negation,
# is a qualifier, holds an OR, a comma (a weighted tag) or a backslash.
_NOT_PASTABLE = re.compile(
    r"^[(\"]|^-[\"(]|^-(?![_.])(?!\S{0,3}-$)|^(changed|flagged)$|^tags\s*[<>=]|"
    r"^(name|folder|bucket|concept|score):|[\\,]",
    re.IGNORECASE,
)


def _pastable(tag: str) -> bool:
    if _NOT_PASTABLE.search(tag):
        return False
    for i, ch in enumerate(tag):
        if ch == "|":
            before = tag[i - 1] if i else " "
            after = tag[i + 1] if i + 1 < len(tag) else " "
            if before not in "_:;<\\|" and after not in "_>/|":
                return False
    return True


@settings(max_examples=400, deadline=None)
@given(raw=st.lists(TAG_TEXT, min_size=1, max_size=6))
def test_a_pasted_caption_finds_the_image_it_came_from(raw: list[str]) -> None:
    caption = ", ".join(raw)
    tags = parse_tags(caption)  # the image's tags, as the caption file is read
    assume(tags and all(_pastable(t) for t in tags))
    idx = TagIndex(["it.png", "empty.png"], [tags, ()])
    assert idx.match(", ".join(tags)) == ["it.png"]
    assert idx.match(caption) == ["it.png"]


def test_buckets_counted_again_for_moved_tags_equal_a_fresh_index() -> None:
    idx = index()
    assert idx.match("bucket:unsorted") == names("a", "b", "c", "d", "f")
    moves = [
        ({**BUCKETS, "serafuku": "trait", ":|": "trait", "<|>_<|>": "trait"}, None),
        ({**BUCKETS, "grin": "flaw"}, ["grin", "serafuku", ":|", "<|>_<|>"]),
        ({**BUCKETS, "grin": "flaw", "black hair": "unsorted"}, ["Black_Hair"]),
    ]
    for buckets, moved in moves:
        idx.set_buckets(buckets, moved=moved)
        fresh = index(buckets=buckets)
        for bucket in ("trait", "context", "flaw", "drop", "unsorted"):
            assert idx.match(f"bucket:{bucket}") == fresh.match(f"bucket:{bucket}"), bucket
    assert idx.match("bucket:flaw") == names("c", "d")
    assert idx.match("bucket:trait") == names("c")  # only `blonde hair` is left a trait


@pytest.mark.parametrize("n", [640, 643, 2053])
def test_frequent_tags_kept_as_bitmaps_give_the_same_answers_as_rare_ones(n: int) -> None:
    # Tags on n/64 (at least 32) images are kept as bitmaps (8 images a byte: n need not be
    # a multiple of 8), the rest by their ids.
    rng = random.Random(7)
    vocab = [f"{colour} {thing}" for colour in ("red", "blue", "pale") for thing in "abcdefgh"]
    images = [f"img_{i:04d}.png" for i in range(n)]
    tags = []
    for _ in images:
        known = vocab[: rng.choice([2, 4, len(vocab)])]
        tags.append(tuple(rng.sample(known, rng.randint(0, 2))))
    idx = TagIndex(images, tags)
    assert idx._frequent and len(idx._frequent) < len(idx.keys)  # both kinds are exercised

    def brute(test) -> list[str]:
        return [image for image, t in zip(images, tags, strict=True) if test(set(t))]

    for tag in vocab:
        assert idx.match(tag) == brute(lambda t, tag=tag: tag in t)
        assert idx.match(f"-{tag}") == brute(lambda t, tag=tag: tag not in t)
    assert idx.match("red *") == brute(lambda t: any(x.startswith("red ") for x in t))
    assert idx.match("* a | pale *, -blue b") == brute(
        lambda t: any(x.endswith(" a") or x.startswith("pale ") for x in t) and "blue b" not in t
    )
    assert idx.match("tags>3") == brute(lambda t: len(t) > 3)


def test_the_kept_answers_stay_within_their_memory_budget_and_stay_right() -> None:
    # At a million images every kept answer is a megabyte: the cache is bounded in bytes
    # as well as in entries, and what it dropped is found again the same.
    images = [f"img_{i:04d}.png" for i in range(4000)]
    tags = [(f"t{i % 7}", f"u{i % 11}") for i in range(len(images))]
    idx = TagIndex(images, tags)
    idx._cache.budget = 3 * len(images)  # three bytemaps of these images (a byte each)
    queries = [f"t{i}" for i in range(7)] + [f"u{i}, -t{i % 7}" for i in range(11)]
    first = {q: idx.match(q) for q in queries}
    assert 1 <= len(idx._cache) <= 3 and idx._cache.held <= idx._cache.budget
    assert {q: idx.match(q) for q in reversed(queries)} == first
    assert first["t3"] == [image for image, t in zip(images, tags, strict=True) if "t3" in t]


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_places_and_image_sets_without_a_map_of_every_image(order: str) -> None:
    # A sorted index (the app's) finds an image's place by bisection and keeps no map of
    # every image (60 MB at a million); any other order uses the map. Both answer alike.
    images = [f"img_{i:04d}.png" for i in range(1000)]
    if order == "shuffled":
        random.Random(3).shuffle(images)
    few = set(images[5:12])  # a small set: place by place
    many = set(images[::3])  # a large one: through the map
    index = TagIndex(
        images,
        [("x",)] * len(images),
        flagged=few,
        concepts={"big": many, "small": few},
    )
    assert [index.place(image) for image in images] == list(range(len(images)))
    assert index.place("img_9999.png") is None and index.place("") is None
    assert set(index.match("flagged")) == few
    assert set(index.match("concept:small")) == few
    assert (index._position is None) == (order == "sorted")
    assert set(index.match("concept:big")) == many
    assert set(index.match("concept:small, -flagged")) == set()
