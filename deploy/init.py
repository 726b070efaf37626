"""PID 1 of the QLM image: runs its arguments as a child, passes stop signals on, reaps orphans.

QLM should not be PID 1 itself: PID 1 ignores the signals it has no handler for, so `docker stop` would
wait for its time-out, and orphans re-parented to PID 1 would never be reaped. This does what `tini` (or `docker run --init`) does, with the
Python the image has. Exits with the child's status (128 + N when signal N ended it).
"""

import contextlib
import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def main() -> int:
    argv = sys.argv[1:]
    if not argv:
        print("usage: init.py COMMAND [ARGS...]", file=sys.stderr)
        return 64
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"init: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()  # any child: orphans re-parented to PID 1 are reaped here too
        except ChildProcessError:
            return 0
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
