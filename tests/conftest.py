"""Repository-wide fixtures.

The real services come from the ``moaa_localstack`` plugin (``moaa.localstack.testing``):
``local_stack``, ``kafka_bootstrap``, ``mongo_uri``, ``spark_jars``, ``spark``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The workplace's ``shared/`` folder beside the repo (``MOAA_SHARED_DIR`` overrides).

    Outside this workplace it may be absent: tests that need it skip then, but never in CI.
    """
    path = Path(os.environ.get("MOAA_SHARED_DIR", REPO.parent / "shared"))
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared/ not found at {path}; set MOAA_SHARED_DIR")
        pytest.skip(f"shared/ not found at {path} (set MOAA_SHARED_DIR)")
    return path
