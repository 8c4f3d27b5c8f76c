"""The passes over a whole dataset when it opens (implied tags for the suggestions, the query
index) read each image's tags as interned ids: what they find is exactly what the per-image
strings give, with aliases, case and underscore duplicates, several tags implying one, per-image
edits and tagger scores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.unit.test_tagger_source import A_SCORES, write_scores
from tui.core import postings
from tui.core.implied import implied_counts, implied_counts_ids, workspace_implied
from tui.core.postings import PackedTags, id_postings
from tui.core.query import QueryError, TagIndex, workspace_index
from tui.core.strategy import CaptionFormat, Strategy
from tui.core.suggest import suggest_buckets
from tui.core.tagger import TaggerSettings
from tui.core.workspace import Workspace, pack_ids

# Tags that imply one another (by their wording and by the data), spelled several ways.
VOCABULARY = [
    "shirt",
    "Shirt",
    "white shirt",
    "white_shirt",
    "light blue shirt",
    "blue shirt",
    "no shirt",  # implies nothing: "no" leads it
    "holding cup",  # neither: an action
    "cup",
    "serafuku",
    "school uniform",
    "bow",
    "hair bow",
    "hair_bow",
    "black bow",
    "thighhighs",
    "black thighhighs",
    "legwear",
    "kneehighs",
    "socks",
    "grey socks",
    "gray socks",
    "smile",
    "1girl",
    "-_-",
    "kaede (blue archive)",
    "kaede \\(blue archive\\)",
]
QUERIES = [
    "shirt",
    "white shirt, -bow",
    "*shirt*",
    "* bow | cup",
    "-*",
    "*",
    "tags<3",
    "tags>4",
    "tags=2",
    "bucket:trait",
    "bucket:unsorted, -bucket:drop",
    '"-_-"',
    "kaede (blue archive)",
    "grey socks",
]


def random_images(rng: random.Random) -> list[list[str]]:
    vocabulary = rng.sample(VOCABULARY, rng.randint(1, len(VOCABULARY)))
    return [
        list(dict.fromkeys(rng.choices(vocabulary, k=rng.randint(0, 9))))
        for _ in range(rng.randint(0, 30))
    ]


def packed_of(images: list[list[str]], rng: random.Random) -> PackedTags:
    """The images' tags as ids into a shuffled table (which holds unused tags too)."""
    names = list(dict.fromkeys(t for tags in images for t in tags))
    names += [t for t in rng.sample(VOCABULARY, 4) if t not in names]
    rng.shuffle(names)
    ids = {t: i for i, t in enumerate(names)}
    return PackedTags(names, [pack_ids([ids[t] for t in tags]) for tags in images])


def random_aliases(rng: random.Random) -> dict[str, str]:
    pairs = [(rng.choice(VOCABULARY), rng.choice(VOCABULARY)) for _ in range(rng.randint(0, 3))]
    return {a.casefold(): b for a, b in pairs}


def test_the_postings_of_each_id_are_its_images_in_order() -> None:
    packed = [pack_ids([2, 0]), b"", pack_ids([0]), pack_ids([1, 2, 0])]
    assert id_postings(packed, 4) == [[0, 2, 3], [3], [0, 3], []]
    assert id_postings(packed, 4, wanted=[2]) == [[], [], [0, 3], []]


@pytest.mark.parametrize("size", [3, 300, 5000, 70_000, 1 << 17])
def test_the_postings_of_some_ids_are_theirs_in_the_whole_table(size: int, monkeypatch) -> None:
    # Ids of one byte, of two (picked by their bytes), of many rows of 256, and above 65535;
    # the images a few at a time (as 4096 at a time at scale).
    monkeypatch.setattr(postings, "_CHUNK", 7)
    rng = random.Random(size)
    for _ in range(20 if size < 65536 else 3):
        packed = [
            pack_ids(rng.sample(range(size), min(size, rng.randint(0, 8))))
            for _ in range(rng.randint(0, 40))
        ]
        wanted = set(rng.sample(range(size), min(size, rng.randint(0, 60))))
        every = id_postings(packed, size)
        some = id_postings(packed, size, wanted)
        assert some == [ids if i in wanted else [] for i, ids in enumerate(every)]


def test_implied_counts_from_ids_are_the_per_image_counts() -> None:
    for seed in range(400):
        rng = random.Random(seed)
        images = random_images(rng)
        aliases = random_aliases(rng) or None
        got = implied_counts_ids(packed_of(images, rng), aliases)
        assert got == implied_counts(images, aliases), (seed, images, aliases)


def test_the_tag_implying_one_most_often_is_named_and_ties_go_by_name() -> None:
    images = [
        ["white shirt", "shirt", "blue shirt"],  # white shirt comes first: it implies shirt
        ["shirt", "blue shirt", "white shirt"],  # blue shirt first
        ["blue shirt", "shirt"],
        ["Shirt", "white shirt"],  # counted under its own spelling
        ["serafuku", "school uniform", "1girl"],
        ["no shirt", "shirt", "holding cup", "cup"],  # implies nothing
    ]
    rng = random.Random(0)
    got = implied_counts_ids(packed_of(images, rng))
    assert got == implied_counts(images)
    assert got == {
        "shirt": (3, "blue shirt"),
        "Shirt": (1, "white shirt"),
        "school uniform": (1, "serafuku"),
    }


def index_facts(index: TagIndex) -> tuple[object, ...]:
    return (list(index.postings.items()), list(index.spelling.items()), index.counts, index.keys)


def test_the_index_from_ids_is_the_index_from_strings() -> None:
    aliases = {"gray socks": "grey socks"}
    for seed in range(300):
        rng = random.Random(seed)
        tags = random_images(rng)
        images = [f"{i:03d}.png" for i in range(len(tags))]
        buckets = {t: rng.choice(["trait", "context", "drop"]) for t in rng.sample(VOCABULARY, 6)}
        slow = TagIndex(images, tags, buckets=buckets, aliases=aliases)
        fast = TagIndex(images, packed_of(tags, rng), buckets=buckets, aliases=aliases)
        assert index_facts(fast) == index_facts(slow), (seed, tags)
        for query in QUERIES:
            assert fast.match(query) == slow.match(query), (seed, tags, query)


# ---- on an open workspace: the app's and the command line's passes ----------------------------

CAPTIONS = {
    "a": "white shirt, shirt, blue shirt, 1girl",
    "b": "Shirt, white_shirt, smile",
    "c": "hair_bow, bow, black bow, -_-",
    "d": "serafuku, school uniform, gray socks, grey socks, socks",
    "e": "black thighhighs, thighhighs, legwear, kneehighs",
    "f": "",
    "g": "kaede \\(blue archive\\), smile, bow",
    "h": "shirt, white shirt, white shirt",
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    root.mkdir()
    for name, caption in CAPTIONS.items():
        (root / f"{name}.png").write_bytes(b"\x89PNG fake " + name.encode())
        (root / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
    (root / "i.png").write_bytes(b"\x89PNG no caption")
    write_scores(root, {"a.png": A_SCORES, "c.png": {"smile": 0.9, "solo": 0.7}})
    return root


def per_image_index(ws: Workspace) -> TagIndex:
    """The index as it was built before: from every image's tags as strings."""
    images = sorted(e.image for e in ws.images)
    tags = [tuple(map(ws.strategy.alias_of, ws.image_tags(image))) for image in images]
    problems = {p.path for p in ws.problems}
    return TagIndex(
        images,
        tags,
        buckets=ws.strategy.bucket_of,
        aliases=dict(ws.strategy.aliases),
        trigger=ws.strategy.trigger,
        changed=ws.will_change,
        flagged={i for i in images if i in problems or ws.by_image[i].caption in problems},
    )


def assert_passes_agree(ws: Workspace) -> None:
    aliases = ws.strategy.alias_index
    want = implied_counts((ws.image_tags(e.image) for e in ws.images), aliases)
    got = workspace_implied(ws)
    assert got == want
    counts = ws.tag_counts()
    assert suggest_buckets(counts, len(ws.images), ws.strategy, got) == suggest_buckets(
        counts, len(ws.images), ws.strategy, want
    )
    fast, slow = workspace_index(ws), per_image_index(ws)
    assert index_facts(fast) == index_facts(slow)
    for query in [*QUERIES, "changed", "flagged", "kd", "score:smile>0.5"]:
        try:
            expected = slow.match(query)
        except QueryError as exc:
            with pytest.raises(QueryError, match=str(exc.message)):
                fast.match(query)
            continue
        assert fast.match(query) == expected, query


@pytest.mark.parametrize("source", ["caption", "auto", "tagger", "both"])
@pytest.mark.parametrize("underscores", ["spaces", "keep"])
def test_the_passes_agree_with_per_image_tags_on_a_workspace(
    dataset: Path, source: str, underscores: str
) -> None:
    strategy = Strategy(
        name="t",
        trigger="kd",
        buckets={"shirt": "trait", "bow": "context", "smile": "drop"},
        aliases={"gray socks": "grey socks", "Shirt": "white shirt"},
        caption=CaptionFormat(underscores=underscores),
        tagger=TaggerSettings(source=source),
    )
    with Workspace.open(dataset, strategy=strategy) as ws:
        ws.use_strategy(strategy)
        assert_passes_agree(ws)
        # Per-image edits: those images' tags are no longer their caption's.
        ws.edit_image_tags("b.png", remove=["smile"], add=["bow", "hair bow"])
        ws.edit_image_tags("f.png", add=["shirt", "light blue shirt"])
        ws.edit_image_tags("h.png", remove=["shirt"])
        assert ws.state.image_edits
        assert_passes_agree(ws)
        ws.set_alias("bow", "hair bow")
        assert_passes_agree(ws)
