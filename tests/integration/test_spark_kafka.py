"""Spark reads a Kafka topic through the real connector (a batch read), no download at start."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration


def test_spark_batch_reads_kafka(kafka_bootstrap: str, spark) -> None:
    from pyspark.sql import functions as F

    topic = f"it-spark-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(50):
        producer.produce(topic, key=f"s{i % 5}", value=json.dumps({"station": f"s{i % 5}", "t": i}))
    assert producer.flush(30) == 0

    df = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    parsed = df.select(
        F.col("key").cast("string").alias("key"),
        F.from_json(F.col("value").cast("string"), "station STRING, t INT").alias("v"),
    )
    rows = parsed.groupBy("key").agg(F.count("*").alias("n"), F.sum("v.t").alias("total")).collect()
    by_key = {r["key"]: (r["n"], r["total"]) for r in rows}
    assert by_key == {f"s{k}": (10, sum(range(k, 50, 5))) for k in range(5)}
