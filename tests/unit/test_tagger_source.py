"""Tagger scores become source tags: the [tagger] table, each `source`, MCut, threshold edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.profile import ProfileError, dump_profile, parse_profile, strategy_to_dict
from tui.core.scores import Label, ScoredImage, ScoreStore, encode_pairs, quantise, scores_path
from tui.core.store import Edit
from tui.core.strategy import CaptionFormat, Strategy
from tui.core.tagger import TaggerSettings
from tui.core.workspace import Workspace, check_edit

LABELS = [
    Label("general", 9, "general"),
    Label("sensitive", 9, "sensitive"),
    Label("blue sky", 0, "blue_sky"),
    Label("solo", 0, "solo"),
    Label("blush", 0, "blush"),
    Label("smile", 0, "smile"),
    Label("hatsune miku", 4, "hatsune_miku"),
]
A_SCORES = {
    "general": 0.8,
    "sensitive": 0.2,
    "blue sky": 0.9,
    "hatsune miku": 0.9,
    "solo": 0.6,
    "smile": 0.5,
    "blush": 0.3,
}
# Tagger tags of a.png with the default table: by descending score, ties by name.
A_TAGS = ("blue sky", "hatsune miku", "general", "solo", "smile")


def write_scores(root: Path, per_image: dict[str, dict[str, float]]) -> None:
    """Store scores as `lora-curator tag` does (no model needed)."""
    index = {lb.name: i for i, lb in enumerate(LABELS)}
    with ScoreStore.open_for_tagging(root) as store:
        model = store.register_model("wd-test", "sha", LABELS)
        rows = []
        for image, scores in per_image.items():
            st = (root / image).stat()
            pairs = encode_pairs(
                [index[t] for t in scores], [quantise(s) for s in scores.values()], wide=False
            )
            rows.append(ScoredImage(image, st.st_size, st.st_mtime_ns, pairs))
        store.write_batch(model, rows)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """a.png tagged (caption "1girl, smile"), b.png not tagged (caption "1girl, red eyes")."""
    root = tmp_path / "ds"
    root.mkdir()
    for name, caption in (("a", "1girl, smile"), ("b", "1girl, red eyes")):
        (root / f"{name}.png").write_bytes(b"\x89PNG fake " + name.encode())
        (root / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
    write_scores(root, {"a.png": A_SCORES})
    return root


def with_source(source: str, **settings) -> Strategy:
    return Strategy(name="t", tagger=TaggerSettings(source=source, **settings))


@pytest.mark.parametrize(
    ("source", "a_tags", "b_tags"),
    [
        ("auto", A_TAGS, ("1girl", "red eyes")),
        ("tagger", A_TAGS, ()),
        ("caption", ("1girl", "smile"), ("1girl", "red eyes")),
        (
            "both",
            ("1girl", "smile", "blue sky", "hatsune miku", "general", "solo"),
            ("1girl", "red eyes"),
        ),
    ],
)
def test_each_source_derives_the_source_tags(dataset, source, a_tags, b_tags):
    with Workspace.open(dataset, strategy=with_source(source), read_only=True) as ws:
        assert ws.source_tags("a.png") == a_tags
        assert ws.source_tags("b.png") == b_tags
        assert ws.tag_counts()["blue sky"] == (0 if source == "caption" else 1)


def test_edits_buckets_and_patterns_apply_on_top_of_tagger_tags(dataset):
    strategy = Strategy(
        name="miku",
        trigger="miku",
        pattern="absorb",
        buckets={"hatsune miku": "trait", "general": "drop", "smile": "context"},
        aliases={"blue sky": "sky"},
    )
    with Workspace.open(dataset, strategy=strategy) as ws:
        ws.edit_image_tags("a.png", remove=["solo"], add=["outdoors"])
        assert ws.caption_for("a.png") == "miku, sky, smile, outdoors\n"


def test_mcut_mode_from_the_table(dataset):
    # General scores 0.9 0.6 0.5 0.3: the largest gap is 0.9-0.6, cut at 0.75; the one
    # character score is its own cut.
    with Workspace.open(dataset, strategy=with_source("auto", mode="mcut")) as ws:
        assert ws.source_tags("a.png") == ("blue sky", "hatsune miku", "general")


def test_rating_off_and_underscores_kept(dataset):
    strategy = Strategy(
        name="t",
        caption=CaptionFormat(underscores="keep"),
        tagger=TaggerSettings(rating=False),
    )
    with Workspace.open(dataset, strategy=strategy, read_only=True) as ws:
        assert ws.source_tags("a.png") == ("blue_sky", "hatsune_miku", "solo", "smile")
        assert ws.image_scores("a.png")[0][:2] == ("blue_sky", 0)


def test_a_threshold_change_is_an_edit_undone_and_replayed_on_reopen(dataset):
    with Workspace.open(dataset, strategy=Strategy(name="t")) as ws:
        ws.use_strategy(Strategy(name="t"))
        assert "blush" not in ws.caption_for("a.png")
        ws.set_tagger(TaggerSettings(general_threshold=0.25))
        assert ws.caption_for("a.png").endswith(", blush\n")
        assert ws.tag_counts()["blush"] == 1
        assert ws.undo()
        assert "blush" not in ws.caption_for("a.png")
        assert ws.tag_counts()["blush"] == 0
        assert ws.redo()
    with Workspace.open(dataset) as ws:
        assert ws.strategy.tagger.general_threshold == 0.25
        assert ws.caption_for("a.png").endswith(", blush\n")
    assert not (dataset / "a.txt").read_text().count("blush")  # nothing written unasked


def test_a_damaged_tagger_edit_is_refused():
    assert check_edit(Edit(1, "tagger", {"settings": {"general_threshold": 0.3}})) is None
    assert "not an object" in check_edit(Edit(1, "tagger", {"settings": 0.3}))
    why = check_edit(Edit(1, "tagger", {"settings": {"general_threshold": 3}}))
    assert "tagger.general_threshold = 3 must be between 0 and 1" in why


def test_opening_an_untagged_dataset_creates_no_scores_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.txt").write_text("solo\n")
    with Workspace.open(tmp_path) as ws:
        assert ws.source_tags("a.png") == ("solo",) and not ws.has_scores
    assert not scores_path(tmp_path).exists()


def test_a_damaged_scores_file_is_a_problem_not_a_failed_open(dataset):
    scores_path(dataset).write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(scores_path(dataset)) + suffix).unlink(missing_ok=True)
    with Workspace.open(dataset, read_only=True) as ws:
        assert ws.source_tags("a.png") == ("1girl", "smile")
        assert any("scores.sqlite3" in p.path and "delete" in p.message for p in ws.problems)


# -- the profile's [tagger] table -----------------------------------------------------------


def test_the_tagger_table_round_trips_and_is_absent_by_default():
    plain = parse_profile("schema = 1\n", "p.toml")
    assert plain.tagger == TaggerSettings()
    assert "tagger" not in strategy_to_dict(plain)
    text = (
        "schema = 1\n[tagger]\ngeneral_threshold = 0.3\ncharacter_threshold = 0.7\n"
        'mode = "mcut"\nrating = false\nsource = "both"\n'
    )
    strategy = parse_profile(text, "p.toml")
    assert strategy.tagger == TaggerSettings(0.3, 0.7, "mcut", False, "both")
    assert parse_profile(dump_profile(strategy), "p.toml") == strategy


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("general_threshold = 2", "tagger.general_threshold = 2 must be between 0 and 1"),
        ('mode = "best"', "tagger.mode = 'best' is not valid; use one of: fixed, mcut"),
        ("thresold = 0.3", "unknown key tagger.thresold"),
    ],
)
def test_tagger_table_errors_name_the_profile_and_key(table, message):
    with pytest.raises(ProfileError) as caught:
        parse_profile(f"schema = 1\n[tagger]\n{table}\n", "/lib/miku.toml")
    assert str(caught.value).startswith("/lib/miku.toml: ")
    assert message in str(caught.value)


def test_the_fast_fixed_selection_is_select_tags(tmp_path):
    """Thresholds re-derive every image on the stored integers: the same tags, in the same
    order, as `select_tags` on the scores (ties, tied ratings, two labels of one tag)."""
    import random

    from tui.core.tagger import select_tags

    rng = random.Random(7)
    labels = [Label(n, 9, n) for n in ("general", "sensitive", "questionable", "explicit")]
    labels += [Label(f"tag {i}", rng.choice((0, 0, 4)), f"tag_{i}") for i in range(30)]
    labels += [Label("Solo", 0, "Solo"), Label("solo", 0, "solo")]
    root = tmp_path / "ds"
    root.mkdir()
    rows = []
    for k in range(60):
        (root / f"{k}.png").write_bytes(b"x")
        chosen = rng.sample(range(len(labels)), 20)
        # Few distinct values: many ties, between tags and between ratings.
        values = [rng.choice((0, 0.2, 0.35, 0.5, 0.85, 0.9, 1.0)) for _ in chosen]
        if k < 4:  # the four ratings tied at the top
            chosen[:4], values[:4] = [0, 1, 2, 3], [1.0] * 4
            chosen[4:] = [c for c in chosen[4:] if c > 3]
            values = values[: len(chosen)]
        pairs = encode_pairs(chosen, [quantise(v) for v in values], wide=k % 2 == 0)
        rows.append((f"{k}.png", pairs, k % 2 == 0))
    for wide in (False, True):
        with ScoreStore.open_for_tagging(root) as store:
            model = store.register_model(f"m{wide}", str(wide), labels)
            store._wide[model] = wide  # the packing a large model would use
            store._conn.execute("UPDATE models SET wide=? WHERE id=?", (int(wide), model))
            store.write_batch(model, [ScoredImage(i, 1, 1, p) for i, p, w in rows if w == wide])
        with Workspace.open(root, read_only=True) as ws:
            assert ws.has_scores
            for settings in (
                TaggerSettings(),
                TaggerSettings(0.2, 0.9, rating=False),
                TaggerSettings(0.0, 0.0),
                TaggerSettings(1.0, 1.0),
                TaggerSettings(0.35, 0.35),
            ):
                fast = ws.tagger_tags(settings)
                assert len(fast) == 30
                for image, tags in fast.items():
                    assert list(tags) == select_tags(ws.image_scores(image), settings), image


def test_changing_the_underscores_spelling_after_open_respells_the_tagger_tags(dataset):
    with Workspace.open(dataset, strategy=Strategy(name="t")) as ws:
        assert ws.source_tags("a.png") == A_TAGS
        ws.use_strategy(Strategy(name="t", caption=CaptionFormat(underscores="keep")))
        assert ws.source_tags("a.png") == ("blue_sky", "hatsune_miku", "general", "solo", "smile")
        assert [t for t, _, _ in ws.image_scores("a.png")][:2] == ["blue_sky", "hatsune_miku"]
