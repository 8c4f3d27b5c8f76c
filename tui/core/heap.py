"""The process's memory around large loads: the collector paused, freed memory given back.

A million images make millions of long-lived objects in one go, and the passes that make
them (the reopen record, posting lists, the query index) free hundreds of megabytes of
short-lived ones once they are done. Two things are done about it here, for the workspace
and the app alike: the cyclic collector is paused while a load runs (its full passes over
the new objects cost more than a second of a 1M reopen), and the C allocator is asked to
return the pages those passes freed (glibc keeps them otherwise: ~100 MB after a 1M
reopen, ~250 MB more after its query index is built).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_pauses = 0  # loads under way (`collections_paused`)
_pauses_lock = threading.Lock()
_collector_was_on = True


@contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. A load makes no garbage cycles worth
    collecting; the collector (as it was before) runs again once the last of the loads
    under way ends."""
    global _pauses, _collector_was_on
    with _pauses_lock:
        if _pauses == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_on:
                gc.enable()


def _find_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None (another C library, no ctypes): then nothing is
    given back early, which costs memory, never correctness."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_trim: Callable[[int], int] | bool | None = False  # False: not looked up yet


def give_back_free_memory() -> None:
    """Return the pages the allocator holds free to the system (a few ms at a million
    images; ctypes lets other threads run meanwhile)."""
    global _trim
    if _trim is False:
        _trim = _find_trim()
    if callable(_trim):
        _trim(0)
