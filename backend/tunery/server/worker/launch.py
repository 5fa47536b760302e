"""``python -m tunery.server.worker.launch PARENT_PID -- COMMAND...``: exec COMMAND so that it gets SIGTERM
when the worker process that started it dies (Linux PR_SET_PDEATHSIG; kept across exec).

A killed worker thus never leaves its engine running: the engine checkpoints and exits on that SIGTERM.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: int) -> bool:
    """True when set (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m tunery.server.worker.launch PARENT_PID -- COMMAND...\n")
        return 2
    parent, command = int(argv[0]), argv[2:]
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        return 1
    os.execv(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
