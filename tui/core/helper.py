"""A second process that does part of an open's work on the other core.

Two jobs use one: a reopen's stats (`tui.core.prestat`) and a first open's reading
(`tui.core.preread`). Either way the child only saves time: it is given its input through an
unnamed in-memory file and a descriptor of the dataset's folder, writes its answers on a
pipe, and the open checks everything it is told and does the work itself wherever the
child failed, stalled, ended early or said something it did not expect.

The child runs this file with `-I -S` (isolated, no site packages): it imports the standard
library and the job's own modules of this package (which import nothing else), so it
starts in milliseconds.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# No answer for this long (a stopped child, a hung mount): the open does the rest itself.
STALL_SECONDS = 30.0


class HelperProcess:
    """A running child; `close` always (it kills and reaps it)."""

    def __init__(self, proc: Any, folder: tuple[int, int]) -> None:
        self._proc = proc
        self._folder = folder  # the device and inode of the folder it works in
        self._fd: int | None = proc.stdout.fileno()
        self._poll: Any = None

    @classmethod
    def spawn(cls, job: str, root: str, payload: bytes, args: list[str]) -> Any:
        """The child running `job` on the dataset at `root` with `payload` as its input and
        `args` after its folder's and input's descriptors; None when it cannot be started
        here (no folder descriptors, no interpreter to run)."""
        if os.name != "posix" or os.stat not in os.supports_dir_fd or not sys.executable:
            return None
        if getattr(sys, "frozen", False):  # the executable is the app, not an interpreter
            return None
        import subprocess
        import tempfile

        dir_fd = data_fd = -1
        try:
            dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            folder = os.fstat(dir_fd)
            if hasattr(os, "memfd_create"):
                data_fd = os.memfd_create(f"lora-curator-{job}")
            else:  # an unnamed temporary file (gone once both processes close it)
                with tempfile.TemporaryFile() as temp:
                    data_fd = os.dup(temp.fileno())
            view = memoryview(payload)
            while view:
                view = view[os.write(data_fd, view) :]
            os.lseek(data_fd, 0, os.SEEK_SET)
            # Names encoded as this process encodes them (`-I` ignores PYTHONUTF8).
            argv = [sys.executable, "-I", "-S", "-X", f"utf8={sys.flags.utf8_mode}"]
            argv += [os.path.abspath(__file__), job, str(dir_fd), str(data_fd), *args]
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(dir_fd, data_fd),
            )
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        finally:
            for fd in (dir_fd, data_fd):
                if fd >= 0:
                    os.close(fd)
        return cls(proc, (folder.st_dev, folder.st_ino))

    def works_in(self, folder: os.stat_result) -> bool:
        """Whether the child works in this folder (the caller's view of the dataset's root);
        when not (the folder was replaced since), it is stopped: its answers are not of
        these files."""
        if (folder.st_dev, folder.st_ino) == self._folder:
            return True
        self.close()
        return False

    def _read(self, timeout: float | None = None) -> bytes:
        """What the child wrote next, waiting up to `timeout` seconds (the stall limit when
        None; 0: only what is there). b"" when nothing came: the child is stopped and
        nothing more is read, unless only a zero wait found nothing yet."""
        import select

        fd = self._fd
        if fd is None:
            return b""
        wait = STALL_SECONDS if timeout is None else timeout
        try:
            if self._poll is None:
                self._poll = select.poll()  # any descriptor number (select: below 1024)
                self._poll.register(fd, select.POLLIN)
            ready = self._poll.poll(wait * 1000)
            if not ready and wait == 0:
                return b""
            data = os.read(fd, 1 << 20) if ready else b""
        except (OSError, ValueError, AttributeError):
            data = b""
        if not data:  # ended or stalled
            self.close()
        return data

    def close(self) -> None:
        """Stop the child (if it still runs) and reap it."""
        import subprocess
        from contextlib import suppress

        self._fd = None
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        with suppress(subprocess.TimeoutExpired):  # killed: at once, unless stuck in the
            proc.wait(timeout=5)  # kernel (a hung mount): then the open goes on without
        proc.stdout.close()


def _main(argv: list[str]) -> int:
    # The package's folder: its job modules import the standard library only.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    job, dir_fd, data_fd, args = argv[0], int(argv[1]), int(argv[2]), argv[3:]
    if job == "prestat":
        from tui.core.prestat import child
    elif job == "preread":
        from tui.core.preread import child
    else:
        return 2
    with os.fdopen(data_fd, "rb") as data:
        payload = data.read()
    return child(dir_fd, payload, args)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
