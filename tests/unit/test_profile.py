"""Profiles: TOML schema 1, round trips, errors a user can act on, the library."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.profile import (
    ProfileError,
    dump_profile,
    is_profile_path,
    library_dir,
    library_path,
    list_library,
    load_profile,
    parse_profile,
    resolve_profile,
    save_profile,
)
from tui.core.strategy import CaptionFormat, Strategy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SAMPLE_PROFILE = Path(__file__).resolve().parents[2] / "sample_dataset" / "profiles" / "kaede.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, name: str = "broken.toml") -> str:
    """The message of loading a profile file holding `text` (which must fail)."""
    path = write(tmp_path / name, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message, "every profile error names the file"
    assert "\n" not in message, "a profile error is one line"
    return message


# ---- reading -----------------------------------------------------------------------------------


def test_sample_profile_loads_as_written():
    strategy = load_profile(SAMPLE_PROFILE)
    assert strategy.name == "kaede"
    assert strategy.trigger == "kaede"
    assert strategy.pattern == "absorb"
    assert strategy.unsorted == "keep"
    assert strategy.bucket_of("black hair") == "trait"
    assert strategy.bucket_of("window") == "context"
    assert strategy.bucket_of("blurry") == "flaw"
    assert strategy.bucket_of("kaede (sample)") == "drop"
    assert strategy.bucket_of("cup") == "unsorted"
    assert strategy.alias_of("gray pants") == "grey pants"
    assert strategy.caption == CaptionFormat(".txt", ", ", "spaces", False, "source")


def test_only_schema_is_required(tmp_path):
    strategy = load_profile(write(tmp_path / "minimal.toml", "schema = 1\n"))
    assert strategy.name == "minimal"
    assert strategy.trigger == ""
    assert dict(strategy.buckets) == {}
    assert dict(strategy.aliases) == {}
    assert strategy.caption.extension == ".txt"
    assert strategy.caption.separator == ", "
    assert strategy.caption.order == "source"
    assert strategy.caption.escape_parentheses is False


def test_name_defaults_to_file_stem(tmp_path):
    assert load_profile(write(tmp_path / "my char.toml", "schema = 1\n")).name == "my char"
    named = write(tmp_path / "file.toml", 'schema = 1\nname = "kaede"\n')
    assert load_profile(named).name == "kaede"


def test_trigger_is_trimmed(tmp_path):
    path = write(tmp_path / "p.toml", 'schema = 1\ntrigger = "  kaede "\n')
    assert load_profile(path).trigger == "kaede"


def test_utf8_bom_profile_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfschema = 1\ntrigger = "kaede"\n')
    assert load_profile(path).trigger == "kaede"


# ---- round trips -------------------------------------------------------------------------------


def test_sample_profile_round_trip(tmp_path):
    original = load_profile(SAMPLE_PROFILE)
    save_profile(original, tmp_path / "copy.toml")
    assert load_profile(tmp_path / "copy.toml") == original


def test_full_strategy_round_trip(tmp_path):
    strategy = Strategy(
        name="kaede v2",
        trigger="kaede",
        pattern="traits-only",
        unsorted="drop",
        buckets={
            "black hair": "trait",
            "Short Hair": "trait",
            "sitting": "context",
            "blurry": "flaw",
            "general": "drop",
        },
        aliases={"gray pants": "grey pants", "kaede \\(sample\\)": "kaede"},
        caption=CaptionFormat(".caption", ",", "keep", True, "frequency"),
        suggest={"flaw": ("*blur*", "lowres"), "drop": ("rating:*",)},
        checks={"inconsistent_trait": 0.7, "lowres_side": 512.0},
    )
    path = tmp_path / "lib" / "nested" / "kaede v2.toml"
    save_profile(strategy, path)  # creates the folders
    assert load_profile(path) == strategy
    # The saved file is plain TOML with every documented key.
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 1
    assert data["buckets"]["trait"] == ["black hair", "Short Hair"]
    assert data["caption"]["escape_parentheses"] is True


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_bucket_maps = st.dictionaries(
    _text, st.sampled_from(["trait", "context", "flaw", "drop"]), max_size=8
).filter(lambda d: len({t.casefold() for t in d}) == len(d))
_captions = st.builds(
    CaptionFormat,
    extension=st.from_regex(r"\.[A-Za-z0-9_-]{1,8}", fullmatch=True),
    separator=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=4).filter(
        lambda s: s.strip(" ") and "\n" not in s and "\r" not in s
    ),
    underscores=st.sampled_from(["spaces", "keep"]),
    escape_parentheses=st.booleans(),
    order=st.sampled_from(["source", "alphabetical", "frequency"]),
    drop_implied=st.booleans(),
)
_strategies = st.builds(
    Strategy,
    name=st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    trigger=st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(str.strip),
    pattern=st.sampled_from(["keep-all", "absorb", "traits-only"]),
    unsorted=st.sampled_from(["keep", "drop"]),
    buckets=_bucket_maps,
    aliases=st.dictionaries(_text, _text, max_size=5),
    caption=_captions,
)


@settings(max_examples=150, deadline=None)
@given(strategy=_strategies)
def test_round_trip_property(strategy):
    assert parse_profile(dump_profile(strategy), "generated.toml") == strategy


@settings(max_examples=25, deadline=None)
@given(strategy=_strategies)
def test_round_trip_through_a_file_property(strategy):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.toml"
        save_profile(strategy, path)
        assert load_profile(path) == strategy


# ---- errors ------------------------------------------------------------------------------------


def test_toml_syntax_error_names_line_and_column(tmp_path):
    message = load_error(tmp_path, 'schema = 1\npattern = "absorb"\ntrigger = "kaede\n')
    assert re.search(r"line 3, column \d+", message), message


def test_unknown_top_level_key(tmp_path):
    message = load_error(tmp_path, 'schema = 1\ntriger = "kaede"\n')
    assert "'triger'" in message


def test_unknown_caption_key(tmp_path):
    message = load_error(tmp_path, 'schema = 1\n[caption]\nsep = ","\n')
    assert "'sep'" in message
    assert "caption" in message


def test_unknown_bucket(tmp_path):
    message = load_error(tmp_path, 'schema = 1\n[buckets]\ntraits = ["black hair"]\n')
    assert "'traits'" in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("schema = 1\ntrigger = 3\n", "trigger"),
        ('schema = 1\nname = ["kaede"]\n', "name"),
        ('schema = 1\n[buckets]\ntrait = "black hair"\n', "trait"),
        ('schema = 1\n[buckets]\ntrait = ["black hair", 2]\n', "trait"),
        ('schema = 1\n[caption]\nescape_parentheses = "yes"\n', "escape_parentheses"),
        ("schema = 1\n[aliases]\n'gray pants' = 1\n", "gray pants"),
        ('schema = "1"\n', "schema"),
        ('schema = 1\nbuckets = "trait"\n', "buckets"),
    ],
)
def test_wrong_type(tmp_path, text, where):
    message = load_error(tmp_path, text)
    assert where in message


def test_unknown_pattern_lists_the_valid_ones(tmp_path):
    message = load_error(tmp_path, 'schema = 1\npattern = "absorbs"\n')
    assert "'absorbs'" in message
    for valid in ("keep-all", "absorb", "traits-only"):
        assert valid in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("unsorted", "maybe"), ("caption.order", "random"), ("caption.underscores", "dashes")],
)
def test_unknown_choice(tmp_path, key, value):
    if key.startswith("caption."):
        text = f'schema = 1\n[caption]\n{key.split(".")[1]} = "{value}"\n'
    else:
        text = f'schema = 1\n{key} = "{value}"\n'
    message = load_error(tmp_path, text)
    assert repr(value) in message


def test_tag_in_two_buckets_names_both(tmp_path):
    text = 'schema = 1\n[buckets]\ntrait = ["black hair"]\ncontext = ["smile", "Black Hair"]\n'
    message = load_error(tmp_path, text)
    assert "black hair" in message.casefold()
    assert "trait" in message
    assert "context" in message


def test_newer_schema(tmp_path):
    message = load_error(tmp_path, "schema = 2\n")
    assert "schema 2" in message
    assert "newer" in message


def test_missing_schema(tmp_path):
    message = load_error(tmp_path, 'trigger = "kaede"\n')
    assert "schema" in message


@pytest.mark.parametrize("separator", ["", "   ", ",\n", ",\r"])
def test_blank_or_multiline_separator_refused(tmp_path, separator):
    text = f"schema = 1\n[caption]\nseparator = {json.dumps(separator)}\n"
    message = load_error(tmp_path, text)
    assert "separator" in message


def test_bad_extension_refused(tmp_path):
    message = load_error(tmp_path, 'schema = 1\n[caption]\nextension = "txt"\n')
    assert "extension" in message


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ProfileError, match=re.escape(str(path))):
        load_profile(path)


def test_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes('schema = 1\ntrigger = "café"\n'.encode("cp1252"))
    with pytest.raises(ProfileError, match=re.escape(str(path))):
        load_profile(path)


# ---- the library -------------------------------------------------------------------------------


def test_library_under_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert library_dir() == tmp_path / "cfg" / "lora-curator" / "profiles"
    assert library_path("kaede") == tmp_path / "cfg" / "lora-curator" / "profiles" / "kaede.toml"


def test_library_default_is_dot_config(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert library_dir() == tmp_path / ".config" / "lora-curator" / "profiles"


def test_list_library(isolated_config):
    assert list_library() == []
    save_profile(Strategy(name="b"), library_path("b"))
    save_profile(Strategy(name="a"), library_path("a"))
    (library_dir() / "notes.txt").write_text("not a profile")
    assert [p.stem for p in list_library()] == ["a", "b"]


@pytest.mark.parametrize(
    ("ref", "is_path"),
    [
        ("kaede", False),
        ("kaede v2", False),
        ("kaede.toml", True),
        ("profiles/kaede", True),
        ("./kaede", True),
        ("/abs/kaede.toml", True),
    ],
)
def test_profile_ref_path_or_name(ref, is_path):
    assert is_profile_path(ref) is is_path


def test_resolve_library_name(isolated_config):
    save_profile(Strategy(name="kaede", trigger="kd"), library_path("kaede"))
    path = resolve_profile("kaede")
    assert path == isolated_config / "lora-curator" / "profiles" / "kaede.toml"
    assert load_profile(path).trigger == "kd"


def test_resolve_path_is_not_looked_up_in_library(isolated_config, tmp_path):
    save_profile(Strategy(name="kaede", trigger="library"), library_path("kaede"))
    local = tmp_path / "here" / "kaede.toml"
    save_profile(Strategy(name="kaede", trigger="local"), local)
    assert load_profile(resolve_profile(str(local))).trigger == "local"
    assert load_profile(resolve_profile("kaede")).trigger == "library"


def test_resolve_unknown_name_says_so():
    with pytest.raises(ProfileError, match="'ghost'"):
        resolve_profile("ghost")


@pytest.mark.parametrize(
    "name", ["../../x", "..", "../kaede", "a/b", "", ".hidden", "x/../../y", "kae..de", "a\\b"]
)
def test_names_cannot_escape_the_library(name):
    with pytest.raises(ProfileError):
        library_path(name)


@given(name=st.text(max_size=20))
def test_any_accepted_name_stays_in_the_library(name):
    try:
        path = library_path(name)
    except ProfileError:
        return
    assert path.parent == library_dir()
    assert path.resolve().parent == library_dir().resolve()
    assert path.name == f"{name}.toml"
