"""Reading caption files (bytes → text → tags) and writing a caption line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.captions import (
    TagParser,
    decode_caption,
    format_caption,
    normalize_tag,
    parse_tags,
)


def read_tags(data: bytes, underscores: str = "spaces") -> tuple[str, ...]:
    """What the engine reads from a caption file's bytes."""
    return parse_tags(decode_caption(data).text, underscores)


# ---- decoding ---------------------------------------------------------------------------------


def test_utf8_bom_is_stripped():
    decoded = decode_caption(b"\xef\xbb\xbfblack hair, smile\n")
    assert decoded.text == "black hair, smile"
    assert decoded.warnings == ()
    assert read_tags(b"\xef\xbb\xbfblack hair, smile\n") == ("black hair", "smile")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec):
    bom = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff"
    data = bom + "café, naïve, 笑顔\r\n".encode(codec)
    decoded = decode_caption(data)
    assert decoded.text == "café, naïve, 笑顔"
    assert decoded.warnings == ()


def test_plain_utf8_has_no_warning():
    decoded = decode_caption("café, 笑顔\n".encode())
    assert decoded.text == "café, 笑顔"
    assert decoded.warnings == ()


def test_cp1252_fallback_warns():
    data = "café, “quoted”, naïve\n".encode("cp1252")
    decoded = decode_caption(data)
    assert decoded.text == "café, “quoted”, naïve"
    assert len(decoded.warnings) == 1
    assert "cp1252" in decoded.warnings[0]


def test_bytes_undecodable_even_as_cp1252_still_load():
    # 0x81 and 0x8d have no cp1252 character: the file must still be read, with a warning.
    decoded = decode_caption(b"smile, \x81\x8d\n")
    assert decoded.text.startswith("smile, ")
    assert decoded.warnings
    assert read_tags(b"smile, \x81\x8d\n")[0] == "smile"


@pytest.mark.parametrize(
    "data",
    [
        b"black hair, smile\r\n",
        b"black hair, smile\r",
        b"black hair, smile\n",
        b"black hair, smile",
    ],
)
def test_single_line_any_line_ending(data):
    decoded = decode_caption(data)
    assert decoded.text == "black hair, smile"
    assert decoded.warnings == ()


@pytest.mark.parametrize(
    "data",
    [
        b"black hair, smile\nsitting, window\n",
        b"black hair, smile\r\nsitting, window\r\n",
        b"black hair, smile\rsitting, window",
        b"black hair, smile\n\n\nsitting, window\n",
    ],
)
def test_several_lines_use_every_tag_and_warn(data):
    decoded = decode_caption(data)
    assert "\r" not in decoded.text
    assert "\n" not in decoded.text
    assert parse_tags(decoded.text) == ("black hair", "smile", "sitting", "window")
    assert len(decoded.warnings) == 1
    assert "line" in decoded.warnings[0]


def test_trailing_blank_lines_are_not_several_lines():
    decoded = decode_caption(b"smile\n\n\n")
    assert decoded.warnings == ()
    assert parse_tags(decoded.text) == ("smile",)


def test_empty_file_has_no_tags():
    assert read_tags(b"") == ()
    assert read_tags(b"\n") == ()
    assert read_tags(b" , ,\n") == ()


# ---- parsing ---------------------------------------------------------------------------------


def test_trim_and_collapse_inner_whitespace():
    text = "  black   hair ,\tshort\t\thair\t, closed \u3000 eyes,smile  "
    assert parse_tags(text) == ("black hair", "short hair", "closed eyes", "smile")


@pytest.mark.parametrize("space", ["\xa0", "\u2003", "\u3000", "\x0b", "\x0c", "\t"])
def test_any_inner_whitespace_becomes_one_space(space):
    assert parse_tags(f"black{space}hair, closed{space}{space}eyes") == (
        "black hair",
        "closed eyes",
    )


def test_underscores_become_spaces():
    assert parse_tags("black_hair, looking_at_viewer, simple__background") == (
        "black hair",
        "looking at viewer",
        "simple background",
    )


@pytest.mark.parametrize("emoticon", ["^_^", "o_o", ">_<", "x_x", "0_0", "@_@", "=_=", "u_u"])
def test_emoticons_keep_their_underscores(emoticon):
    assert parse_tags(f"smile, {emoticon}, black_hair") == ("smile", emoticon, "black hair")


def test_underscores_keep_mode():
    assert parse_tags("black_hair, ^_^, looking_at_viewer", underscores="keep") == (
        "black_hair",
        "^_^",
        "looking_at_viewer",
    )


def test_unknown_underscore_mode_is_refused():
    with pytest.raises(ValueError):
        TagParser("dashes")


def test_escaped_parentheses_are_unescaped():
    assert parse_tags(r"kaede \(blue archive\), smile") == ("kaede (blue archive)", "smile")


def test_weighted_tag_is_one_verbatim_tag():
    tags = parse_tags("(black_hair:1.2), (smile:0.8) , (sitting, window:1.1), solo")
    assert tags == ("(black_hair:1.2)", "(smile:0.8)", "(sitting, window:1.1)", "solo")


def test_empty_tags_are_dropped():
    assert parse_tags(",smile,, ,\t,blush,") == ("smile", "blush")


def test_duplicates_dropped_case_insensitively_first_spelling_kept():
    assert parse_tags("Smile, blush, smile, SMILE, Blush, window") == ("Smile", "blush", "window")


def test_duplicates_compared_after_normalisation():
    assert parse_tags("black_hair, black  hair, Black Hair, kaede \\(x\\), kaede (x)") == (
        "black hair",
        "kaede (x)",
    )


def test_parser_cache_does_not_mix_captions():
    parser = TagParser()
    assert parser.parse("smile, blush") == ("smile", "blush")
    assert parser.parse("blush, window") == ("blush", "window")
    assert parser.parse("smile, blush") == ("smile", "blush")


# ---- formatting --------------------------------------------------------------------------------


def test_format_is_one_line_ending_in_lf():
    assert format_caption(["kaede", "smile", "blush"], ", ", False) == "kaede, smile, blush\n"


@pytest.mark.parametrize("separator", [",", " , ", ",  ", " | "])
def test_format_separator(separator):
    assert format_caption(["a b", "c"], separator, False) == f"a b{separator}c\n"


def test_format_escapes_parentheses_only_when_asked():
    tags = ["kaede (blue archive)", "(smile:1.2)", "solo"]
    assert format_caption(tags, ", ", False) == "kaede (blue archive), (smile:1.2), solo\n"
    assert format_caption(tags, ", ", True) == r"kaede \(blue archive\), (smile:1.2), solo" + "\n"


def test_escaped_caption_reads_back():
    tags = ("kaede (blue archive)", "(smile:1.2)", "solo")
    assert parse_tags(format_caption(tags, ", ", True)) == tags


# ---- properties --------------------------------------------------------------------------------

# Tag text: no separators, line breaks, escapes or parentheses (those have their own tests).
_tag_chars = st.characters(
    blacklist_categories=("Cs",), blacklist_characters=",\n\r\\()\x85\u2028\u2029"
)
_raw_tags = st.text(_tag_chars, min_size=1, max_size=24)
_tags = st.lists(
    _raw_tags.map(normalize_tag).filter(bool),
    min_size=1,
    max_size=12,
    unique_by=str.casefold,
)
_separators = st.sampled_from([", ", ",", " , ", ",\t", ",  "])


@given(tags=_tags, separator=_separators)
def test_parse_format_round_trip(tags, separator):
    assert parse_tags(format_caption(tags, separator, False)) == tuple(tags)


@given(tags=_tags, separator=_separators)
def test_file_round_trip(tags, separator):
    data = format_caption(tags, separator, False).encode("utf-8")
    assert read_tags(data) == tuple(tags)


@given(
    tags=st.lists(
        st.text(st.sampled_from("ab _^o<()"), min_size=1, max_size=10)
        .map(normalize_tag)
        .filter(bool),
        min_size=1,
        max_size=8,
        unique_by=str.casefold,
    )
)
def test_escaped_round_trip(tags):
    """With escaped parentheses a tag holding `(` or `)` still reads back as itself."""
    # Weighted tags and unbalanced groups aside, escaping keeps every tag whole.
    assert parse_tags(format_caption(tags, ", ", True)) == tuple(tags)


@given(raw=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\")))
def test_normalize_tag_is_idempotent(raw):
    once = normalize_tag(raw)
    assert normalize_tag(once) == once


@given(raw=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\")))
def test_normalize_tag_keep_mode_is_idempotent(raw):
    once = normalize_tag(raw, "keep")
    assert normalize_tag(once, "keep") == once


@given(raw=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\()")))
def test_normalized_tag_has_no_stray_whitespace(raw):
    tag = normalize_tag(raw)
    assert tag == tag.strip()
    assert "  " not in tag
    assert all(ch == " " or not ch.isspace() for ch in tag)


@settings(max_examples=200)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\()")))
def test_parse_is_idempotent(text):
    tags = parse_tags(text)
    assert parse_tags(", ".join(tags)) == tags
    assert len({t.casefold() for t in tags}) == len(tags)
    assert all(tags)


@given(st.text(alphabet="ab(),\\: 1.\t", max_size=40))
def test_the_fast_comma_split_agrees_with_the_careful_one(text: str) -> None:
    # TagParser splits on plain commas and falls back to the careful split only when a
    # piece's parentheses span a comma: both must give the same tags.
    from tui.core.captions import _split_top_level, normalize_tag

    expected: list[str] = []
    for piece in _split_top_level(text):
        tag = normalize_tag(piece)
        if tag and tag.casefold() not in {t.casefold() for t in expected}:
            expected.append(tag)
    assert list(TagParser().parse(text)) == expected
