"""The forecast job at scale, through the real chain: Kafka in, the job, Kafka out, MongoDB.

For each size, on its own Kafka and FerretDB (free loopback ports): ``moaa forecast`` and
``moaa insert`` run as real processes; this script plays the stats job, publishing synthetic
hourly means of N real stations (:mod:`forecast_data`, clearly synthetic) to
``weather.hourly-stats`` as the stats job does (each hour a micro-batch: its means, then
its progress marks), and reads ``weather.forecasts`` back:

1. **warm-up**: ``--backlog-days`` at once (the job catches up in bulk steps and trains its
   first model once ``--min-history-days`` exist): the time until its last final hour's
   forecasts are out;
2. **burst**: 48 hours at once: the time until the last of them is forecast from (after it,
   every live hour verifies the issues of a day before: a live hour does all of its work);
3. **live**: one hour every ``--tick`` seconds. Hour ``h`` becomes final when hour ``h + 3``
   is published; its latency is the last of its forecasts' Kafka timestamps minus that
   moment. Prints the median and p95, forecasts per hour, the trainings' seconds and the
   live hours' steps (median and p95, from the job's JSON log);
4. peak resident memory of the job's JVM and of its Python processes (sampled every 0.5 s),
   and the check that MongoDB holds every forecast published (0 missing; the wait ends when
   the insert job has written nothing for 60 s, or after ``--mongo-wait`` seconds).

    .venv/bin/python bench/forecast_chain.py --sizes 1000
    make bench-scale-forecast      # 1,000, 4,000 and 13,836 stations
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pymongo
from chain import MOAA, ephemeral_settings, stop_all  # bench/chain.py
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from forecast_data import HourlyMeans, synthetic_means
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from moaa.common.hours import format_epoch_hour
from moaa.common.kafka import (
    TOPIC_FORECASTS,
    TOPIC_HOURLY_STATS,
    ensure_topics,
    publish_progress,
)
from moaa.localstack.services import LocalStack
from moaa.localstack.testing import free_ports
from moaa.streaming.forecast_store import LAYOUT

FINAL_LAG = 3
BURST = 48


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Forecasts(threading.Thread):
    """Reads ``weather.forecasts``: per issue hour, how many and the newest Kafka timestamp."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-forecast-chain",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([TOPIC_FORECASTS])
        self.count: dict[str, int] = defaultdict(int)
        self.last_ts: dict[str, float] = {}
        self.keys: set[str] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for msg in self.consumer.consume(10_000, timeout=0.2):
                if msg.error() or msg.key() is None:
                    continue
                key = msg.key().decode()
                issued = key.split("|", 1)[1]
                self.keys.add(key)
                self.count[issued] += 1
                ts = msg.timestamp()[1] / 1000
                self.last_ts[issued] = max(self.last_ts.get(issued, 0.0), ts)
        self.consumer.close()

    def wait_for(self, issued: str, timeout: float, job: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if job.poll() is not None:
                raise SystemExit(f"the forecast job exited with {job.returncode}: see its log")
            if self.count.get(issued):
                # the step's documents are written by one Spark job: give it a moment to finish
                n = self.count[issued]
                time.sleep(1.0)
                if self.count[issued] == n:
                    return True
            time.sleep(0.2)
        return False


class Memory(threading.Thread):
    """Peak RSS of the job's JVM and of its Python processes (the job and its UDF workers)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = {"jvm_mib": 0.0, "python_mib": 0.0}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                jvm = python = 0.0
                for p in procs:
                    try:
                        rss = p.memory_info().rss / 2**20
                        if "java" in p.name():
                            jvm += rss
                        else:
                            python += rss
                    except psutil.Error:
                        pass
                self.peak["jvm_mib"] = max(self.peak["jvm_mib"], jvm)
                self.peak["python_mib"] = max(self.peak["python_mib"], python)
            except psutil.Error:
                return
            time.sleep(0.5)


def _messages(ids: list[str], names: list[str], hour: HourlyMeans) -> list[tuple[str, str]]:
    """What the stats job publishes for one hour: ``(key, JSON value)`` per station."""
    text = format_epoch_hour(hour.hour)
    out = []
    for i in np.flatnonzero(~np.isnan(hour.mean_c)):
        value = {"station_id": ids[i], "hour": text, "mean_c": round(float(hour.mean_c[i]), 3)}
        value["name"] = names[i]
        for field, arr in (
            ("dew_point_mean_c", hour.dew_point_mean_c),
            ("sea_level_pressure_mean_hpa", hour.sea_level_pressure_mean_hpa),
            ("wind_speed_mean_ms", hour.wind_speed_mean_ms),
        ):
            if not np.isnan(arr[i]):
                value[field] = round(float(arr[i]), 3)
        out.append((f"{ids[i]}|{text}", json.dumps(value, separators=(",", ":"))))
    return out


def _publish(producer: Producer, messages: list[tuple[str, str]]) -> None:
    for key, value in messages:
        while True:
            try:
                producer.produce(TOPIC_HOURLY_STATS, value.encode(), key.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


def _wait_warm(root: Path, final_hour: int, timeout: float, job: subprocess.Popen[bytes]) -> bool:
    """Until the job's state has processed ``final_hour`` and a model is saved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise SystemExit(f"the forecast job exited with {job.returncode}: see its log")
        try:
            last = json.loads((root / "state.json").read_text()).get("last_final")
        except (OSError, ValueError):
            last = None
        if last is not None and last >= final_hour and any((root / "models").glob("v*")):
            return True
        time.sleep(2)
    return False


def _job_log(path: Path) -> tuple[list[float], list[dict]]:
    trainings, steps = [], []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message", "")
        if message.startswith("trained forecast model"):
            trainings.append(entry["duration_s"])
        elif message.startswith("final hours"):
            steps.append(entry)
    return trainings, steps


def _step_hours(step: dict) -> set[int]:
    """The final hours of a step, from its log line ("final hours a…b: ...")."""
    match = re.match(r"final hours (\d+)\u2026(\d+)", step["message"])
    return set(range(int(match[1]), int(match[2]) + 1)) if match else set()


def run_size(args: argparse.Namespace, stations: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"moaa-forecast-chain-{stations}-"))
    settings, ports = ephemeral_settings(work)
    metrics_port = free_ports(1)[0]
    days = args.backlog_days + (args.live_hours + BURST) // 24 + 2
    ids, names, hours = synthetic_means(stations, args.year, days)
    stack = LocalStack(settings)
    stack.up()
    procs: list[subprocess.Popen[bytes]] = []
    reader: Forecasts | None = None
    memory: Memory | None = None
    try:
        ensure_topics(
            AdminClient({"bootstrap.servers": settings.kafka_bootstrap}),
            [TOPIC_HOURLY_STATS, TOPIC_FORECASTS],
            3,
            1,
        )
        env = {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "MOAA_MONGO_URI": settings.mongo_uri,
            "MOAA_CHECKPOINT_DIR": str(work / "checkpoints"),
            "MOAA_SPARK_JARS": ",".join(str(p) for p in stack.toolchain.spark_jars()),
            "MOAA_SPARK_MASTER": "local[2]",
            "MOAA_SPARK_UI_PORT": str(ports[7]),
            "MOAA_SPARK_DRIVER_MEMORY": args.driver_memory,
            "MOAA_FORECAST_METRICS_PORT": str(metrics_port),
            "MOAA_FORECAST_MIN_HISTORY_DAYS": str(args.min_history_days),
            "MOAA_FORECAST_PARTITIONS": str(args.partitions),
            "MOAA_INSERT_METRICS_PORT": str(ports[6]),
        }
        # the insert job writes the forecasts; the synthetic hourly means are not stats documents
        only = {"forecast": {}, "insert": {"MOAA_TOPIC_HOURLY_STATS": "bench.not-read"}}
        for name, extra in only.items():
            log = (work / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [MOAA, name], env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
                )
            )
        memory = Memory(procs[0].pid)
        memory.start()
        reader = Forecasts(settings.kafka_bootstrap)
        reader.start()
        producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "acks": "all"}
        )
        feed = iter(hours)

        batches = itertools.count()

        def publish(n: int) -> tuple[float, int]:
            """``n`` hours, each as one stats micro-batch: its means, then its marks."""
            sent, last = time.time(), 0
            for _ in range(n):
                hour = next(feed)
                _publish(producer, _messages(ids, names, hour))
                publish_progress(
                    producer,
                    TOPIC_HOURLY_STATS,
                    datetime.fromtimestamp(hour.hour * 3600, UTC),
                    next(batches),
                )
                sent, last = time.time(), hour.hour
            return sent, last

        # 1. warm-up: the backlog, at once
        started = time.time()
        sent, newest = publish(args.backlog_days * 24)
        # the backlog processed and the first model trained (the job trains beside issuing:
        # that model is used from the first live hour on)
        ok = _wait_warm(work / "checkpoints" / LAYOUT, newest - FINAL_LAG, args.timeout, procs[0])
        backlog_s = time.time() - started
        print(f"{stations}: warm-up of {args.backlog_days} days in {backlog_s:.0f} s", flush=True)
        if not ok:
            raise SystemExit(f"no forecasts after {args.timeout} s: see {work}/forecast.log")

        # 2. burst: 48 hours at once
        started = time.time()
        sent, newest = publish(BURST)
        reader.wait_for(format_epoch_hour(newest - FINAL_LAG), args.timeout, procs[0])
        burst_s = max(reader.last_ts.get(format_epoch_hour(newest - FINAL_LAG), 0.0) - started, 0.0)

        # 3. live: one hour per tick
        final_at: dict[str, float] = {}
        live_hours: set[int] = set()
        for _ in range(args.live_hours):
            tick = time.monotonic()
            sent, newest = publish(1)
            final_at[format_epoch_hour(newest - FINAL_LAG)] = sent
            live_hours.add(newest - FINAL_LAG)
            time.sleep(max(0.0, args.tick - (time.monotonic() - tick)))
        last_live = format_epoch_hour(newest - FINAL_LAG)
        reader.wait_for(last_live, args.timeout, procs[0])
        latency = [reader.last_ts[h] - t for h, t in final_at.items() if h in reader.last_ts]
        per_hour = [reader.count[h] for h in final_at if h in reader.count]

        # 4. everything published is in MongoDB
        published = len(reader.keys)
        forecasts = MongoClient(settings.mongo_uri)["moaa"]["forecasts"]
        # the insert job may still be writing: wait while its count grows, at most
        # --mongo-wait seconds (FerretDB, the local stand-in, falls behind at this volume)
        in_mongo, progress = 0, time.monotonic()
        deadline = progress + args.mongo_wait
        counted = True
        while time.monotonic() - progress < 60 and time.monotonic() < deadline:
            try:  # one count can take minutes (FerretDB scans every document): bounded too
                with pymongo.timeout(max(deadline - time.monotonic(), 1.0)):
                    count = forecasts.count_documents({})
            except PyMongoError as exc:
                print(
                    f"{stations}: MongoDB not counted within --mongo-wait: {exc}", file=sys.stderr
                )
                counted = False
                break
            if count > in_mongo:
                in_mongo, progress = count, time.monotonic()
            if in_mongo >= published:
                break
            time.sleep(2)
        trainings, steps = _job_log(work / "forecast.log")
        live_steps = [s["duration_s"] for s in steps if _step_hours(s) & live_hours]
        return {
            "stations": stations,
            "final_hour_p50_s": round(statistics.median(latency), 2) if latency else None,
            "final_hour_p95_s": round(_pct(latency, 0.95), 2) if latency else None,
            "live_hours": len(latency),
            "tick_s": args.tick,
            "forecasts_per_hour": int(statistics.median(per_hour)) if per_hour else 0,
            "training_s": [round(t, 1) for t in trainings],
            "live_step_s_p50": round(statistics.median(live_steps), 2) if live_steps else None,
            "live_step_s_p95": round(_pct(live_steps, 0.95), 2) if live_steps else None,
            "warmup_days": args.backlog_days,
            "warmup_s": round(backlog_s, 1),
            "burst_48h_s": round(burst_s, 1),
            "peak_jvm_mib": round(memory.peak["jvm_mib"]),
            "peak_python_mib": round(memory.peak["python_mib"]),
            "driver_memory": args.driver_memory,
            "published": published,
            "missing_in_mongodb": max(published - in_mongo, 0) if counted else None,
        }
    finally:
        if reader is not None:
            reader.stopped.set()
        if memory is not None:
            memory.stopped.set()
        stop_all(procs, 60)
        stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,4000,13836", help="stations per run")
    parser.add_argument("--year", type=int, default=2020)
    parser.add_argument("--backlog-days", type=int, default=15, help="warm-up, at once")
    parser.add_argument("--min-history-days", type=float, default=14)
    parser.add_argument("--live-hours", type=int, default=12, help="hours at --tick")
    parser.add_argument("--tick", type=float, default=30.0, help="seconds per live hour")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--timeout", type=float, default=3600, help="per wait, seconds")
    parser.add_argument(
        "--mongo-wait",
        type=float,
        default=600,
        help="longest wait for MongoDB to hold every forecast, seconds",
    )
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(run_size(args, size)), flush=True)


if __name__ == "__main__":
    main()
