"""A Ctrl-C that third-party code cannot swallow.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be. Code that
catches everything there (a bare ``except:``, in a library we call) loses it, and a long run
then trains on: ``tests/test_bad_inputs.py``'s Ctrl-C at the instant training starts saw that
about once in ten runs, the main thread afterwards polling the device as if nothing had
happened. :func:`install` (the CLI's) also *records* the signal, and the driver's wait loop
raises a recorded one (:func:`check`), so the run stops within one poll.
"""

from __future__ import annotations

import signal

__all__ = ["install", "check"]

_pending = False


def _on_sigint(signum, frame):
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Record SIGINT as well as raising it; only over Python's own handler, from the main thread."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: leave signals alone
        pass


def check() -> None:
    """Raise ``KeyboardInterrupt`` once for a SIGINT that was recorded and not acted on."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
