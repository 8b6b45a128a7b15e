"""The website's HTTP API fuzzed against its own OpenAPI document (schemathesis).

The app runs in-process against the session's FerretDB, holding a small fixture of the insert
job's documents. Schemathesis generates requests from ``/openapi.json``, valid and invalid
alike, and checks every answer: never a 5xx, a documented status code and content type, a
body that matches the documented schema, and a 4xx that says what was wrong (``detail``).
``/api/events`` (a stream that never ends) is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import product
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pymongo import MongoClient
from schemathesis import GenerationMode

from moaa.dashboard.app import create_app
from moaa.dashboard.settings import DashboardSettings
from moaa.dashboard.testing import ScaleFixture
from moaa.streaming.insert import Inserter

pytestmark = pytest.mark.integration

LAST = datetime(2013, 1, 2, 5, tzinfo=UTC)
DATABASE = "it_api_fuzz"


@pytest.fixture(scope="module")
def app(mongo_uri: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    client.drop_database(DATABASE)
    db = client[DATABASE]
    Inserter.ensure_indexes(SimpleNamespace(db=db))  # type: ignore[arg-type]
    ScaleFixture(8, 3, LAST).write(db)
    app = create_app(DashboardSettings(mongo_uri=mongo_uri, mongo_database=DATABASE), watch=False)
    try:
        with TestClient(app):  # runs the lifespan
            app.state.live.refresh()  # the new-hour task
            yield app
    finally:
        client.drop_database(DATABASE)
        client.close()


@schemathesis.check
def bad_requests_say_why(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx answer names what was wrong: a JSON body with a non-empty ``detail``."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and body.get("detail"), (
            f"{response.status_code} without a reason: {response.text[:200]}"
        )


def test_no_input_makes_the_api_fail(app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/events")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    for operation, mode in product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(additional_checks=[bad_requests_say_why])

        try:
            fuzz()
        except Unsatisfiable:
            # No invalid request exists (no parameters, or only free-form strings).
            assert mode is GenerationMode.NEGATIVE, operation.label
            print(f"no invalid input for {operation.label}")
