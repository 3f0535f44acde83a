"""The one exception type for mistakes a user can make: the CLI prints it as one line."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class UserError(Exception):
    """A problem with the user's input, files or options, explained in one line."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While in the block, SIGTERM (``timeout``, ``kill``, ``docker stop``) ends the process
    like Ctrl-C, so temporary files are removed on the way out. Only from the main thread;
    the previous handler is restored afterwards."""

    def _raise(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def one_line(text: object) -> str:
    """``text`` with its runs of white space, line breaks included, made single spaces."""
    return " ".join(str(text).split())


def failure_text(source: object, exc: BaseException) -> str:
    """One line for one item of a batch that failed: a user error as it is (it names the file),
    anything else with the item and the exception type (an internal problem, worth a report)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{source}: out of memory (try a smaller --tile)"
    detail = " ".join(str(exc).split()) or "no detail"
    return f"{source}: unexpected {type(exc).__name__}: {detail}"
