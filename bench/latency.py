"""End-to-end latency: the feeder sends hour H → H's stats are in MongoDB.

Runs the whole real chain on its own Kafka and FerretDB (free loopback ports): producer,
Spark stats job, insert job, and the feeder replaying the bundled sample at a 1 s tick.
For each hour, latency = first moment every station's document for that hour is in
MongoDB − the moment the feeder sent the hour (from its debug log). Prints p50 and p95,
and the mean of two legs from the components' histograms (the producer's delivery
latency; the insert job's result age, from the result's Kafka timestamp to its write):
the rest is the Spark stats job.

    make bench-latency          # or: .venv/bin/python bench/latency.py --hours 120
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chain import MOAA, running_chain  # bench/chain.py (scripts run from bench/)
from pymongo import MongoClient

from moaa.common.hours import format_hour
from moaa.dashboard.scrape import parse_prometheus
from moaa.dataprep.groundtruth import hourly_temperature_stats
from moaa.dataprep.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "2013"
START = datetime(2013, 1, 1, tzinfo=UTC)


def _mean(metrics: str, name: str) -> float:
    """Mean of a Prometheus histogram ``name`` in the text exposition ``metrics``."""
    samples = parse_prometheus(metrics)
    total, count = (
        sum(v for (n, _), v in samples.items() if n == name + suffix)
        for suffix in ("_sum", "_count")
    )
    return total / count if count else float("nan")


def _legs(settings) -> dict[str, float]:
    """Where the time goes, from the components' own histograms (means, whole run)."""
    legs = {}
    for leg, port, name in (
        ("producer delivery", settings.producer_metrics_port, "weather_producer_delivery_latency_seconds"),
        ("result topic → MongoDB", settings.insert_metrics_port, "weather_insert_result_age_seconds"),
    ):  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            legs[leg] = _mean(response.read().decode(), name)
    return legs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hours", type=int, default=120, help="hours replayed (after 6 warm-up hours)"
    )
    parser.add_argument("--tick", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moaa-lat-"))
    dataset = work / "dataset"
    prepare(SAMPLE, dataset, 2013)
    with running_chain(work, dataset) as chain:
        env, settings = chain.env, chain.settings
        total = args.hours + 6
        expected: dict[str, int] = {}
        for (_station, hour), _ in hourly_temperature_stats(SAMPLE).items():
            if START <= hour < START + timedelta(hours=total):
                key = format_hour(hour)
                expected[key] = expected.get(key, 0) + 1
        feeder = subprocess.Popen(
            [MOAA, "feeder", "--tick", str(args.tick), "--hours", str(total)],
            env={**env, "MOAA_LOG_LEVEL": "DEBUG"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen: dict[str, float] = {}
        mongo: MongoClient = MongoClient(settings.mongo_uri, tz_aware=True)
        collection = mongo["moaa"]["hourly_stats"]
        deadline = time.monotonic() + total * args.tick + 120
        while time.monotonic() < deadline and len(seen) < len(expected):
            counts: dict[str, int] = {}
            for doc in collection.find({}, {"_id": 1}):
                hour = doc["_id"].split("|")[1]
                counts[hour] = counts.get(hour, 0) + 1
            now = time.time()
            for hour, n in counts.items():
                if hour not in seen and n >= expected.get(hour, 10**9):
                    seen[hour] = now
            time.sleep(0.05)
        out, _ = feeder.communicate(timeout=60)
        legs = _legs(settings)
        sent = {}
        for line in out.splitlines():
            if line.startswith("{") and '"sent_at_unix_s"' in line:
                entry = json.loads(line)
                sent[entry["hour"]] = entry["sent_at_unix_s"]
        hours = sorted(h for h in seen if h in sent)[6:]  # skip the warm-up hours
        latencies = sorted(seen[h] - sent[h] for h in hours)
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            json.dumps(
                {
                    "hours": len(latencies),
                    "tick_s": args.tick,
                    "p50_s": round(p50, 3),
                    "p95_s": round(p95, 3),
                    "max_s": round(latencies[-1], 3),
                    "mean_leg_s": {k: round(v, 3) for k, v in legs.items()},
                }
            )
        )
        print(
            f"\nend-to-end latency over {len(latencies)} hours at a {args.tick:g} s tick (feeder send → stats in MongoDB)"
        )
        print(
            f"  p50 {p50:.2f} s   p95 {p95:.2f} s   max {latencies[-1]:.2f} s   (target p95 ≤ 2 s)"
        )
        print(
            "  mean per leg over the whole run: "
            + ", ".join(f"{name} {value:.3f} s" for name, value in legs.items())
        )


if __name__ == "__main__":
    main()
