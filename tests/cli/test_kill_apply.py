"""Saves are crash-consistent: a real `apply`, killed at random moments, leaves every caption
file with exactly its old or its new bytes, and the next run just works."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tui.core.profile import save_profile
from tui.core.strategy import Strategy
from tui.core.writer import TEMP_PREFIX

IMAGES = 500
TRIALS = 20
VOCABULARY = [f"tag {i:03d}" for i in range(300)]


def make_big_dataset(root: Path) -> None:
    rng = random.Random(7)
    folder = root / "10_kaede"
    folder.mkdir(parents=True)
    for i in range(IMAGES):
        (folder / f"img_{i:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        tags = rng.sample(VOCABULARY, 30)
        (folder / f"img_{i:04d}.txt").write_text(", ".join(tags) + "\n", encoding="utf-8")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui", *args]


def caption_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "10_kaede").glob("*.txt"))}


def planned(root: Path, profile: Path) -> dict[str, bytes]:
    """What a finished apply would write, from `apply --dry-run` (which writes nothing)."""
    out = subprocess.run(
        cli("apply", str(root), "--profile", str(profile), "--dry-run"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {}
    for line in out.splitlines():
        image, caption = line.split("\t", 1)
        result[Path(image).with_suffix(".txt").name] = (caption + "\n").encode("utf-8")
    return result


def test_killed_apply_leaves_old_or_new_bytes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_big_dataset(root)
    half = len(VOCABULARY) // 2
    profiles = []
    for name, trigger, pattern in (("a", "kaede", "absorb"), ("b", "kaede2", "traits-only")):
        path = tmp_path / f"{name}.toml"
        buckets = {t: "trait" for t in VOCABULARY[:half]}
        buckets.update({t: "context" for t in VOCABULARY[half:]})
        save_profile(Strategy(name=name, trigger=trigger, pattern=pattern, buckets=buckets), path)
        profiles.append(path)
    expected = {str(p): planned(root, p) for p in profiles}

    # How long a whole apply takes here: kills are spread over that window. The first apply
    # also builds the state (a first open), so the window is timed on the applies after it,
    # each of which rewrites every caption, as the trials do. It ends on profile b, so the
    # first trial (profile a) has everything to write.
    subprocess.run(cli("apply", str(root), "--profile", str(profiles[1])), check=True)
    timings = []
    for profile in (profiles[0], profiles[1]):
        start = time.perf_counter()
        subprocess.run(
            cli("apply", str(root), "--profile", str(profile)), capture_output=True, check=True
        )
        timings.append(time.perf_counter() - start)
    window = min(timings)

    rng = random.Random(20261126)
    checked = lost = interrupted = mid_write = 0
    for trial in range(TRIALS):
        profile = profiles[trial % 2]
        old = caption_bytes(root)
        new = expected[str(profile)]
        proc = subprocess.Popen(
            cli("apply", str(root), "--profile", str(profile)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.3, 1.0) * window)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        interrupted += proc.returncode == -signal.SIGKILL
        if proc.returncode == 0:
            # The apply finished before the kill: the machine is faster now than when the
            # window was timed (a load on it has gone). Aim the later kills earlier.
            window *= 0.8
        after = caption_bytes(root)
        for name, data in after.items():
            checked += 1
            if data not in (old[name], new[name]):
                lost += 1
        changed = sum(after[n] != old[n] for n in after)
        mid_write += 0 < changed < sum(old[n] != new[n] for n in after)
        assert proc.returncode in (0, -signal.SIGKILL), err

    assert checked == TRIALS * IMAGES
    assert lost == 0
    assert interrupted >= TRIALS // 2, "kills should mostly land while apply runs"

    # The next run finishes what was interrupted, without "changed on disk" false alarms,
    # and leaves no temp file behind.
    final = subprocess.run(
        cli("apply", str(root), "--profile", str(profiles[0])), capture_output=True, text=True
    )
    assert final.returncode == 0, final.stderr
    assert caption_bytes(root) == expected[str(profiles[0])]
    assert not [n for n in os.listdir(root / "10_kaede") if n.startswith(TEMP_PREFIX)]
    print(
        f"\nkill-during-apply: {TRIALS} trials ({interrupted} killed, {mid_write} in the middle "
        f"of writing), {checked} files checked, {lost} lost"
    )
