"""One Spark version everywhere: pyspark, the connector pom and the toolchain pins agree."""

from __future__ import annotations

import re
from importlib import resources
from importlib.metadata import version
from pathlib import Path

from moaa.localstack import versions


def test_pyspark_matches_the_pinned_spark_version() -> None:
    assert version("pyspark") == versions.SPARK_VERSION


def test_connector_pom_default_matches(repo_root: Path) -> None:
    pom = (resources.files("moaa.localstack") / "resources" / "spark-kafka-pom.xml").read_text()
    assert (
        re.search(r"<spark.version>([^<]+)</spark.version>", pom).group(1) == versions.SPARK_VERSION
    )  # type: ignore[union-attr]
    pyproject = (repo_root / "apps" / "streaming" / "pyproject.toml").read_text()
    assert f'"pyspark=={versions.SPARK_VERSION}"' in pyproject


def test_kafka_pom_default_matches() -> None:
    pom = (resources.files("moaa.localstack") / "resources" / "kafka-pom.xml").read_text()
    assert (
        re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1) == versions.KAFKA_VERSION
    )  # type: ignore[union-attr]
