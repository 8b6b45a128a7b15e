"""Progress for long runs: a rich bar on a terminal, periodic JSON log lines elsewhere.

Inside a pod there is no terminal, so instead of a bar the same numbers (done, total,
rate, ETA) go to the log every ``log_every_s`` seconds as one structured line.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressReporter"]


class ProgressReporter:
    """Report progress of one job of ``total`` units.

    :param description: what is being done ("downloading", "replaying hours").
    :param total: units to do, or ``None`` when unknown.
    :param unit: name of a unit, used in log lines (``files``, ``hours``).
    :param logger: where log lines go when there is no terminal.
    :param log_every_s: seconds between log lines.
    :param tty: force the bar on or off (default: whether stderr is a terminal).
    """

    def __init__(
        self,
        description: str,
        total: float | None,
        unit: str,
        logger: logging.Logger,
        log_every_s: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.log = logger
        self.log_every_s = log_every_s
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.done = 0.0
        self.fields: dict[str, Any] = {}
        self._started = time.monotonic()
        self._last_log = self._started
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ProgressReporter:
        if self.tty:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, extra="")
        return self

    def advance(self, amount: float = 1, **fields: Any) -> None:
        """Count ``amount`` more units done; ``fields`` are shown and logged with them."""
        self.done += amount
        self.fields.update(fields)
        if self._progress is not None:
            extra = " ".join(f"{k}={v}" for k, v in self.fields.items())
            self._progress.update(self._task, advance=amount, extra=extra)
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.log.info("%s: progress", self.description, extra=self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The numbers of a progress line: done, total, rate, ETA and extra fields."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if self.total and rate > 0 else None
        return {
            f"{self.unit}_done": self.done,
            f"{self.unit}_total": self.total,
            f"{self.unit}_per_s": round(rate, 3),
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if eta is None else round(eta, 1),
            **self.fields,
        }

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
