"""What the trainers will not see: findings from plain inputs."""

from __future__ import annotations

from tui.core.trainers import (
    find_unseen,
    kohya_folder_mode,
    recursive_overlap,
    rules_for,
    split_weighted_tag,
    trigger_parts,
    unread_images,
)


def by_trainer(findings, kind):
    return {f.trainer: f for f in findings if f.kind == kind}


def test_images_kohya_never_reads():
    images = ["1_k/a.png", "1_k/b.PNG", "1_k/c.Png", "1_k/d.gif", "1_k/e.tif", "1_k/f.JPG"]
    found = by_trainer(unread_images(images), "unread-image")
    assert found["all"].images == ("1_k/d.gif",)  # no trainer reads a gif
    assert found["all"].severity == "problem"
    assert found["kohya"].images == ("1_k/c.Png", "1_k/e.tif")  # exact case; no tif
    assert "'.Png'" in found["kohya"].message
    assert found["ai-toolkit"].images == ("1_k/e.tif",)
    assert "onetrainer" not in found  # reads .tif and any case


def test_trainer_rules_read_extensions_as_their_loaders_do():
    kohya, onetrainer = rules_for("kohya"), rules_for("onetrainer")
    assert kohya.reads_image("x/a.JPEG") and not kohya.reads_image("x/a.Jpeg")
    assert onetrainer.reads_image("x/a.Jpeg") and onetrainer.reads_image("x/a.TIFF")
    assert not kohya.reads_image("x/.png")  # a dot-file has no extension
    assert not rules_for("onetrainer").reads_caption_extension(".caption")
    assert rules_for("kohya").reads_caption_extension(".caption")


def test_kohya_folder_mode_reads_only_images_directly_in_repeat_folders():
    images = ["10_k/a.png", "10_k/sub/b.png", "root.png", "kaede/c.png", "0_k/d.png"]
    finding = kohya_folder_mode(images)
    assert finding is not None and finding.trainer == "kohya" and finding.severity == "advice"
    assert finding.images == ("0_k/d.png", "10_k/sub/b.png", "kaede/c.png", "root.png")
    assert kohya_folder_mode(["10_k/a.png", "5_k/b.png"]) is None


def test_ai_toolkit_reads_a_nested_image_folder_twice():
    finding = recursive_overlap(["10_k/a.png", "10_k/sub/b.png", "5_c/c.png"])
    assert finding is not None and finding.trainer == "ai-toolkit"
    assert finding.images == ("10_k/sub/b.png",)
    assert recursive_overlap(["10_k/a.png", "5_c/c.png"]) is None
    assert recursive_overlap(["a.png", "5_c/c.png"]).images == ("5_c/c.png",)


def test_caption_extension_onetrainer_and_simpletuner_ignore():
    images = ["1_k/a.png"]
    found = by_trainer(find_unseen(images, ".caption", {}, []), "caption-extension")
    assert set(found) == {"onetrainer", "simpletuner"}
    assert found["onetrainer"].images == ("1_k/a.png",)
    assert ".txt" in found["onetrainer"].message
    assert not by_trainer(find_unseen(images, ".txt", {}, []), "caption-extension")


def test_weighted_tag_with_a_comma_offers_its_split():
    captions = {
        "1_k/a.png": "kaede, (red eyes, glowing:0.8), smile\n",
        "1_k/b.png": "kaede, (red eyes, glowing:0.8)\n",
        "1_k/c.png": "kaede, (red eyes:1.2), smile\n",  # no comma inside: fine
    }
    (finding,) = [
        f for f in find_unseen(list(captions), ".txt", captions) if f.kind == "weighted-comma"
    ]
    assert finding.tag == "(red eyes, glowing:0.8)"
    assert finding.replacement == ("(red eyes:0.8)", "(glowing:0.8)")
    assert finding.images == ("1_k/a.png", "1_k/b.png")
    assert finding.severity == "problem" and finding.trainer == "all"
    assert "(red eyes:0.8), (glowing:0.8)" in finding.message


def test_split_weighted_tag():
    assert split_weighted_tag("(a, b , c:1.1)") == ("(a:1.1)", "(b:1.1)", "(c:1.1)")
    assert split_weighted_tag("(a:1.1)") == ()
    assert split_weighted_tag("red eyes") == ()


def test_trigger_with_a_comma():
    findings = find_unseen(["1_k/a.png"], ".txt", {}, ["kaede, blue archive", "school"])
    (finding,) = [f for f in findings if f.kind == "trigger-comma"]
    assert finding.tag == "kaede, blue archive"
    assert "2 tags" in finding.message
    assert trigger_parts(["kaede, blue archive", "school"]) == 3


def test_caption_that_stays_empty_on_disk():
    captions = {"1_k/a.png": "", "1_k/b.png": "", "1_k/c.png": "kaede, smile\n"}
    # b has no caption file at all (kohya then uses class tokens): not this finding.
    findings = find_unseen(list(captions), ".txt", captions, [], on_disk_empty=["1_k/a.png"])
    (finding,) = [f for f in findings if f.kind == "empty-caption-file"]
    assert finding.images == ("1_k/a.png",)
    assert finding.trainer == "kohya" and finding.severity == "problem"


def test_a_clean_dataset_has_nothing_unseen():
    captions = {"10_k/a.png": "kaede, smile\n", "10_k/b.jpg": "kaede, sitting\n"}
    assert find_unseen(list(captions), ".txt", captions, ["kaede"]) == []
