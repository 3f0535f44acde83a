"""The one exception type for mistakes a user can make: the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input, files or options, explained in one line."""


def terminate_as_interrupt() -> None:
    """Make SIGTERM (``timeout``, ``kill``, ``docker stop``) end the process like Ctrl-C, so
    temporary files are removed on the way out. Only from the main thread."""
    import signal
    import threading

    def _raise(signum, frame) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _raise)
