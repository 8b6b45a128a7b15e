"""The insert job: result topics → MongoDB, idempotently, committing offsets after each write.

A plain Kafka consumer (confluent-kafka) rather than a Spark job: the work is a keyed
upsert per message, so Spark would add a JVM, a checkpoint and seconds of batch latency
for no computation. The consumer reads a batch of messages, keeps the last value per key
(an unordered bulk write may apply two updates of one document in any order), writes them
with ``_id`` = the natural key, and only then commits the offsets. The write is an upsert in
two steps: one unordered ``insert_many`` of every document (most results are new: a
finished hour, a new forecast), then ``$set`` upserts for the keys that already existed
(duplicate-key errors of the first step), in unordered ``bulk_write`` commands of at most
``MOAA_INSERT_BULK_OPS``. Inserting first is what makes the FerretDB test stand-in fast:
it answers every write addressed by ``_id`` with a collection scan but checks an insert's
``_id`` against its unique index. A crash between write and commit replays the batch: the
same documents again, no duplicate.

A message that is not a result of its topic (not a JSON object, no key, a field name MongoDB
cannot store, or without the fields its collection is read by) is skipped, counted by reason
(``weather_insert_invalid_messages_total``) and logged; so is a document MongoDB itself
refuses (found by writing that batch one document at a time): one bad message never blocks
the rest. While MongoDB is unreachable the batch is retried with backoff and nothing is
committed. Collections and their keys:

* ``hourly_stats`` — ``<station>|<hour>``, from ``weather.hourly-stats`` (whose progress
  marks, key ``stats-progress``, are for the forecast job and skipped here);
* ``hourly_summary`` — ``<hour>``, from ``weather.hourly-summary``;
* ``forecasts`` — ``<station>|<issued_at>``, from ``weather.forecasts`` (``issued_at`` and
  every point's ``target_hour`` stored as dates);
* ``forecast_skill`` — ``<station>`` or ``ALL``, from ``weather.forecast-skill``
  (``updated_hour`` as a date).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException
from prometheus_client import Counter, Histogram
from pydantic import Field, SecretStr
from pymongo import ASCENDING, MongoClient, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError, WriteConcernError

from moaa.common.hours import parse_hour
from moaa.common.kafka import (
    TOPIC_FORECAST_SKILL,
    TOPIC_FORECASTS,
    TOPIC_HOURLY_STATS,
    TOPIC_HOURLY_SUMMARY,
    KafkaSettings,
)
from moaa.common.logs import configure_logging
from moaa.common.ops import run_component
from moaa.common.records import COLLECTIONS, STATS_PROGRESS_KEY, datetime_fields

__all__ = [
    "ForeignMessage",
    "InsertSettings",
    "Inserter",
    "command",
    "fields_for",
    "result_document",
    "upsert_all",
]

log = logging.getLogger(__name__)

DOCUMENTS = Counter(
    "weather_insert_documents_total",
    "Documents upserted into MongoDB, by collection",
    ["collection"],
)
UPDATED = Counter(
    "weather_insert_updated_documents_total",
    "Of those, documents that already existed and were updated in place, by collection",
    ["collection"],
)
WRITE_LATENCY = Histogram(
    "weather_insert_write_latency_seconds",
    "Duration of one bulk write to MongoDB",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MESSAGES = Counter("weather_insert_messages_total", "Result messages consumed, by topic", ["topic"])
INVALID = Counter(
    "weather_insert_invalid_messages_total",
    "Messages skipped as unreadable or not a result of their topic, by reason",
    ["reason"],
)
RESULT_AGE = Histogram(
    "weather_insert_result_age_seconds",
    "Time from a result message's Kafka timestamp to its write in MongoDB",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


class InsertSettings(KafkaSettings):
    """Settings of the insert job (``MOAA_*``)."""

    mongo_uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"),
        description="MongoDB connection string (readWrite user).",
    )
    mongo_database: str = Field("moaa", description="Database of the results.")
    topic_hourly_stats: str = Field(TOPIC_HOURLY_STATS, description="Per station and hour results.")
    topic_hourly_summary: str = Field(
        TOPIC_HOURLY_SUMMARY, description="All-stations per hour results."
    )
    topic_forecasts: str = Field(TOPIC_FORECASTS, description="Forecasts (24 leads per issue).")
    topic_forecast_skill: str = Field(
        TOPIC_FORECAST_SKILL, description="Forecast MAE and skill per station and overall."
    )
    insert_group_id: str = Field("moaa-insert", description="Consumer group of the insert job.")
    insert_batch_max: int = Field(5000, description="Most messages written in one bulk write.")
    insert_batch_wait_s: float = Field(0.2, description="Longest wait to fill a batch.")
    insert_bulk_ops: int = Field(
        90,
        ge=1,
        description="Most upserts per bulk_write command. FerretDB v1 never answers a bulk of "
        "100 or more updates of existing documents; real MongoDB takes far more (e.g. 1000).",
    )
    insert_metrics_port: int = Field(
        9302, description="Port of /metrics, /healthz, /readyz (0 = off)."
    )


def _parse_hour(value: Any) -> Any:
    if isinstance(value, str) and value.endswith("Z"):
        try:
            return parse_hour(value)
        except ValueError:
            return value
    return value


#: Fields stored as BSON dates, per collection: the datetime fields of its record (sent as
#: ``"YYYY-MM-DDTHH:MM:SSZ"``), dotted for the fields of a list's objects.
_DATE_FIELDS = {name: datetime_fields(record) for name, record in COLLECTIONS.items()}
#: The same dotted ones by list: collection → list field → date fields of its objects.
_LIST_DATE_FIELDS = {
    name: {
        outer: frozenset(p.split(".", 1)[1] for p in paths if p.startswith(f"{outer}."))
        for outer in {p.split(".", 1)[0] for p in paths if "." in p}
    }
    for name, paths in _DATE_FIELDS.items()
}


def _convert(collection: str, key: str, value: Any) -> Any:
    if key in _DATE_FIELDS[collection]:
        return _parse_hour(value)
    inner = _LIST_DATE_FIELDS[collection].get(key)
    if inner and isinstance(value, list):
        return [
            {k: _parse_hour(v) if k in inner else v for k, v in item.items()}
            if isinstance(item, dict)
            else item
            for item in value
        ]
    return value


def fields_for(collection: str, value: dict[str, Any]) -> dict[str, Any]:
    """The stored fields of one result of ``collection`` (dates converted, ``updated_at``
    stamped)."""
    fields = {k: _convert(collection, k, v) for k, v in value.items()}
    fields["updated_at"] = datetime.now(UTC)
    return fields


#: The fields each collection's readers find a result by (dates as dates): a message
#: without them is not a result of its topic.
REQUIRED_FIELDS = {
    "hourly_stats": ("station_id", "hour"),
    "hourly_summary": ("hour",),
    "forecasts": ("station_id", "issued_at"),
    "forecast_skill": ("station_id", "updated_hour"),
}
_DECODER = msgspec.json.Decoder(dict)


class ForeignMessage(ValueError):
    """A message the insert job does not store; ``reason`` labels the metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _unstorable(name: str) -> bool:
    return name == "_id" or name.startswith("$") or "." in name or "\0" in name


def result_document(collection: str, key: bytes | None, value: bytes | None) -> tuple[str, dict]:
    """``(_id, fields)`` of one result message for ``collection``; raises
    :class:`ForeignMessage` (with the reason) for anything else."""
    if key is None:
        raise ForeignMessage("no_key", "a message without a key")
    try:
        doc_id = key.decode()
    except UnicodeDecodeError as exc:
        raise ForeignMessage("bad_key", str(exc)) from None
    if value is None:
        raise ForeignMessage("not_json_object", "a message without a value")
    try:
        value_doc = _DECODER.decode(value)
    except msgspec.DecodeError as exc:  # ValidationError too: JSON, but not an object
        raise ForeignMessage("not_json_object", str(exc)) from None
    bad = [name for name in value_doc if _unstorable(name)]
    if bad:
        raise ForeignMessage("unstorable_field", f"field names MongoDB cannot store: {bad[:3]}")
    fields = fields_for(collection, value_doc)
    for name in REQUIRED_FIELDS[collection]:
        got = fields.get(name)
        if not isinstance(got, datetime if name in _DATE_FIELDS[collection] else str):
            raise ForeignMessage(
                "missing_field", f"{collection} needs {name!r}, got {str(got)[:40]!r}"
            )
    return doc_id, fields


_DUPLICATE_KEY = 11000
_PROGRESS_KEY = STATS_PROGRESS_KEY.encode()


def upsert_all(collection: Any, docs: dict[str, dict[str, Any]], bulk_ops: int) -> int:
    """Upsert ``docs`` (``_id`` → fields) into ``collection``; returns how many existed.

    Insert everything in one unordered ``insert_many``; the keys that fail only because they
    exist are then ``$set`` with upserts, ``bulk_ops`` per command. Any other write error
    or write-concern error is raised (the batch is then retried whole, which is idempotent).
    """
    if not docs:
        return 0
    keys = list(docs)
    try:
        collection.insert_many([{"_id": k, **docs[k]} for k in keys], ordered=False)
        return 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(
            e.get("code") != _DUPLICATE_KEY for e in errors
        ):
            raise  # not durable as asked, or a real failure: the batch is retried whole
        existing = [keys[e["index"]] for e in errors]
    upserts = [UpdateOne({"_id": k}, {"$set": docs[k]}, upsert=True) for k in existing]
    for first in range(0, len(upserts), bulk_ops):
        collection.bulk_write(upserts[first : first + bulk_ops], ordered=False)
    return len(existing)


class Inserter:
    """Consume result topics and upsert into MongoDB, committing after each write."""

    def __init__(self, settings: InsertSettings) -> None:
        self.settings = settings
        self.topics = {
            settings.topic_hourly_stats: "hourly_stats",
            settings.topic_hourly_summary: "hourly_summary",
            settings.topic_forecasts: "forecasts",
            settings.topic_forecast_skill: "forecast_skill",
        }
        self.consumer = Consumer(
            {
                **settings.kafka_client_config(),
                "group.id": settings.insert_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 5000,
            },
            logger=logging.getLogger("librdkafka"),
        )
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(
            settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10_000, tz_aware=True
        )
        self.db = self.mongo[settings.mongo_database]
        self._stopping = False

    def ensure_indexes(self) -> None:
        self.db.hourly_stats.create_index(
            [("station_id", ASCENDING), ("hour", ASCENDING)], name="station_hour"
        )
        self.db.hourly_stats.create_index([("hour", ASCENDING)], name="hour")
        self.db.hourly_summary.create_index([("hour", ASCENDING)], name="hour")
        self.db.forecasts.create_index(
            [("station_id", ASCENDING), ("issued_at", ASCENDING)], name="station_issued_at"
        )

    def ready(self) -> tuple[bool, str]:
        try:
            self.mongo.admin.command("ping")
        except PyMongoError as exc:
            return False, f"mongodb unreachable: {exc}"
        return True, "ok"

    def stop(self) -> None:
        self._stopping = True

    def _skip(self, reason: str, detail: str, **where: object) -> None:
        INVALID.labels(reason).inc()
        log.warning("skipping a message: %s", detail, extra={"reason": reason, **where})

    def _documents(self, messages: list) -> dict[str, dict[str, tuple[dict[str, Any], float]]]:
        """The batch's documents by collection: the last value per key, with its Kafka time;
        what is not a result is skipped (counted and logged)."""
        latest: dict[str, dict[str, tuple[dict[str, Any], float]]] = {}
        now = time.time()
        for msg in messages:
            topic = msg.topic()
            MESSAGES.labels(topic).inc()
            collection = self.topics[topic]
            if msg.key() == _PROGRESS_KEY:  # the stats job's marks for the forecast job
                continue
            try:
                key, fields = result_document(collection, msg.key(), msg.value())
            except ForeignMessage as exc:
                self._skip(
                    exc.reason,
                    exc.detail,
                    topic=topic,
                    partition=msg.partition(),
                    offset=msg.offset(),
                )
                continue
            _, ts = msg.timestamp()
            latest.setdefault(collection, {})[key] = (fields, ts / 1000 if ts > 0 else now)
        return latest

    def _upsert(self, collection: str, docs: dict[str, dict[str, Any]]) -> int:
        """Upsert ``docs``; a document MongoDB refuses for good is skipped, not retried."""
        try:
            return upsert_all(self.db[collection], docs, self.settings.insert_bulk_ops)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
        # Some document was refused (not for a duplicate key): write one at a time to find it.
        existed = 0
        for key, fields in docs.items():
            try:
                result = self.db[collection].update_one({"_id": key}, {"$set": fields}, upsert=True)
            except WriteConcernError:
                raise
            except OperationFailure as exc:
                self._skip("refused_by_mongodb", str(exc)[:300], collection=collection, key=key)
                continue
            existed += result.upserted_id is None
        return existed

    def _write(self, latest: dict[str, dict[str, tuple[dict[str, Any], float]]]) -> None:
        for collection, docs in latest.items():
            started = time.perf_counter()
            existed = self._upsert(collection, {k: fields for k, (fields, _) in docs.items()})
            WRITE_LATENCY.observe(time.perf_counter() - started)
            DOCUMENTS.labels(collection).inc(len(docs))
            UPDATED.labels(collection).inc(existed)
            written = time.time()
            for _, ts in docs.values():
                RESULT_AGE.observe(max(written - ts, 0.0))

    def run(self) -> None:
        self.ensure_indexes()
        self.consumer.subscribe(list(self.topics))
        log.info(
            "insert job consuming %s",
            ", ".join(self.topics),
            extra={"database": self.settings.mongo_database},
        )
        backoff = 0.5
        while not self._stopping:
            messages = self.consumer.consume(
                self.settings.insert_batch_max, self.settings.insert_batch_wait_s
            )
            good = []
            for msg in messages:
                err = msg.error()
                if err is None:
                    good.append(msg)
                elif err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    # A result topic its job has not created yet (e.g. no forecast job running):
                    # the subscription picks it up once it exists.
                    log.debug("consumer: %s", err)
                elif err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
            if not good:
                continue
            documents = self._documents(good)
            failures = 0
            while not self._stopping:
                try:
                    self._write(documents)
                    break
                except PyMongoError as exc:
                    failures += 1
                    log.warning("MongoDB write failed (%s); retrying in %.1f s", exc, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
            else:
                break  # stopping with an unwritten batch: do not commit it
            if failures:
                log.info("MongoDB write succeeded after %d failed attempts", failures)
            backoff = 0.5
            try:
                self.consumer.commit(asynchronous=False)
            except KafkaException as exc:
                log.warning("offset commit failed (%s); the batch may be written again", exc)
        self.consumer.close()
        self.mongo.close()


def command() -> None:
    """Run the insert job: upsert hourly stats, summaries, forecasts and skill into MongoDB.

    Idempotent (``_id`` = natural key, unordered bulk upserts), offsets committed only after
    each write, so restarts and replays never duplicate a document.
    """
    settings = InsertSettings()
    configure_logging(settings.log_level, settings.log_format, component="insert")
    inserter = Inserter(settings)
    run_component(
        "insert", settings.insert_metrics_port, inserter.ready, inserter.run, inserter.stop
    )
