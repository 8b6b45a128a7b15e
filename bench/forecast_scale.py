"""The forecast engine at scale: synthetic hourly means of N real stations, fed hour by hour.

The job's engine (:class:`moaa.streaming.forecast_engine.ForecastEngine`) in this process, on
a local Spark, without Kafka: first ``--backlog-days`` at once (the engine catches up in bulk
steps: the backlog's clear time), so that a model exists, then one final hour at a time
(``--live-hours``). Prints per size: seconds per final hour (median and p95), seconds per
training, forecasts per hour, and the backlog's clear time; each step's phases go to stderr.
The same measure through Kafka and the insert job, as the job runs: ``forecast_chain.py``.

    .venv/bin/python bench/forecast_scale.py --sizes 1000
    .venv/bin/python bench/forecast_scale.py --sizes 1000,4000,13836
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forecast_data import synthetic_means

from moaa.streaming.forecast_engine import EngineConfig, ForecastEngine
from moaa.streaming.forecast_store import INCOMING_SCHEMA
from moaa.streaming.spark import SparkSettings, build_session

FINAL_LAG = 3


def _rows(ids: list[str], names: list[str], hour, batch: int) -> list[tuple]:
    ok = ~np.isnan(hour.mean_c)
    out = []
    for i in np.flatnonzero(ok):
        out.append(
            (
                ids[i],
                names[i],
                float(hour.mean_c[i]),
                _f(hour.dew_point_mean_c[i]),
                _f(hour.sea_level_pressure_mean_hpa[i]),
                _f(hour.wind_speed_mean_ms[i]),
                batch,
                0,
                len(out),
                hour.hour,
            )
        )
    return out


def _f(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_mode(args: argparse.Namespace, stations: int) -> dict:
    ids, names, hours = synthetic_means(
        stations, args.year, args.backlog_days + args.live_hours // 24 + 2
    )
    spark = build_session(
        "moaa-bench-forecast-scale",
        SparkSettings(spark_ui_port=0, spark_driver_memory=args.driver_memory),
        {"spark.sql.shuffle.partitions": str(args.partitions)},
    )
    spark.sparkContext.setLogLevel("ERROR")
    config = EngineConfig(buckets=2 * args.partitions, min_history_days=args.min_history_days)
    trainings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="moaa-bench-forecast-scale-") as tmp:
        engine = ForecastEngine(
            spark, config, Path(tmp) / "f", None, lambda _m, s: trainings.append(s)
        )
        feed = iter(hours)
        backlog = []
        for _ in range(args.backlog_days * 24 + FINAL_LAG):
            backlog += _rows(ids, names, next(feed), 0)
        started = time.perf_counter()
        engine.ingest(spark.createDataFrame(backlog, INCOMING_SCHEMA))
        steps = list(engine.advance(engine.state.clock - FINAL_LAG))
        backlog_s = time.perf_counter() - started
        print(f"{stations}: backlog of {len(steps)} steps in {backlog_s:.1f} s", file=sys.stderr)
        per_hour, forecasts = [], []
        for batch in range(1, args.live_hours + 1):
            rows = _rows(ids, names, next(feed), batch)
            t0 = time.perf_counter()
            engine.ingest(spark.createDataFrame(rows, INCOMING_SCHEMA))
            for step in engine.advance(engine.state.clock - FINAL_LAG):
                forecasts.append(step.forecasts)
                print(f"  hour {step.last}: {step.seconds:.2f} s {step.phases}", file=sys.stderr)
            per_hour.append(time.perf_counter() - t0)
    spark.stop()
    return {
        "stations": stations,
        "per_hour_p50_s": round(statistics.median(per_hour), 2),
        "per_hour_p95_s": round(_pct(per_hour, 0.95), 2),
        "training_s": [round(t, 1) for t in trainings],
        "forecasts_per_hour": int(statistics.median(forecasts)) if forecasts else 0,
        "backlog_hours": args.backlog_days * 24,
        "backlog_s": round(backlog_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,4000,13836")
    parser.add_argument("--year", type=int, default=2020)
    parser.add_argument("--backlog-days", type=int, default=15)
    parser.add_argument("--min-history-days", type=float, default=14)
    parser.add_argument("--live-hours", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(engine_mode(args, size))
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
