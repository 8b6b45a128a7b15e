"""Forecast skill on a full-year walk-forward replay of the bundled sample.

Runs the forecast job's own engine (:class:`moaa.streaming.forecast_engine.ForecastEngine`:
same features, same Spark ML pipeline, same event-time retrain schedule, same scoring, the
same distributed steps) over the hourly means of ``data/sample/2013`` (Newark and JFK: temperature,
and the dew point, sea-level pressure and wind speed means the stats job also publishes),
computed by the independent DuckDB ground truth. Only the transport differs: no Kafka, the
means are fed in time order and an hour is final 3 h after it, as in the job. Prints the MAE
per lead for the model and the three baselines, and the skill against "same hour
yesterday".

    make bench-forecast       # or: .venv/bin/python bench/forecast_skill.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pyspark.sql import SparkSession

from moaa.common.hours import epoch_hour
from moaa.dataprep.groundtruth import hourly_covariates, hourly_temperature_stats
from moaa.streaming.forecast_engine import EngineConfig, ForecastEngine
from moaa.streaming.forecast_features import COVARIATES, PREDICTORS, skill_document
from moaa.streaming.forecast_store import INCOMING_SCHEMA
from moaa.streaming.spark import SparkSettings, build_session

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "2013"
FINAL_LAG = 3


def _heap_mib(spark: SparkSession) -> int:
    """The driver JVM's heap in use right after a full GC (what a long walk keeps)."""
    jvm = spark.sparkContext._jvm
    jvm.System.gc()
    runtime = jvm.Runtime.getRuntime()
    return int((runtime.totalMemory() - runtime.freeMemory()) >> 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--days", type=int, default=365, help="days replayed from 1 January")
    parser.add_argument("--window-days", type=int, default=60)
    parser.add_argument("--clim-days", type=int, default=30)
    parser.add_argument("--retrain-every-hours", type=int, default=24)
    parser.add_argument("--min-history-days", type=float, default=14)
    parser.add_argument("--step-hours", type=int, default=24, help="hours fed between advances")
    parser.add_argument(
        "--train-max-rows",
        type=int,
        default=2_000_000,
        help="training rows per window above which issues are sampled (lower it to measure "
        "what sampling does to skill; the sample's 2 stations never reach the default)",
    )
    parser.add_argument(
        "--without-covariates",
        action="store_true",
        help="feed the temperature means only (what dew point, pressure and wind add)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    stats = hourly_temperature_stats(args.sample)
    covariates = {} if args.without_covariates else hourly_covariates(args.sample)
    by_hour: dict[int, list[tuple]] = defaultdict(list)
    for (station, hour), (_lo, _hi, mean, _n) in stats.items():
        values = covariates.get((station, hour), (None,) * len(COVARIATES))
        by_hour[epoch_hour(hour)].append((station, mean, *values))
    first = min(by_hour)
    last = min(max(by_hour), first + args.days * 24 - 1)

    spark = build_session("moaa-bench-forecast", SparkSettings(spark_ui_port=0))
    spark.sparkContext.setLogLevel("ERROR")
    config = EngineConfig(
        window_days=args.window_days,
        clim_days=args.clim_days,
        retrain_every_hours=args.retrain_every_hours,
        min_history_days=args.min_history_days,
        train_max_rows=args.train_max_rows,
    )
    trainings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="moaa-bench-forecast-") as tmp:
        engine = ForecastEngine(
            spark, config, Path(tmp) / "forecast", None, lambda _m, s: trainings.append(s)
        )
        forecasts = 0
        for batch, start in enumerate(range(first, last + 1, args.step_hours)):
            rows = [
                (station, station, mean, *covs, batch, 0, i, hour)
                for hour in range(start, min(start + args.step_hours, last + 1))
                for i, (station, mean, *covs) in enumerate(by_hour.get(hour, []))
            ]
            if rows:
                engine.ingest(spark.createDataFrame(rows, INCOMING_SCHEMA))
            for step in engine.advance(min(start + args.step_hours - 1, last) - FINAL_LAG):
                forecasts += step.forecasts
            if (start - first) % (30 * 24) < args.step_hours:
                print(
                    f"… day {(start - first) // 24}, {len(trainings)} trainings, "
                    f"{(time.perf_counter() - started) / 60:.1f} min, "
                    f"driver heap {_heap_mib(spark)} MiB after a GC",
                    file=sys.stderr,
                    flush=True,
                )
        version = engine.model.version if engine.model else 0
        totals = engine.state.skill_all or {}
        doc = skill_document(
            "ALL", totals.get("sums"), totals.get("n"), engine.state.last_final or 0, version
        )
    spark.stop()
    elapsed = time.perf_counter() - started

    print(
        f"\nbundled sample {args.sample.name}: {len(stats)} station-hours, {args.days} days; "
        f"{'without' if args.without_covariates else 'with'} covariates; "
        f"window {args.window_days} d, retrain every {args.retrain_every_hours} h, "
        f"{len(trainings)} trainings (mean {sum(trainings) / max(len(trainings), 1):.1f} s), "
        f"{forecasts} forecasts, {elapsed / 60:.1f} min\n"
    )
    print("| lead (h) | n | model | last value | same hour yesterday | climatology | skill |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    skills = []
    worse = []
    for entry in [*doc["leads"], {"lead": "all", **doc["overall"]}]:
        mae = entry["mae"]
        cells = " | ".join(f"{mae[p]:.2f}" for p in PREDICTORS)
        print(f"| {entry['lead']} | {entry['n']} | {cells} | {entry['skill']:.3f} |")
        if entry["lead"] != "all":
            skills.append(entry["skill"])
            if mae["model"] > min(mae["last_value"], mae["same_hour_yesterday"]):
                worse.append(entry["lead"])
    mean_skill = sum(skills) / len(skills)
    print(
        f"\nskill averaged over leads 1–24: {mean_skill:.3f} (target ≥ 0.25); "
        f"at lead 24: {skills[-1]:.3f} (target ≥ 0.10); "
        f"leads worse than the better of last value and same hour yesterday: {worse or 'none'}"
    )


if __name__ == "__main__":
    main()
