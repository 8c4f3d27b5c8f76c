"""Diagnostics (tui/core/checks.py): every finding planted in a generated dataset and found,
and absent from a clean one; image measures and their cache in the state."""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from tests.pictures import picture
from tui.core import checks
from tui.core import measures as measuring
from tui.core.checks import Finding, has_problem, run_checks
from tui.core.measures import ImageMeasure, measure_file, measure_images
from tui.core.profile import CHECK_DEFAULTS
from tui.core.strategy import Strategy
from tui.core.workspace import Workspace

# ---- generated pictures -------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@functools.cache
def png(seed: int, size: tuple[int, int] = (640, 640)) -> bytes:
    return encode(picture(seed, size))


@functools.cache
def blurred(seed: int) -> bytes:
    return encode(picture(seed).filter(ImageFilter.GaussianBlur(4)))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (its pixels are not there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


STRATEGY = Strategy(
    name="planted",
    pattern="absorb",
    buckets={
        "black hair": "trait",
        "red scarf": "trait",
        "zorblax": "trait",  # a trait of no known family: not a double-up a user would type
        "1girl": "context",
        "smile": "context",
        "sitting": "context",
        "blurry": "flaw",
        "general": "drop",
    },
)

# Eight sharp, distinct, captioned images: the reference of the dataset.
BASE = {f"img{n}.png": n for n in range(8)}


def caption(*extra: str) -> str:
    return ", ".join(("black hair", "zorblax", "1girl", *extra))


@functools.cache
def planted_files() -> dict[str, bytes | str | None]:
    near = picture(0).copy()
    ImageDraw.Draw(near).rectangle([10, 10, 20, 20], fill=(0, 0, 0))
    files: dict[str, bytes | str | None] = {}
    for name, seed in BASE.items():
        files[name] = png(seed)
        # `red scarf` only here: a trait on 8 of the 20 captioned images.
        files[name[:-4] + ".txt"] = caption("red scarf", "smile" if seed % 2 else "sitting")
    files.update(
        {
            # blurred, without `blurry` / blurred and tagged / blurred, tagged by an edit.
            "soft.png": blurred(30),
            "soft.txt": caption("smile"),
            "soft_tagged.png": blurred(31),
            "soft_tagged.txt": caption("smile", "blurry"),
            "soft_edited.png": blurred(32),
            "soft_edited.txt": caption("sitting"),
            # small, without `lowres` / small and tagged.
            "small.png": png(40, (300, 300)),
            "small.txt": caption("smile"),
            "small_tagged.png": png(41, (320, 240)),
            "small_tagged.txt": caption("smile", "lowres"),
            # the same bytes as img0.png, and img0 with a tiny change saved as JPEG.
            "copy_of_0.png": png(0),
            "copy_of_0.txt": caption("sitting"),
            "near_0.jpg": encode(near, "JPEG", quality=92),
            "near_0.txt": caption("sitting"),
            # two images sharing one caption file.
            "pair.png": png(50),
            "pair.jpg": encode(picture(51), "JPEG", quality=92),
            "pair.txt": caption("smile"),
            # no caption file.
            "bare.png": png(60),
            # only dropped tags and no trigger: the caption renders empty.
            "dropped.png": png(70),
            "dropped.txt": "general",
            # not decodable; and a header too large to decode.
            "broken.png": b"\x89PNG\r\n\x1a\nnot a png",
            "broken.txt": caption("smile"),
            "huge.png": png_header(9500, 9500),
            "huge.txt": caption("sitting"),
        }
    )
    return files


@pytest.fixture
def planted(make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(planted_files(), name="planted")


@pytest.fixture
def clean(make_dataset: Callable[..., Path]) -> Path:
    """Sharp, large, distinct, consistently tagged images with varied context."""
    context = ["smile", "sitting", "standing", "smile, sitting", "blush", "open mouth"]
    files: dict[str, bytes | str | None] = {}
    for n in range(6):
        files[f"c{n}.png"] = png(100 + n)
        files[f"c{n}.txt"] = f"black hair, red scarf, {context[n]}"
    return make_dataset(files, name="clean")


CLEAN_STRATEGY = Strategy(
    name="clean",
    trigger="kd",
    pattern="absorb",
    buckets={
        "black hair": "trait",
        "red scarf": "trait",
        "smile": "context",
        "sitting": "context",
        "standing": "context",
        "blush": "context",
        "open mouth": "context",
    },
)


def findings_of(root: Path, strategy: Strategy, edit: bool = False) -> list[Finding]:
    with Workspace.open(root, strategy=strategy) as ws:
        if edit:
            ws.edit_image_tags("soft_edited.png", add=["blurry"])
        return run_checks(ws, measure_images(ws))


def by_kind(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f)
    return out


@pytest.fixture
def planted_findings(planted: Path) -> dict[str, list[Finding]]:
    return by_kind(findings_of(planted, STRATEGY, edit=True))


# ---- every diagnostic planted and found ---------------------------------------------------


def test_every_kind_is_found(planted_findings: dict[str, list[Finding]]) -> None:
    assert set(planted_findings) == {
        "inconsistent-trait",
        "constant-context",
        "double-up",
        "untagged-blur",
        "untagged-lowres",
        "identical-files",
        "near-duplicates",
        "unreadable-image",
        "uncaptioned",
        "empty-caption",
        "stem-collision",
    }


def test_inconsistent_trait_names_the_images_without_it(planted_findings) -> None:
    (finding,) = planted_findings["inconsistent-trait"]
    assert finding.tag == "red scarf"
    assert finding.severity == "problem"
    files = planted_files()
    without = {
        image
        for image in files
        if not image.endswith(".txt")
        and "red scarf" not in str(files.get(image.rsplit(".", 1)[0] + ".txt", "red scarf"))
    }
    assert set(finding.images) == without  # every captioned image but the eight BASE ones
    assert len(without) == 12
    assert "8 of 20 captioned images" in finding.message
    assert "with and without" in finding.message


def test_constant_context_is_found(planted_findings) -> None:
    (finding,) = planted_findings["constant-context"]
    assert finding.tag == "1girl"
    assert finding.severity == "problem"
    assert finding.images == ("dropped.png",)  # 19 of 20 captioned images: 95%
    assert "cannot be separated from the trigger" in finding.message


def test_constant_context_on_every_image_names_none(clean: Path) -> None:
    from dataclasses import replace

    strategy = replace(CLEAN_STRATEGY, buckets={**CLEAN_STRATEGY.buckets, "red scarf": "context"})
    (finding,) = by_kind(findings_of(clean, strategy))["constant-context"]
    assert finding.images == ()
    assert "every one of the 6 captioned images" in finding.message


def test_double_up_is_advice_naming_natural_traits_only(planted_findings) -> None:
    (finding,) = planted_findings["double-up"]
    assert finding.severity == "advice"
    assert "black hair" in finding.message and "red scarf" in finding.message
    assert "zorblax" not in finding.message
    assert "four-ears" in finding.message
    assert "don't prompt these" in finding.message


def test_untagged_blur_spares_tagged_and_edited_images(planted_findings) -> None:
    (finding,) = planted_findings["untagged-blur"]
    assert finding.images == ("soft.png",)
    assert "`blurry`" in finding.message


def test_untagged_lowres(planted_findings) -> None:
    (finding,) = planted_findings["untagged-lowres"]
    assert finding.images == ("small.png",)


def test_identical_files(planted_findings) -> None:
    (finding,) = planted_findings["identical-files"]
    assert set(finding.images) == {"img0.png", "copy_of_0.png"}


def test_near_duplicates(planted_findings) -> None:
    (finding,) = planted_findings["near-duplicates"]
    assert "near_0.jpg" in finding.images
    assert set(finding.images) <= {"near_0.jpg", "img0.png", "copy_of_0.png"}
    assert len(finding.images) >= 2


def test_unreadable_and_too_large_images(planted_findings) -> None:
    found = {f.images: f.severity for f in planted_findings["unreadable-image"]}
    assert found == {("broken.png",): "problem", ("huge.png",): "advice"}


def test_uncaptioned_empty_caption_and_stem_collision(planted_findings) -> None:
    (uncaptioned,) = planted_findings["uncaptioned"]
    assert uncaptioned.images == ("bare.png",)
    (empty,) = planted_findings["empty-caption"]
    assert empty.images == ("dropped.png",)
    (collision,) = planted_findings["stem-collision"]
    assert collision.images == ("pair.jpg", "pair.png")
    assert "pair.txt" in collision.message


def test_findings_come_in_kind_order_and_name_images(planted: Path) -> None:
    findings = findings_of(planted, STRATEGY, edit=True)
    order = [checks.KINDS.index(f.kind) for f in findings]
    assert order == sorted(order)
    for f in findings:
        assert f.severity in ("problem", "advice")
        assert f.message and "\n" not in f.message
        assert all(isinstance(i, str) and not i.startswith("/") for i in f.images)
    assert has_problem(findings)


# ---- absent from a clean dataset ----------------------------------------------------------


def test_clean_dataset_has_no_problem(clean: Path) -> None:
    findings = findings_of(clean, CLEAN_STRATEGY)
    assert [f.kind for f in findings] == ["double-up"]
    assert not has_problem(findings)


@pytest.mark.parametrize("pattern", ["keep-all", "traits-only"])
def test_clean_dataset_under_other_patterns_has_no_finding(clean: Path, pattern: str) -> None:
    from dataclasses import replace

    assert findings_of(clean, replace(CLEAN_STRATEGY, pattern=pattern)) == []


def test_double_up_only_under_absorb(planted: Path) -> None:
    from dataclasses import replace

    kinds = {f.kind for f in findings_of(planted, replace(STRATEGY, pattern="keep-all"))}
    assert "double-up" not in kinds
    assert "inconsistent-trait" in kinds  # an inconsistent trait stays a problem


def test_without_measures_only_tag_checks_run(planted: Path) -> None:
    with Workspace.open(planted, strategy=STRATEGY, read_only=True) as ws:
        kinds = {f.kind for f in run_checks(ws)}
    assert kinds == {
        "inconsistent-trait",
        "constant-context",
        "double-up",
        "uncaptioned",
        "empty-caption",
        "stem-collision",
    }


# ---- thresholds from the profile ----------------------------------------------------------


def test_thresholds_come_from_the_profile(planted: Path) -> None:
    from dataclasses import replace

    lenient = replace(
        STRATEGY,
        checks={
            "inconsistent_trait": 0.3,
            "constant_context": 1.01,
            "blur_ratio": 0.001,
            "lowres_side": 200,
            "near_duplicate_distance": -1,
        },
    )
    kinds = {f.kind for f in findings_of(planted, lenient)}
    for gone in (
        "inconsistent-trait",
        "constant-context",
        "untagged-blur",
        "untagged-lowres",
        "near-duplicates",
    ):
        assert gone not in kinds
    strict = replace(STRATEGY, checks={"lowres_side": 700})
    (lowres,) = by_kind(findings_of(planted, strict))["untagged-lowres"]
    assert "img0.png" in lowres.images and "small_tagged.png" not in lowres.images


def test_check_defaults_keep_their_names() -> None:
    assert CHECK_DEFAULTS["inconsistent_trait"] == 0.80
    assert CHECK_DEFAULTS["constant_context"] == 0.95
    assert set(CHECK_DEFAULTS) >= {"blur_ratio", "lowres_side", "near_duplicate_distance"}


# ---- measures -----------------------------------------------------------------------------


def test_sharpness_falls_with_blur_and_hash_survives_resizing(tmp_path: Path) -> None:
    sharp = picture(7)
    values = []
    for radius in (0, 1, 2, 4):
        path = tmp_path / f"r{radius}.png"
        (sharp.filter(ImageFilter.GaussianBlur(radius)) if radius else sharp).save(path)
        values.append(measure_file(path).sharpness)
    assert values == sorted(values, reverse=True)
    assert values[-1] < 0.1 * values[0]
    small = tmp_path / "small.jpg"
    sharp.resize((320, 320)).save(small, quality=85)
    a, b = measure_file(tmp_path / "r0.png"), measure_file(small)
    assert (a.dhash ^ b.dhash).bit_count() <= 4
    other = measure_file(tmp_path / "r0.png").dhash ^ measure_file_of(picture(8), tmp_path)
    assert other.bit_count() > 8


def measure_file_of(image: Image.Image, folder: Path) -> int:
    path = folder / "other.png"
    image.save(path)
    return measure_file(path).dhash


def test_measure_reports_size_digest_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png(1, (300, 200)))
    m = measure_file(path)
    assert (m.width, m.height, m.size, m.error) == (300, 200, path.stat().st_size, "")
    assert m.mtime_ns == path.stat().st_mtime_ns
    assert 0 <= m.dhash < 1 << 64
    twin = tmp_path / "b.png"
    twin.write_bytes(path.read_bytes())
    assert measure_file(twin).digest == m.digest
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(30000, 30000))
    assert measure_file(huge).error.startswith(measuring.TOO_LARGE)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    assert measure_file(broken).error.startswith("cannot decode")
    assert measure_file(tmp_path / "gone.png").error.startswith("cannot read")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "1", "I;16", "CMYK"])
def test_every_image_mode_is_measured(tmp_path: Path, mode: str) -> None:
    image = picture(3, (200, 150)).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)
    m = measure_file(path)
    assert m.error == ""
    assert (m.width, m.height) == (200, 150)
    assert m.sharpness > 0


def test_measures_are_cached_in_the_state(planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace.open(planted) as ws:
        first = measure_images(ws)
    assert set(first) == {e for e in planted_files() if not e.endswith(".txt")}

    def no_decoding(path: object) -> ImageMeasure:
        raise AssertionError(f"measured again: {path}")

    monkeypatch.setattr(measuring, "measure_file", no_decoding)
    calls: list[tuple[int, int]] = []
    with Workspace.open(planted) as ws:
        second = measure_images(ws, lambda done, total: calls.append((done, total)))
    assert second == first
    assert calls[-1] == (len(first), len(first))

    # A changed file (new mtime) is measured again; the others still come from the cache.
    target = planted / "img3.png"
    target.write_bytes(png(99))
    measured: list[str] = []
    monkeypatch.setattr(
        measuring, "measure_file", lambda p: measured.append(os.path.basename(p)) or MEASURE
    )
    with Workspace.open(planted) as ws:
        third = measure_images(ws)
    assert measured == ["img3.png"]
    assert third["img3.png"] == MEASURE
    assert third["img2.png"] == first["img2.png"]


MEASURE = ImageMeasure(1, 2, b"d", 640, 640, 1.0, 5)


def test_read_only_workspace_measures_without_saving(planted: Path, tree_snapshot) -> None:
    with Workspace.open(planted):
        pass  # a state without measures
    before = tree_snapshot(planted)
    with Workspace.open(planted, read_only=True) as ws:
        measures = measure_images(ws)
        assert ws.store is not None and ws.store.measures() == {}
    assert tree_snapshot(planted) == before
    assert measures["img1.png"].width == 640


def test_no_state_at_all_measures_without_creating_one(clean: Path) -> None:
    with Workspace.open(clean, read_only=True) as ws:
        assert ws.store is None
        assert len(measure_images(ws)) == 6
    assert not (clean / ".lora-curator").exists()


def test_store_round_trips_measures_with_high_hash_bits(clean: Path) -> None:
    with Workspace.open(clean) as ws:
        assert ws.store is not None
        rows = [
            ("a.png", 1, 10, 20, b"x", 1, 2, 0.5, (1 << 64) - 1, ""),
            ("b.png", 1, 11, 21, b"y", 3, 4, 1.5, 1 << 63, "cannot decode: x"),
        ]
        ws.store.save_measures(rows)
        assert ws.store.measures() == {r[0]: r for r in rows}


def test_blur_reference_is_the_median_even_in_a_small_dataset(make_dataset) -> None:
    """Two images: the softer one is found only when under blur_ratio of their median."""
    root = make_dataset(
        {"a.png": png(1), "a.txt": "x", "b.png": blurred(2), "b.txt": "x"}, name="two"
    )
    with Workspace.open(root, read_only=True) as ws:
        measures = measure_images(ws)
        found = by_kind(run_checks(ws, measures))
    median = (measures["a.png"].sharpness + measures["b.png"].sharpness) / 2
    assert measures["b.png"].sharpness < CHECK_DEFAULTS["blur_ratio"] * median
    assert found["untagged-blur"][0].images == ("b.png",)
    one = make_dataset({"b.png": blurred(2), "b.txt": "x"}, name="one")
    with Workspace.open(one, read_only=True) as ws:
        assert "untagged-blur" not in by_kind(run_checks(ws, measure_images(ws)))
