"""The forecast model (Spark ML) and its versioned store.

One model for every station and lead: a :class:`pyspark.ml.Pipeline` of

1. a ``SQLTransformer`` crossing each feature of :data:`FEATURES` with the piecewise-linear
   lead basis (:data:`LEAD_KNOTS`), so every feature's weight is a smooth function of the
   lead (the basis sums to 1, so the ``one`` feature gives a per-lead intercept);
2. a ``VectorAssembler``;
3. a ``LinearRegression`` (normal equations, light ridge) of the change ``x_{t+L} − x_t``.

The prediction of a point is ``last_c + prediction``. Saved models are self-contained
(``PipelineModel.save``): the lead basis travels with them.

Models live in ``<root>/v<N>/`` with ``metadata.json`` (version, trained_at, trained_through,
window, rows, training MAE / RMSE). A version is written under a temporary name and renamed
into place, so a crash never leaves a half-written ``v<N>``; :meth:`ModelStore.latest`
loads the highest complete version.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.regression import LinearRegression, LinearRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

from moaa.common.hours import format_hour
from moaa.streaming.forecast_features import FEATURES, LEAD_KNOTS

__all__ = [
    "ROW_SCHEMA",
    "ModelStore",
    "StoredModel",
    "build_pipeline",
    "coefficients",
    "predict",
    "rows_frame",
    "score",
    "train",
]

log = logging.getLogger(__name__)

#: One row per (station, issue hour, lead): what the model sees, and the label once known.
ROW_SCHEMA = StructType(
    [
        StructField("station_id", StringType(), False),
        StructField("issue_hour", LongType(), False),
        StructField("lead", IntegerType(), False),
        StructField("last_c", DoubleType(), False),
        *(StructField(f"f_{name}", DoubleType(), False) for name in FEATURES),
        StructField("label", DoubleType(), True),
    ]
)
_KEEP_VERSIONS = 5


def rows_frame(
    spark: SparkSession,
    stations: Sequence[str],
    issue_hours: Sequence[int],
    last: Sequence[float],
    features: np.ndarray,
    labels: np.ndarray | None = None,
) -> DataFrame:
    """A Spark DataFrame of model rows: ``features`` has shape ``(n, 24, len(FEATURES))``
    for ``n`` issues; ``labels`` (``(n, 24)``, NaN = unknown) are the changes to predict."""
    data = []
    for i, (station, hour, xt) in enumerate(zip(stations, issue_hours, last, strict=True)):
        for lead in range(1, features.shape[1] + 1):
            label = None
            if labels is not None and not np.isnan(labels[i, lead - 1]):
                label = float(labels[i, lead - 1])
            data.append(
                (station, int(hour), lead, float(xt), *features[i, lead - 1].tolist(), label)
            )
    # The rows are built right here with the schema's types: skip the per-row verification.
    return spark.createDataFrame(data, ROW_SCHEMA, verifySchema=False)


def _hat_sql(i: int) -> str:
    """SQL for the weight of knot ``i`` of the lead basis (see ``lead_basis``)."""
    k = LEAD_KNOTS[i]
    left = "1.0" if i == 0 else f"(lead - {LEAD_KNOTS[i - 1]}) / {k - LEAD_KNOTS[i - 1]}.0"
    if i == len(LEAD_KNOTS) - 1:
        right = "1.0"
    else:
        right = f"({LEAD_KNOTS[i + 1]} - lead) / {LEAD_KNOTS[i + 1] - k}.0"
    return f"greatest(0.0, least({left}, {right}))"


def _crossed_columns() -> list[str]:
    return [f"x_{k}_{name}" for k in range(len(LEAD_KNOTS)) for name in FEATURES]


def build_pipeline(reg_param: float = 1e-3) -> Pipeline:
    """The unfitted pipeline (lead basis × features → vector → linear regression)."""
    crossed = ", ".join(
        f"{_hat_sql(k)} * f_{name} AS x_{k}_{name}"
        for k in range(len(LEAD_KNOTS))
        for name in FEATURES
    )
    return Pipeline(
        stages=[
            SQLTransformer(statement=f"SELECT *, {crossed} FROM __THIS__"),
            VectorAssembler(inputCols=_crossed_columns(), outputCol="features"),
            LinearRegression(
                featuresCol="features",
                labelCol="label",
                predictionCol="prediction",
                fitIntercept=False,  # the `one` feature × the basis is a per-lead intercept
                regParam=reg_param,
                elasticNetParam=0.0,
                solver="normal",
            ),
        ]
    )


def train(rows: DataFrame, reg_param: float = 1e-3) -> tuple[PipelineModel, dict[str, float]]:
    """Fit on rows with a label; return the model and its training error (°C)."""
    labelled = rows.where(F.col("label").isNotNull())
    model = build_pipeline(reg_param).fit(labelled)
    summary = _regression(model).summary
    return model, {
        "rows": int(summary.numInstances),
        "train_mae_c": float(summary.meanAbsoluteError),
        "train_rmse_c": float(summary.rootMeanSquaredError),
    }


def _regression(model: PipelineModel) -> LinearRegressionModel:
    """The fitted regression, the pipeline's last stage (see :func:`build_pipeline`)."""
    stage = model.stages[-1]
    if not isinstance(stage, LinearRegressionModel):
        raise TypeError(f"not a forecast pipeline: its last stage is {type(stage).__name__}")
    return stage


def score(model: PipelineModel, rows: DataFrame) -> DataFrame:
    """``rows`` with ``value``, the forecast in °C (last value + the predicted change)."""
    out = model.transform(rows)
    columns = ", ".join(f"`{c}`" for c in rows.columns)
    # SQL text: a select of named columns costs a few calls to the JVM per column
    return rows.sparkSession.sql(
        f"SELECT {columns}, last_c + prediction AS value FROM {{out}}", out=out
    )


def coefficients(model: PipelineModel) -> tuple[np.ndarray, float]:
    """The linear regression's coefficients (over the crossed columns) and intercept."""
    regression = _regression(model)
    return np.asarray(regression.coefficients.toArray(), dtype=float), float(regression.intercept)


def predict(model: PipelineModel, rows: DataFrame) -> list[tuple[str, int, int, float]]:
    """``(station, issue_hour, lead, forecast °C)`` for every row, collected (small frames)."""
    out = score(model, rows).select("station_id", "issue_hour", "lead", "value")
    return [(r[0], int(r[1]), int(r[2]), float(r[3])) for r in out.collect()]


@dataclass(frozen=True)
class StoredModel:
    version: int
    model: PipelineModel
    metadata: dict[str, Any]


class ModelStore:
    """Versioned models under ``root`` (``v<N>/`` with the Spark ML model and metadata.json)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self) -> list[int]:
        if not self.root.exists():
            return []
        found = []
        for path in self.root.iterdir():
            match = re.fullmatch(r"v(\d+)", path.name)
            if match and (path / "metadata.json").exists():
                found.append(int(match.group(1)))
        return sorted(found)

    def latest(self) -> StoredModel | None:
        versions = self.versions()
        if not versions:
            return None
        path = self.root / f"v{versions[-1]}"
        metadata = json.loads((path / "metadata.json").read_text())
        return StoredModel(versions[-1], PipelineModel.load(str(path / "model")), metadata)

    def discard_trained_after(self, hour: int | None) -> None:
        """Remove the versions trained on data after ``hour`` (all when None): a step that a
        crash interrupted trains them again, the same way."""
        for version in self.versions():
            path = self.root / f"v{version}"
            through = json.loads((path / "metadata.json").read_text()).get("trained_through_hour")
            if hour is None or through is None or int(through) > hour:
                log.info("discarding forecast model v%d (from an interrupted step)", version)
                shutil.rmtree(path, ignore_errors=True)

    def save(self, model: PipelineModel, metadata: dict[str, Any]) -> StoredModel:
        """Save as the next version (atomic rename); keep the last few versions."""
        versions = self.versions()
        version = (versions[-1] if versions else 0) + 1
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".v{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.write().overwrite().save(str(tmp / "model"))
        metadata = {
            "version": version,
            "trained_at": format_hour(datetime.now(UTC)),
            **metadata,
        }
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2))
        tmp.rename(self.root / f"v{version}")
        for old in versions[:-_KEEP_VERSIONS]:
            shutil.rmtree(self.root / f"v{old}", ignore_errors=True)
        log.info("saved forecast model v%d", version, extra={"model": metadata})
        return StoredModel(version, model, metadata)
