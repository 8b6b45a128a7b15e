"""Ingest throughput: feeder → Unix socket → producer → Kafka, against a plain producer.

Both paths publish the same records (the synthetic slice's observations to one topic, its
rejected rows to a dead-letter topic) to the same real Kafka broker, in the same run:

* reference — one confluent-kafka Producer (same settings as ours: idempotent, acks=all,
  lz4, ``MOAA_PRODUCER_LINGER_MS``) publishing the records from memory as the same Kafka
  messages (key, value and ``moaa-schema`` header), then flushing;
* moaa — `moaa feeder --tick 0` (the real process) sending hour batches to
  `moaa producer` (the real process), which validates each record and acknowledges each
  batch only after every delivery; throughput is records / the feeder's replay time.

The two run interleaved for ``--rounds`` rounds (3) and the medians count. The figure that
matters is the ratio moaa / reference (target ≥ 0.8), not the absolute rates, which depend
on the machine; the feeder also reports its busiest hour's time from send to ack. Usage::

    make bench-ingest                      # or:
    .venv/bin/python bench/ingest.py --stations 2000 --days 3
    make bench-ingest-scale                # a week of every active station (realistic volume)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from moaa.common.kafka import ensure_topics
from moaa.common.observation import OBSERVATION_SCHEMA, REJECTION_SCHEMA
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.localstack.services import LocalStack
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.testing import free_ports
from moaa.producer.server import ProducerSettings

MOAA = str(Path(sys.executable).with_name("moaa"))
#: The headers the producer sets (the schema version of each topic's records).
_OBS = [("moaa-schema", OBSERVATION_SCHEMA.encode())]
_DLQ = [("moaa-schema", REJECTION_SCHEMA.encode())]


def reference(bootstrap: str, rows: list[tuple[str, str | None, bytes]]) -> float:
    """Records/s of a plain producer publishing ``rows`` (kind, key, value) from memory: the
    same Kafka messages as the producer's (key, value and ``moaa-schema`` header)."""
    topic = f"bench.ref.{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ensure_topics(admin, [topic, topic + ".dlq"], 3, 1, 604_800_000)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": ProducerSettings().producer_linger_ms,  # the same as ours
            "queue.buffering.max.messages": 100_000,
        }
    )
    started = time.perf_counter()
    for kind, key, value in rows:
        target, headers = (topic, _OBS) if kind == "obs" else (topic + ".dlq", _DLQ)
        while True:
            try:
                producer.produce(target, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(120) == 0
    return len(rows) / (time.perf_counter() - started)


def moaa_path(
    bootstrap: str, dataset: Path, hours: int, workdir: Path, round_: int
) -> tuple[float, int, dict]:
    """Records/s of the real feeder → producer chain over ``hours`` hours at tick 0."""
    topic = f"bench.moaa.{uuid.uuid4().hex[:6]}"
    workdir = workdir / f"round-{round_}"
    workdir.mkdir()
    producer_port, feeder_port = free_ports(2)
    env = {
        **os.environ,
        "MOAA_LOG_FORMAT": "json",
        "MOAA_KAFKA_BOOTSTRAP": bootstrap,
        "MOAA_TOPIC_OBSERVATIONS": topic,
        "MOAA_TOPIC_DLQ": topic + ".dlq",
        "MOAA_SOCKET_PATH": str(workdir / "p.sock"),
        "MOAA_DATASET_DIR": str(dataset),
        "MOAA_CHECKPOINT_PATH": str(workdir / f"ckpt-{topic}.json"),
        "MOAA_PRODUCER_METRICS_PORT": str(producer_port),
        "MOAA_FEEDER_METRICS_PORT": str(feeder_port),
    }
    with (workdir / "producer.log").open("ab") as log:
        producer = subprocess.Popen(
            [MOAA, "producer"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        while not (workdir / "p.sock").exists():
            time.sleep(0.1)
        feed = [MOAA, "feeder", "--tick", "0", "--start", "2020-01-01T00:00:00", "--hours"]
        # Warm-up (connections, the idempotent producer id), with its own checkpoint.
        warm = {**env, "MOAA_CHECKPOINT_PATH": env["MOAA_CHECKPOINT_PATH"] + ".warm"}
        subprocess.run([*feed, "24"], env=warm, capture_output=True, check=True, timeout=600)
        feeder = subprocess.run(
            [*feed, str(hours)], env=env, capture_output=True, text=True, check=True, timeout=1200
        )
    finally:
        producer.terminate()
        producer.wait(30)
    final = [
        json.loads(line) for line in feeder.stdout.splitlines() if '"replay finished"' in line
    ][-1]
    return final["records_sent"] / final["duration_s"], final["records_sent"], final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stations", default="2000", help="synthetic stations, or `all` (every active station)"
    )
    parser.add_argument("--days", type=int, default=3, help="days of 2020 in the slice")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moaa-bench-"))
    ports = free_ports(5)
    settings = LocalStackSettings(
        state_dir=work / "stack",
        kafka_port=ports[0],
        kafka_controller_port=ports[1],
        mongo_port=ports[2],
        ferretdb_debug_port=ports[3],
        producer_metrics_port=ports[4],
        kafka_heap="1g",
    )
    stack = LocalStack(settings)
    stack.up(["kafka"])
    try:
        raw = work / "synth"
        count = None if args.stations == "all" else int(args.stations)
        synthesize(count, 2020, raw, seed=1, malformed_rate=0.002, days=args.days)
        dataset = work / "dataset"
        prepare(raw, dataset, 2020, workers=os.cpu_count() or 1)
        table = pq.read_table(
            dataset / "hours", columns=["hour", "kind", "station_id", "source_file", "record"]
        ).sort_by("hour")
        # keyed as the producer keys them: observations by station, rejects by source file
        rows = [
            (kind, station if kind == "obs" else source, record)
            for kind, station, source, record in zip(
                table.column("kind").to_pylist(),
                table.column("station_id").to_pylist(),
                table.column("source_file").to_pylist(),
                table.column("record").to_pylist(),
                strict=True,
            )
        ]
        bootstrap = settings.kafka_bootstrap
        reference(bootstrap, rows[: min(len(rows), 20_000)])  # warm-up
        refs: list[float] = []
        ours: list[float] = []
        busiest: list[tuple[int, float, str]] = []
        for round_ in range(args.rounds):  # interleaved, so both see the same machine
            refs.append(reference(bootstrap, rows))
            rate, sent, final = moaa_path(bootstrap, dataset, args.days * 24, work, round_)
            assert sent == len(rows), (sent, len(rows))
            ours.append(rate)
            busiest.append(
                (final["busiest_hour_records"], final["busiest_hour_ack_s"], final["busiest_hour"])
            )
        ref, our = statistics.median(refs), statistics.median(ours)
        result = {
            "records": len(rows),
            "hours": args.days * 24,
            "stations": args.stations,
            "rounds": args.rounds,
            "reference_records_per_s": round(ref),
            "moaa_records_per_s": round(our),
            "ratio": round(our / ref, 3),
            "ratios_per_round": [round(o / r, 3) for o, r in zip(ours, refs, strict=True)],
            "busiest_hour": busiest[0][2],
            "busiest_hour_records": busiest[0][0],
            "busiest_hour_ack_s_per_round": [b[1] for b in busiest],
        }
        print(json.dumps(result))
        slice_ = f"{args.stations} synthetic stations × {args.days} days"
        runs = ", ".join(f"{r:,.0f}" for r in refs)
        print(f"\ningest, {len(rows):,} records ({slice_}), median of {args.rounds} rounds")
        print(f"  plain confluent-kafka producer : {ref:>10,.0f} records/s (runs: {runs})")
        runs = ", ".join(f"{r:,.0f}" for r in ours)
        print(f"  feeder → socket → producer     : {our:>10,.0f} records/s (runs: {runs})")
        print(f"  ratio                          : {our / ref:.2f}  (target ≥ 0.8)")
        acks = ", ".join(f"{b[1]:.2f}" for b in busiest)
        print(
            f"  busiest hour {busiest[0][2]} ({busiest[0][0]:,} records), send → ack: {acks} s"
            "  (target ≤ 2 s)"
        )
    finally:
        stack.down()


if __name__ == "__main__":
    main()
