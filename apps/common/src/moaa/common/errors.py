"""The project's own errors: one hierarchy, so that commands and components report them alike.

A :class:`MoaaError` carries a message written for the user (what went wrong, and the fix).
Library code raises it instead of ending the process (never ``SystemExit``); the ``moaa``
command prints ``error: <message>`` and exits 1 without a traceback, and a long-running
component (:func:`moaa.common.ops.run_component`) logs it as one ``CRITICAL`` line and exits 1,
so ``moaa local status`` and Kubernetes see a failed process with the reason.
"""

from __future__ import annotations

__all__ = ["MoaaError"]


class MoaaError(RuntimeError):
    """An error of moaa's own, with a message meant for the user."""

    #: The process's exit code when this error ends it.
    exit_code = 1
