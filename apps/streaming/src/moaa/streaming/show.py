"""``moaa show``: print what the pipeline stored in MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import Field, SecretStr
from pymongo import DESCENDING, MongoClient
from rich.console import Console
from rich.table import Table

from moaa.common.hours import parse_hour
from moaa.common.settings import MoaaSettings

app = typer.Typer(help="Print what the pipeline stored in MongoDB.", no_args_is_help=True)


class ShowSettings(MoaaSettings):
    mongo_uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"), description="MongoDB connection string."
    )
    mongo_database: str = Field("moaa", description="Database of the results.")


def _db() -> Any:
    settings = ShowSettings()
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000
    )
    return client[settings.mongo_database]


def _hour(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        # a time without a zone is UTC, as every hour of the pipeline
        return parse_hour(value if value.endswith("Z") or "+" in value else f"{value}Z")
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: {exc}", param_hint="--hour") from None


def _table(title: str, docs: list[dict[str, Any]], first: str) -> Table:
    table = Table(title=title)
    for col in (first, "min °C", "max °C", "mean °C", "readings"):
        table.add_column(col, justify="left" if col == first else "right")
    for d in docs:
        label = (
            d["hour"].strftime("%Y-%m-%d %H:00Z")
            if isinstance(d.get("hour"), datetime)
            else str(d.get("hour"))
        )
        table.add_row(
            label, f"{d['min_c']:.1f}", f"{d['max_c']:.1f}", f"{d['mean_c']:.2f}", str(d["count"])
        )
    return table


@app.command()
def stats(
    station: Annotated[str, typer.Option(help="Station id (USAF+WBAN), e.g. 72502014734.")],
    hour: Annotated[
        str | None, typer.Option(help="One UTC hour, e.g. 2013-01-01T06:00:00Z.")
    ] = None,
    last: Annotated[int, typer.Option(help="How many latest hours to show.")] = 24,
) -> None:
    """Hourly min / max / mean of one station (latest hours, or one hour)."""
    db = _db()
    query: dict[str, Any] = {"station_id": station}
    if hour:
        query["hour"] = _hour(hour)
    docs = list(db.hourly_stats.find(query).sort("hour", DESCENDING).limit(last))
    if not docs:
        Console(stderr=True).print(
            f"no hourly stats for station {station} (is the pipeline running?)"
        )
        raise typer.Exit(1)
    name = docs[0].get("name", "")
    Console().print(_table(f"{station} {name}", list(reversed(docs)), "hour (UTC)"))


@app.command()
def summary(last: Annotated[int, typer.Option(help="How many latest hours to show.")] = 24) -> None:
    """All-stations hourly min / max / mean (latest hours)."""
    docs = list(_db().hourly_summary.find().sort("hour", DESCENDING).limit(last))
    if not docs:
        Console(stderr=True).print("no hourly summary yet (is the pipeline running?)")
        raise typer.Exit(1)
    Console().print(_table("all stations", list(reversed(docs)), "hour (UTC)"))
