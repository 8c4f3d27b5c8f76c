"""Scanning a dataset folder: images, their captions, and what does not pair up."""

from __future__ import annotations

import os

import pytest

from tui.core.dataset import DatasetError, check_root, scan_dataset


def images_of(result) -> list[str]:
    return [e.image for e in result.images]


def problem_paths(result) -> list[str]:
    return [path for path, _ in result.problems]


def test_recursive_kohya_layout(make_dataset):
    root = make_dataset(
        {
            "10_kaede/a.png": None,
            "10_kaede/a.txt": "smile",
            "5_kaede casual/sub/b.jpg": None,
            "5_kaede casual/sub/b.txt": "blush",
            "c.webp": None,
            "c.txt": "solo",
        }
    )
    result = scan_dataset(root)
    assert images_of(result) == ["10_kaede/a.png", "5_kaede casual/sub/b.jpg", "c.webp"]
    assert [e.caption for e in result.images] == [
        "10_kaede/a.txt",
        "5_kaede casual/sub/b.txt",
        "c.txt",
    ]
    assert all(e.caption_exists for e in result.images)
    assert result.problems == []
    assert result.root == root.resolve()


def test_dot_folders_are_skipped(make_dataset):
    root = make_dataset(
        {
            "a.png": None,
            "a.txt": "smile",
            ".hidden/b.png": None,
            ".hidden/b.txt": "blush",
            ".lora-curator/c.png": None,
            "sub/.cache/d.png": None,
        }
    )
    result = scan_dataset(root)
    assert images_of(result) == ["a.png"]
    assert result.orphan_captions == []


def test_image_extensions_case_insensitive(make_dataset):
    names = ["a.PNG", "b.JpG", "c.jpeg", "d.WEBP", "e.bmp", "f.gif", "g.tif", "h.TIFF"]
    others = ["notes.md", "i.psd", "j.png.bak", "README"]
    root = make_dataset({**{n: None for n in names}, **{n: "x" for n in others}})
    assert images_of(scan_dataset(root)) == sorted(names)


def test_image_without_caption_is_reported(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile", "b.png": None})
    result = scan_dataset(root)
    by_image = {e.image: e for e in result.images}
    assert by_image["b.png"].caption == "b.txt"
    assert by_image["b.png"].caption_exists is False
    assert by_image["a.png"].caption_exists is True
    assert problem_paths(result) == ["b.png"]
    assert "no caption" in result.problems[0][1]


def test_caption_without_image_is_reported(make_dataset):
    root = make_dataset({"a.png": None, "a.txt": "smile", "sub/lost.txt": "blush"})
    result = scan_dataset(root)
    assert images_of(result) == ["a.png"]
    assert result.orphan_captions == ["sub/lost.txt"]
    assert problem_paths(result) == ["sub/lost.txt"]


def test_stem_collision_is_reported(make_dataset):
    root = make_dataset({"a.png": None, "a.jpg": None, "a.txt": "smile", "b.png": None})
    result = scan_dataset(root)
    assert result.collisions == {"a.txt": ["a.jpg", "a.png"]}
    # Both images are listed; they share the caption file.
    assert [(e.image, e.caption) for e in result.images if e.caption == "a.txt"] == [
        ("a.jpg", "a.txt"),
        ("a.png", "a.txt"),
    ]
    collision = [msg for path, msg in result.problems if path == "a.txt"]
    assert len(collision) == 1
    assert "a.jpg" in collision[0]
    assert "a.png" in collision[0]


def test_caption_extension_is_configurable_and_exact(make_dataset):
    root = make_dataset({"a.png": None, "a.caption": "smile", "a.txt": "blush", "b.png": None})
    result = scan_dataset(root, ".caption")
    assert [(e.image, e.caption, e.caption_exists) for e in result.images] == [
        ("a.png", "a.caption", True),
        ("b.png", "b.caption", False),
    ]
    # Trainers pair by the exact extension: a `.TXT` file is not a `.txt` caption.
    root2 = make_dataset({"c.png": None, "c.TXT": "smile"}, name="ds2")
    assert scan_dataset(root2).images[0].caption_exists is False


def test_symlink_loop_is_reported_and_scan_finishes(make_dataset):
    root = make_dataset({"sub/a.png": None, "sub/a.txt": "smile", "b.png": None})
    os.symlink("..", root / "sub" / "up")
    os.symlink(".", root / "self")
    result = scan_dataset(root)
    assert images_of(result) == ["b.png", "sub/a.png"]
    loops = [path for path, msg in result.problems if "loop" in msg]
    assert sorted(loops) == ["self", "sub/up"]


def test_broken_image_link_is_reported(make_dataset):
    root = make_dataset({"a.png": None})
    os.symlink("missing.png", root / "b.png")
    result = scan_dataset(root)
    assert images_of(result) == ["a.png"]
    assert "b.png" in problem_paths(result)


def test_progress_reports_the_final_count(make_dataset):
    root = make_dataset({f"{i:03}.png": None for i in range(7)})
    seen: list[int] = []
    scan_dataset(root, progress=seen.append)
    assert seen[-1] == 7


def test_missing_root_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        check_root(tmp_path / "nope")


def test_file_root_is_a_dataset_error(tmp_path):
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder"):
        scan_dataset(tmp_path / "f.png")


def test_sample_dataset_scan(sample_copy):
    result = scan_dataset(sample_copy)
    assert len(result.images) == 12
    assert all(e.image.startswith("10_kaede/kaede_") for e in result.images)
    # kaede_09.png has no caption; the profiles folder holds no image.
    assert [e.image for e in result.images if not e.caption_exists] == ["10_kaede/kaede_09.png"]
    assert result.orphan_captions == []
    assert result.collisions == {}
