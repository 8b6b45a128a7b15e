"""Logging: one JSON object per line on stdout in pods, readable lines on a terminal.

Field names carry units (``duration_s``, ``size_b``). Components log with
``log.info("message", extra={...})``; the extras become JSON fields.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from moaa.common.settings import LogFormat

__all__ = ["configure_logging", "use_json_logs"]


def use_json_logs(fmt: LogFormat, stream: object = None) -> bool:
    """Whether to emit JSON: forced by ``fmt``, else when the stream is not a terminal."""
    if fmt != "auto":
        return fmt == "json"
    stream = stream if stream is not None else sys.stderr
    return not getattr(stream, "isatty", lambda: False)()


def configure_logging(
    level: str = "INFO", fmt: LogFormat = "auto", component: str = "moaa"
) -> None:
    """Configure the root logger once for a process.

    JSON lines go to stdout, unbuffered (12-factor logs). On a terminal, rich renders
    the same records for humans on stderr, leaving stdout to command output.
    """
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    handler: logging.Handler
    if use_json_logs(fmt):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"component": component},
                timestamp=False,
            )
        )
    else:
        from rich.logging import RichHandler  # noqa: PLC0415 - only needed on a terminal

        handler = RichHandler(show_path=False, rich_tracebacks=True, markup=False)
    root.addHandler(handler)
    for noisy in ("py4j", "urllib3", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
