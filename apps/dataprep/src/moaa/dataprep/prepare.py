"""``moaa prepare``: turn a folder of ISD CSVs into the hour-indexed dataset, out of core.

Two steps, each incremental:

1. **Stage** — every source file is parsed once by the common ISD parser (in parallel
   worker processes) into ``staging/<file>.parquet``. A file whose size and mtime match
   the manifest is not parsed again.
2. **Index** — DuckDB rewrites all staged rows into ``hours/day=YYYY-MM-DD/`` partitions
   with a memory limit and a spill directory, so a year of every station (100 M+ rows)
   never has to fit in memory. It runs only when a staged file changed.

Re-running on unchanged input does nothing. The per-file report (rows, accepted, rejected
by reason) is printed, logged, and kept in ``report.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from pydantic import Field
from rich.console import Console
from rich.table import Table

from moaa.common.isd import ParseStats, parse_file
from moaa.common.logs import configure_logging
from moaa.common.observation import Observation
from moaa.common.progress import ProgressReporter
from moaa.common.settings import MoaaSettings
from moaa.feeder.dataset import LAYOUT, SCHEMA

__all__ = ["PrepareSettings", "command", "prepare"]

log = logging.getLogger(__name__)
_DATE_HOUR_RE = re.compile(r'"?(\d{4}-\d{2}-\d{2}T\d{2}):\d{2}:\d{2}"?')
_CSV_SUFFIXES = (".csv", ".csv.gz")


class PrepareSettings(MoaaSettings):
    """Settings of ``moaa prepare`` (``MOAA_*``)."""

    replay_year: int = Field(2020, description="Year being replayed (2013 for the bundled sample).")
    prepare_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Parallel parser processes (default: CPU count).",
    )
    prepare_memory_limit: str = Field("2GB", description="DuckDB memory limit while indexing.")


def _hour_from_raw(raw: str) -> datetime | None:
    match = _DATE_HOUR_RE.search(raw[:80])
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        return None


def _source_files(input_dir: Path) -> list[Path]:
    files = sorted(p for p in input_dir.iterdir() if p.is_file() and p.name.endswith(_CSV_SUFFIXES))
    if not files:
        raise typer.BadParameter(f"no .csv or .csv.gz files in {input_dir}")
    return files


def _fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _assign_hours(hours: list[datetime | None], year: int) -> list[datetime]:
    """Fill unreadable hours with the hour of the row before (or after, or the year's start)."""
    filled: list[datetime] = []
    previous: datetime | None = None
    first_known = next((h for h in hours if h is not None), datetime(year, 1, 1, tzinfo=UTC))
    for hour in hours:
        previous = hour or previous
        filled.append(previous or first_known)
    return filled


def stage_file(path: Path, staging_dir: Path, year: int) -> dict[str, Any]:
    """Parse one source file into ``staging/<name>.parquet``; return its report entry.

    Runs in a worker process. Rejected rows get their own hour when their DATE is
    readable, else the hour of the row before them (the first readable hour of the file
    for leading rows, the year's first hour when nothing is readable).
    """
    stats = ParseStats()
    hours: list[datetime | None] = []
    cols: dict[str, list[Any]] = {
        name: [] for name in ("kind", "station_id", "obs_id", "temperature_c", "reason", "record")
    }
    for item in parse_file(path, stats):
        if isinstance(item, Observation):
            hours.append(item.hour)
            values = ("obs", item.station_id, item.obs_id, item.temperature_c, None)
        else:
            hours.append(_hour_from_raw(item.raw))
            values = ("reject", None, None, None, item.reason)
        for name, value in zip(
            ("kind", "station_id", "obs_id", "temperature_c", "reason"), values, strict=True
        ):
            cols[name].append(value)
        cols["record"].append(item.to_json())
    filled = _assign_hours(hours, year)
    table = pa.table(
        {
            "hour": filled,
            "day": [h.strftime("%Y-%m-%d") for h in filled],
            **{k: v for k, v in cols.items() if k != "record"},
            "source_file": [path.name] * len(filled),
            "seq": list(range(len(filled))),
            "record": cols["record"],
        },
        schema=SCHEMA,
    )
    target = staging_dir / f"{path.name}.parquet"
    tmp = staging_dir / f".{path.name}.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(target)
    return {
        "file": path.name,
        **_fingerprint(path),
        "rows": stats.rows,
        "accepted": stats.accepted,
        "rejected": dict(stats.rejected),
        "first_hour": min(filled).isoformat() if filled else None,
        "last_hour": max(filled).isoformat() if filled else None,
    }


def _index(out_dir: Path, memory_limit: str) -> None:
    """Rewrite every staged row into day partitions with DuckDB (spills to disk)."""
    target, tmp = out_dir / "hours", out_dir / "hours.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    spill = out_dir / ".duckdb-spill"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = false")
        staged = str(out_dir / "staging" / "*.parquet")
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{staged}') ORDER BY hour) "  # noqa: S608 - our own path
            f"TO '{tmp}' (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd)"
        )
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def prepare(
    input_dir: Path, out_dir: Path, year: int, workers: int = 1, memory_limit: str = "2GB"
) -> dict[str, Any]:
    """Stage changed files and re-index if needed; return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / "staging"
    staging.mkdir(exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    old: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    old_files: dict[str, Any] = old.get("files", {}) if old.get("year") == year else {}
    sources = _source_files(input_dir)
    todo = [
        p
        for p in sources
        if {k: old_files.get(p.name, {}).get(k) for k in ("size", "mtime_ns")} != _fingerprint(p)
    ]
    gone = set(old_files) - {p.name for p in sources}
    for name in gone:
        (staging / f"{name}.parquet").unlink(missing_ok=True)
    if not todo and not gone and (out_dir / "hours").is_dir():
        log.info(
            "prepare: nothing to do, %d files unchanged",
            len(sources),
            extra={"files": len(sources)},
        )
        return old
    files = {name: entry for name, entry in old_files.items() if name not in gone}
    started = time.monotonic()
    with ProgressReporter("parsing files", len(todo), "files", log) as progress:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(stage_file, p, staging, year) for p in todo]
                for future in as_completed(futures):
                    entry = future.result()
                    files[entry["file"]] = entry
                    progress.advance(1, rows=sum(f["rows"] for f in files.values()))
        else:
            for path in todo:
                entry = stage_file(path, staging, year)
                files[entry["file"]] = entry
                progress.advance(1, rows=sum(f["rows"] for f in files.values()))
    log.info("prepare: indexing by hour with DuckDB", extra={"files": len(files)})
    _index(out_dir, memory_limit)
    rejected: Counter[str] = Counter()
    for entry in files.values():
        rejected.update(entry["rejected"])
    firsts = [f["first_hour"] for f in files.values() if f["first_hour"]]
    lasts = [f["last_hour"] for f in files.values() if f["last_hour"]]
    manifest = {
        "layout": LAYOUT,
        "dataset_id": uuid.uuid4().hex,
        "year": year,
        "built_at": datetime.now(UTC).isoformat(),
        "source_dir": str(input_dir.resolve()),
        "first_hour": min(firsts) if firsts else None,
        "last_hour": max(lasts) if lasts else None,
        "totals": {
            "files": len(files),
            "rows": sum(f["rows"] for f in files.values()),
            "accepted": sum(f["accepted"] for f in files.values()),
            "rejected": dict(rejected),
        },
        "files": dict(sorted(files.items())),
    }
    (out_dir / "report.json").write_text(json.dumps(list(manifest["files"].values()), indent=1))
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    log.info(
        "prepare: done",
        extra={
            **manifest["totals"],
            "parsed_files": len(todo),
            "duration_s": round(time.monotonic() - started, 2),
        },
    )
    return manifest


def _print_report(manifest: dict[str, Any], console: Console) -> None:
    table = Table(title=f"prepared {manifest['totals']['files']} files (year {manifest['year']})")
    for col in ("file", "rows", "accepted", "rejected by reason"):
        table.add_column(col, justify="right" if col in {"rows", "accepted"} else "left")
    entries = sorted(manifest["files"].values(), key=lambda f: -sum(f["rejected"].values()))
    for entry in entries[:20]:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(entry["rejected"].items())) or "-"
        table.add_row(entry["file"], str(entry["rows"]), str(entry["accepted"]), reasons)
    if len(entries) > 20:
        table.add_row(f"… {len(entries) - 20} more (report.json)", "", "", "")
    totals = manifest["totals"]
    table.add_row(
        "[bold]total",
        str(totals["rows"]),
        str(totals["accepted"]),
        ", ".join(f"{k}={v}" for k, v in sorted(totals["rejected"].items())) or "-",
    )
    console.print(table)


def command(
    input_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of ISD CSV files (.csv or .csv.gz).", exists=True, file_okay=False
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder to write (created if missing).")
    ] = Path(".local/dataset"),
    year: Annotated[
        int | None, typer.Option(help="Replay year [env MOAA_REPLAY_YEAR, default 2020].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Parser processes [env MOAA_PREPARE_WORKERS].")
    ] = None,
) -> None:
    """Prepare ISD CSVs once into the hour-indexed dataset the feeder replays.

    Parses every file with the common ISD parser (rows accepted / rejected by reason, per
    file), then indexes all rows by UTC hour with DuckDB, out of core. Re-running on
    unchanged input does nothing; changed or new files are parsed again.
    """
    settings = PrepareSettings()
    configure_logging(settings.log_level, settings.log_format, component="prepare")
    manifest = prepare(
        input_dir,
        out,
        year or settings.replay_year,
        workers or settings.prepare_workers,
        settings.prepare_memory_limit,
    )
    _print_report(manifest, Console(stderr=True))
