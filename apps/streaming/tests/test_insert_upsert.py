"""``upsert_all``'s error handling, with a stand-in collection (the real server is in
``tests/integration/test_mongo.py``)."""

from __future__ import annotations

import pytest
from pymongo.errors import BulkWriteError

from moaa.streaming.insert import upsert_all


class _Collection:
    def __init__(self, details: dict) -> None:
        self.details = details
        self.updates: list = []

    def insert_many(self, docs: list, ordered: bool) -> None:
        raise BulkWriteError(self.details)

    def bulk_write(self, ops: list, ordered: bool) -> None:
        self.updates.append([op._filter["_id"] for op in ops])


def _dup(index: int) -> dict:
    return {"index": index, "code": 11000, "errmsg": "E11000 duplicate key"}


def test_only_the_keys_that_exist_are_updated_in_chunks() -> None:
    docs = {f"k{i}": {"v": i} for i in range(5)}
    collection = _Collection({"writeErrors": [_dup(0), _dup(2), _dup(4)]})
    assert upsert_all(collection, docs, bulk_ops=2) == 3
    assert collection.updates == [["k0", "k2"], ["k4"]]


@pytest.mark.parametrize(
    "details",
    [
        {"writeErrors": [_dup(0), {"index": 1, "code": 121, "errmsg": "validation"}]},
        {"writeErrors": [_dup(0)], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}]},
        {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}]},
    ],
)
def test_other_errors_fail_the_batch(details: dict) -> None:
    collection = _Collection(details)
    with pytest.raises(BulkWriteError):
        upsert_all(collection, {"k0": {"v": 0}, "k1": {"v": 1}}, bulk_ops=90)
    assert collection.updates == []
