"""lowbit.interrupts: a Ctrl-C that a library's catch-all swallows still stops a run."""

import os
import signal
import time

import pytest

from lowbit import interrupts


def _swallowed_sigint():
    """SIGINT to ourselves inside a bare ``except:``, as a library's catch-all would meet it."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, in the main thread
    except:  # noqa: E722 -- the point: everything is caught
        pass


def test_a_swallowed_ctrl_c_is_raised_again_once():
    old = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _swallowed_sigint()
        interrupts.check()  # Python's own handler: the interrupt is simply lost (the bug)
        interrupts.install()
        _swallowed_sigint()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()  # once: the CLI then exits with 130
    finally:
        signal.signal(signal.SIGINT, old)
