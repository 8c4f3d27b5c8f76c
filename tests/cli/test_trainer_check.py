"""`check` says what the trainers will not see of a dataset, per trainer where it differs."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tui import cli


def image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "white").save(path, format="PNG")


def check_rows(capsys, root: Path, profile: Path) -> list[dict]:
    capsys.readouterr()
    cli.main(["check", str(root), "--profile", str(profile), "--json"])
    return json.loads(capsys.readouterr().out)


def check(capsys, root: Path, profile: Path) -> dict[str, dict]:
    """The findings by kind (the last of a kind)."""
    return {f["kind"]: f for f in check_rows(capsys, root, profile)}


def test_check_names_what_each_trainer_will_not_read(tmp_path, capsys, tree_snapshot):
    root = tmp_path / "ds"
    image(root / "10_kd/a.png")
    (root / "10_kd/a.txt").write_text("smile, (red eyes, glowing:0.8)\n", encoding="utf-8")
    image(root / "10_kd/b.Png")  # kohya matches extensions in one case only
    (root / "10_kd/b.txt").write_text("smile\n", encoding="utf-8")
    image(root / "10_kd/deeper/c.png")  # below a subset folder: kohya's folder mode skips it
    (root / "10_kd/deeper/c.txt").write_text("smile\n", encoding="utf-8")
    profile = tmp_path / "p.toml"
    profile.write_text(
        'schema = 1\ntrigger = "kaede, blue archive"\n[buckets]\ndrop = ["smile"]\n',
        encoding="utf-8",
    )
    before = tree_snapshot(root)
    found = check(capsys, root, profile)
    assert found["unread-image"]["images"] == ["10_kd/b.Png"]
    assert found["unread-image"]["trainer"] == "kohya"
    assert found["kohya-folder-mode"]["images"] == ["10_kd/deeper/c.png"]
    weighted = found["weighted-comma"]
    assert weighted["images"] == ["10_kd/a.png"]
    assert weighted["tag"] == "(red eyes, glowing:0.8)"
    assert "split" in weighted["message"]
    assert "keep_tokens" in found["trigger-comma"]["message"]
    # check writes only its cache in the state folder.
    after = tree_snapshot(root)
    assert {k: v for k, v in before.items() if not k.startswith(".lora-curator")} == {
        k: v for k, v in after.items() if not k.startswith(".lora-curator")
    }


def test_check_says_a_caption_extension_onetrainer_ignores(tmp_path, capsys):
    root = tmp_path / "ds"
    image(root / "a.png")
    (root / "a.caption").write_text("smile\n", encoding="utf-8")
    image(root / "e.png")
    (root / "e.caption").write_text("", encoding="utf-8")  # no trigger: it stays empty
    profile = tmp_path / "p.toml"
    profile.write_text('schema = 1\n[caption]\nextension = ".caption"\n', encoding="utf-8")
    rows = check_rows(capsys, root, profile)
    found = {f["kind"]: f for f in rows}
    ignored_by = {f["trainer"] for f in rows if f["kind"] == "caption-extension"}
    assert ignored_by == {"onetrainer", "simpletuner"}
    assert found["empty-caption-file"]["images"] == ["e.png"]
    # Not laid out for kohya's folder mode (no N_ folder): no advice about it.
    assert "kohya-folder-mode" not in found
