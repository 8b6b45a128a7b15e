"""Hourly stats at full speed: the streaming path against DuckDB in batch, same files, same run.

A synthetic slice (clearly synthetic: ``moaa synth``) is prepared once, then:

* batch — DuckDB reads the same CSV files and computes the per station and hour
  min / max / mean / count (``moaa.dataprep.groundtruth``, the tests' ground truth) to an
  Arrow table; only that query is timed (twice, the faster run counts);
* streaming — the real processes on a real Kafka and FerretDB: ``moaa feeder --tick 0`` →
  ``moaa producer`` → Kafka → ``moaa stats`` (Spark) → Kafka → ``moaa insert`` → FerretDB.
  Timed from the feeder's start until the chain has drained: the stats job has committed a
  micro-batch that read every record of ``weather.observations`` (its checkpoint's offsets
  reach the topic's end) and the insert job has committed every result message (its
  consumer group's offsets reach the end of ``weather.hourly-stats``), which it does only
  after the MongoDB write. Both are read cheaply from files and Kafka, not by scanning the
  collection while the chain runs (on FerretDB any query scans it). Then every station-hour
  document is compared with the batch's values (untimed).

Prints records/s of both and the ratio streaming time / batch time (target ≤ 10), plus
where the streaming time went (feeder done, results in MongoDB). Usage::

    make bench-throughput                 # or:
    .venv/bin/python bench/throughput.py --stations 1000 --days 7
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chain import MOAA, running_chain  # bench/chain.py (scripts run from bench/)
from confluent_kafka import Consumer, TopicPartition
from pymongo import MongoClient

from moaa.common.hours import record_key
from moaa.common.kafka import TOPIC_HOURLY_STATS, TOPIC_OBSERVATIONS, kafka_lag
from moaa.dataprep.groundtruth import stats_by_station_hour, temperature_stats_table
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.streaming.stats import checkpoint_location


def batch(raw: Path) -> tuple[float, dict]:
    """Seconds DuckDB takes for the stats of every file in ``raw`` (best of two).

    Only DuckDB's query to its Arrow result is timed; the per station-hour dict the
    comparison needs is built afterwards, untimed.
    """
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        table = temperature_stats_table(raw)
        timings.append(time.perf_counter() - started)
    return min(timings), stats_by_station_hour(table)


def _wrong(truth: dict, docs: dict) -> int:
    """Station-hours of ``truth`` missing from ``docs`` or stored with other values."""
    wrong = 0
    for (station, hour), (lo, hi, mean, count) in truth.items():
        doc = docs.get(record_key(station, hour))
        exact = doc is not None and (doc["min_c"], doc["max_c"], doc["count"]) == (lo, hi, count)
        wrong += not (exact and math.isclose(doc["mean_c"], mean, abs_tol=1e-9))
    return wrong


def _ends(consumer: Consumer, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}  # fmt: skip


def _stats_read(checkpoint: Path, topic: str) -> dict[int, int]:
    """Offsets of ``topic`` up to which the stats query's micro-batches are committed."""
    committed = [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")]
    if not committed:
        return {}
    lines = (checkpoint / "offsets" / str(max(committed))).read_text().splitlines()
    return {int(p): o for p, o in json.loads(lines[2]).get(topic, {}).items()}


def _drained(consumer: Consumer, checkpoint: Path, insert_lag: Callable[[], dict]) -> bool:
    """The stats job read everything and the insert job wrote (and committed) all it made."""
    read = _stats_read(checkpoint, TOPIC_OBSERVATIONS)
    if any(read.get(p, 0) < end for p, end in _ends(consumer, TOPIC_OBSERVATIONS).items()):
        return False
    return insert_lag()["total"] == 0  # the dashboard's lag: None when Kafka cannot say


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=1000, help="synthetic stations")
    parser.add_argument("--days", type=int, default=7, help="days of 2020 in the slice")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after (s)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moaa-tput-"))
    raw = work / "synth"
    # no malformed rows: the DuckDB truth implements the rules for well-formed files only
    synthesize(args.stations, 2020, raw, seed=7, malformed_rate=0.0, days=args.days)
    dataset = work / "dataset"
    prepare(raw, dataset, 2020, workers=os.cpu_count() or 1)
    batch_s, truth = batch(raw)
    records = sum(v[3] for v in truth.values())

    with running_chain(work, dataset) as chain:
        env, settings = chain.env, chain.settings
        mongo: MongoClient = MongoClient(settings.mongo_uri, tz_aware=True)
        collection = mongo["moaa"]["hourly_stats"]
        hours = str(args.days * 24)
        started = time.monotonic()
        feeder = subprocess.Popen(
            [MOAA, "feeder", "--tick", "0", "--start", "2020-01-01T00:00:00", "--hours", hours],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        feeder_s = math.nan
        client = {"bootstrap.servers": settings.kafka_bootstrap}
        kafka = Consumer({**client, "group.id": "moaa-bench"})  # end offsets only, no subscribe
        insert_lag = kafka_lag(client, "moaa-insert", [TOPIC_HOURLY_STATS], timeout_s=10)
        checkpoint = checkpoint_location(Path(env["MOAA_CHECKPOINT_DIR"]), "hourly_stats")
        stream_s = math.nan
        while time.monotonic() - started < args.timeout:
            if math.isnan(feeder_s) and feeder.poll() is not None:
                assert feeder.returncode == 0, "the feeder failed"
                feeder_s = time.monotonic() - started
            if not math.isnan(feeder_s) and _drained(kafka, checkpoint, insert_lag):
                stream_s = time.monotonic() - started
                break
            time.sleep(0.2)
        kafka.close()
        if math.isnan(stream_s):
            raise SystemExit(f"the chain did not drain within --timeout {args.timeout:g} s")
        wrong = _wrong(truth, {d["_id"]: d for d in collection.find()})
        result = {
            "stations": args.stations,
            "days": args.days,
            "records": records,
            "station_hours": len(truth),
            "batch_s": round(batch_s, 3),
            "stream_s": round(stream_s, 2),
            "feeder_done_s": round(feeder_s, 2),
            "batch_records_per_s": round(records / batch_s),
            "stream_records_per_s": round(records / stream_s),
            "ratio": round(stream_s / batch_s, 2),
            "documents_wrong_or_missing": wrong,
        }
        print(json.dumps(result))
        print(
            f"\nhourly stats, {records:,} temperature readings, {len(truth):,} station-hours "
            f"({args.stations} synthetic stations × {args.days} days)"
        )
        print(
            f"  DuckDB batch (CSV → stats)          : {batch_s:>8.2f} s  {records / batch_s:>10,.0f} readings/s"
        )
        print(
            f"  streaming (feeder → … → MongoDB)    : {stream_s:>8.2f} s  {records / stream_s:>10,.0f} readings/s"
        )
        print(f"    of which the feeder replay        : {feeder_s:>8.2f} s")
        print(
            f"  ratio streaming / batch             : {stream_s / batch_s:>8.1f}×  (target ≤ 10×)"
        )
        print(f"  documents wrong or missing          : {wrong}")


if __name__ == "__main__":
    main()
