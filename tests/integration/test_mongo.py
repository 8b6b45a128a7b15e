"""The local FerretDB is a real MongoDB-wire server: bulk upserts, finds, indexes."""

from __future__ import annotations

import uuid

import pytest
from pymongo import ASCENDING, MongoClient, UpdateOne

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(mongo_uri: str):
    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    db = client[f"it_{uuid.uuid4().hex[:8]}"]
    yield db["hourly_stats"]
    client.drop_database(db.name)
    client.close()


def _upserts(values: dict[str, float]) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": key},
            {
                "$set": {"mean_c": value, "station_id": key.split("|")[0]},
                "$setOnInsert": {"first_seen": 1},
            },
            upsert=True,
        )
        for key, value in values.items()
    ]


def test_unordered_bulk_upserts_are_idempotent(collection) -> None:
    first = {f"7250201473{i % 2}|2013-01-01T{i:02d}": float(i) for i in range(24)}
    result = collection.bulk_write(_upserts(first), ordered=False)
    assert result.upserted_count == 24

    # Replaying the same writes (a redelivery) changes nothing and adds no document.
    again = collection.bulk_write(_upserts(first), ordered=False)
    assert again.upserted_count == 0
    assert collection.count_documents({}) == 24

    # An update of existing keys keeps $setOnInsert fields and replaces $set ones.
    collection.bulk_write(_upserts({"72502014730|2013-01-01T00": 42.5}), ordered=False)
    doc = collection.find_one({"_id": "72502014730|2013-01-01T00"})
    assert doc == {
        "_id": "72502014730|2013-01-01T00",
        "mean_c": 42.5,
        "station_id": "72502014730",
        "first_seen": 1,
    }


def test_find_with_filter_sort_and_index(collection) -> None:
    collection.bulk_write(
        _upserts({f"S{i % 3}|H{i:02d}": float(i) for i in range(30)}), ordered=False
    )
    collection.create_index([("station_id", ASCENDING), ("mean_c", ASCENDING)], name="station_mean")
    assert "station_mean" in collection.index_information()
    docs = list(
        collection.find({"station_id": "S1"}, {"_id": 0, "mean_c": 1}).sort("mean_c", -1).limit(3)
    )
    assert docs == [{"mean_c": 28.0}, {"mean_c": 25.0}, {"mean_c": 22.0}]


def test_insert_job_upsert_inserts_new_and_updates_existing(collection) -> None:
    """``upsert_all`` (insert first, ``$set`` the keys that exist) on the real server.

    150 existing keys also cover FerretDB v1's limit: it never answers one ``update``
    command with 100 or more updates of existing documents, so the updates go in chunks.
    """
    from moaa.streaming.insert import upsert_all

    first = {f"S|{i:03d}": {"mean_c": float(i), "station_id": "S"} for i in range(150)}
    assert upsert_all(collection, first, bulk_ops=90) == 0
    assert collection.count_documents({}) == 150

    second = {f"S|{i:03d}": {"mean_c": -float(i), "station_id": "S"} for i in range(100, 300)}
    second.update({f"S|{i:03d}": {"mean_c": 0.5, "station_id": "S"} for i in range(0, 100)})
    assert upsert_all(collection, second, bulk_ops=90) == 150
    assert collection.count_documents({}) == 300
    stored = {d["_id"]: d["mean_c"] for d in collection.find({}, {"mean_c": 1})}
    assert stored == {k: v["mean_c"] for k, v in second.items()}

    # A replay of the same batch changes nothing.
    assert upsert_all(collection, second, bulk_ops=90) == 300
    assert collection.count_documents({}) == 300
