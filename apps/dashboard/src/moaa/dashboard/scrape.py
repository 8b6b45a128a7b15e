"""The pipeline page's sources: the components' own metrics endpoints, and Kafka's offsets.

Pure helpers parse Prometheus text and pick each stage's figures; :class:`PipelineWatch`
keeps the last two scrapes (records/s is the counter's rise between them) and the latest
errors: a scrape that fails, or a rise of an error counter (nacks, failed deliveries,
dead letters, invalid frames or messages). A target that does not answer is shown as down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "PipelineWatch",
    "Sample",
    "error_series",
    "parse_prometheus",
    "records_total",
    "spark_records_per_s",
]

log = logging.getLogger(__name__)

#: A sample's identity: (metric name, sorted (label, value) pairs).
Sample = tuple[str, tuple[tuple[str, str], ...]]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

#: The counter of records through each stage (summed over the series that match).
RECORD_COUNTERS: dict[str, tuple[str, dict[str, str]]] = {
    "feeder": ("weather_feeder_records_sent_total", {}),
    "producer": ("weather_producer_records_total", {"result": "delivered"}),
    "insert": ("weather_insert_messages_total", {}),
}
_ERROR_WORDS = ("nack", "dlq", "invalid", "fail", "error", "reconnect", "dropped")
_ERROR_VALUES = {"failed", "nack", "invalid", "bad_length", "peer_closed_mid_frame", "no_hello"}
_NOT_COUNTERS = ("_bucket", "_sum", "_count", "_created")


def parse_prometheus(text: str) -> dict[Sample, float]:
    """Prometheus text exposition → ``{(name, labels): value}``; odd lines are skipped.

    >>> parse_prometheus('a_total{x="1"} 3.0\\n# HELP b\\nb 2')
    {('a_total', (('x', '1'),)): 3.0, ('b', ()): 2.0}
    """
    samples: dict[Sample, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, _, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        pairs = tuple(sorted(_LABEL.findall(labels or "")))
        samples[(name, pairs)] = number
    return samples


def _sum(samples: dict[Sample, float], name: str, labels: dict[str, str] | None = None) -> float:
    want = set((labels or {}).items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def _has(samples: dict[Sample, float], name: str) -> bool:
    return any(n == name for n, _ in samples)


def records_total(component: str, samples: dict[Sample, float]) -> float | None:
    """Records through ``component`` so far (its record counter), or None if it has none."""
    if component in RECORD_COUNTERS:
        name, labels = RECORD_COUNTERS[component]
        return _sum(samples, name, labels) if _has(samples, name) else None
    # Any other component of ours: its own records counter, by naming convention.
    names = {n for n, _ in samples if n.startswith(f"weather_{component}_")}
    counters = sorted(n for n in names if n.endswith(("records_total", "messages_total")))
    return _sum(samples, counters[0]) if counters else None


def spark_records_per_s(samples: dict[Sample, float]) -> float | None:
    """A Spark driver's input rate: the busiest streaming query's ``inputRate-total``."""
    rates = [
        v for (n, _), v in samples.items() if "_spark_streaming_" in n and "inputRate_total" in n
    ]
    return max(rates) if rates else None


def error_series(samples: dict[Sample, float]) -> dict[Sample, float]:
    """The counters that count errors (by name or by a ``result``/``reason`` label)."""
    found = {}
    for (name, labels), value in samples.items():
        if not name.startswith("weather_") or name.endswith(_NOT_COUNTERS):
            continue
        if not name.endswith("_total"):
            continue
        if any(w in name for w in _ERROR_WORDS) or any(v in _ERROR_VALUES for _, v in labels):
            found[(name, labels)] = value
    return found


def _describe(sample: Sample) -> str:
    name, labels = sample
    return name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")


@dataclass
class _Target:
    name: str
    url: str
    up: bool = False
    error: str | None = None
    scraped_at: float | None = None
    samples: dict[Sample, float] = field(default_factory=dict)
    records: float | None = None
    rate: float | None = None


class PipelineWatch:
    """Scrape every target and Kafka on a period; keep what the pipeline page shows.

    :param targets: ``{component: metrics URL}``.
    :param lag: a blocking function returning the consumer lag dict (run in a thread).
    :param on_scrape: called with ``(component, up)`` after each scrape (metrics).
    """

    MAX_ERRORS = 20

    def __init__(
        self,
        targets: dict[str, str],
        timeout_s: float,
        lag: Callable[[], dict[str, Any]] | None = None,
        on_scrape: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.targets = {name: _Target(name, url) for name, url in targets.items()}
        self.timeout_s = timeout_s
        self._lag_fn = lag
        self._on_scrape = on_scrape or (lambda _n, _u: None)
        self.lag: dict[str, Any] | None = None
        self.errors: deque[dict[str, Any]] = deque(maxlen=self.MAX_ERRORS)

    def _error(self, component: str, message: str, at: float) -> None:
        self.errors.appendleft(
            {"time": datetime.fromtimestamp(at, UTC), "component": component, "message": message}
        )

    def update(self, name: str, text: str | None, error: str | None, at: float) -> None:
        """Fold one scrape (its body, or the error) into the target's state. Pure of I/O."""
        target = self.targets[name]
        if text is None:
            if target.up or target.scraped_at is None:
                self._error(name, f"down: {error}", at)
            target.up, target.error, target.scraped_at = False, error, at
            target.rate = None
            return
        samples = parse_prometheus(text)
        old_errors = error_series(target.samples) if target.up else {}
        for sample, value in error_series(samples).items():
            rise = value - old_errors.get(sample, 0.0)
            if rise > 0:
                self._error(name, f"{_describe(sample)} +{rise:g} (now {value:g})", at)
        records = records_total(name, samples)
        rate = spark_records_per_s(samples)
        if rate is None and records is not None and target.up and target.records is not None:
            elapsed = at - (target.scraped_at or at)
            if elapsed > 0:
                rate = max(records - target.records, 0.0) / elapsed
        target.up, target.error, target.scraped_at = True, None, at
        target.samples, target.records, target.rate = samples, records, rate

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        async def one(target: _Target) -> None:
            try:
                resp = await client.get(target.url, timeout=self.timeout_s)
                resp.raise_for_status()
                text, error = resp.text, None
            except httpx.HTTPError as exc:
                text, error = None, f"{type(exc).__name__}: {exc}"[:200]
            self.update(target.name, text, error, time.time())
            self._on_scrape(target.name, text is not None)

        await asyncio.gather(*(one(t) for t in self.targets.values()))
        if self._lag_fn is not None:
            try:
                self.lag = await asyncio.to_thread(self._lag_fn)
            except Exception as exc:  # any client error: show it, never crash the page
                self.lag = {"group": "?", "total": None, "partitions": [], "error": str(exc)[:200]}

    async def run(self, interval_s: float) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    await self.scrape_once(client)
                except Exception:  # keep scraping whatever happens
                    log.exception("pipeline scrape failed")
                await asyncio.sleep(interval_s)

    def snapshot(self) -> dict[str, Any]:
        """What ``/api/pipeline`` returns (see :class:`moaa.dashboard.models.Pipeline`)."""
        feeder = self.targets.get("feeder")
        replay = None
        if feeder and feeder.up:
            ts = _sum(feeder.samples, "weather_feeder_replay_hour_timestamp_seconds")
            replay = datetime.fromtimestamp(ts, UTC) if ts > 0 else None
        producer = self.targets.get("producer")
        dlq = None
        if producer and producer.up:
            dlq = _sum(producer.samples, "weather_producer_dlq_records_total")
        forecast = self.targets.get("forecast")
        forecast_lag = None
        if forecast and forecast.up and _has(forecast.samples, "weather_forecast_lag_hours"):
            forecast_lag = _sum(forecast.samples, "weather_forecast_lag_hours")
        return {
            "replay_hour": replay,
            "forecast_lag_hours": forecast_lag,
            "components": [
                {
                    "name": t.name,
                    "url": t.url,
                    "up": t.up,
                    "error": t.error,
                    "scraped_at": datetime.fromtimestamp(t.scraped_at, UTC)
                    if t.scraped_at
                    else None,
                    "records_per_s": t.rate,
                    "records_total": t.records,
                }
                for t in self.targets.values()
            ],
            "lag": self.lag,
            "dlq_records": dlq,
            "errors": list(self.errors),
        }
