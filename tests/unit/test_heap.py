"""Memory after a large load: the pages its passes freed go back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tui.core import heap

ROOT = Path(__file__).resolve().parents[2]

FRAGMENTED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from tui.core.heap import give_back_free_memory

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024

    # 120 MB of mid-sized objects (the C allocator's heap, not Python's arenas), then one
    # allocated after them: freeing the first leaves a hole the heap's top cannot shrink over.
    blocks = [bytes(3000) + bytes([i % 256]) for i in range(40000)]
    after = bytes(5000) + b"x"
    del blocks
    freed = rss_mb()
    give_back_free_memory()
    print(freed, rss_mb())
    """
)


@pytest.mark.skipif(
    heap._find_trim() is None or not Path("/proc/self/status").exists(),
    reason="glibc's malloc_trim and /proc are Linux's (elsewhere nothing is given back early)",
)
def test_freed_pages_are_given_back_after_a_load() -> None:
    run = subprocess.run(
        [sys.executable, "-c", FRAGMENTED, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    freed, given_back = map(int, run.stdout.split())
    assert freed - given_back >= 80, (freed, given_back)  # the hole, back to the system
