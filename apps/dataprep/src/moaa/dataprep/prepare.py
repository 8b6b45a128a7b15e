"""``moaa prepare``: turn a folder of ISD CSVs into the hour-indexed dataset, out of core.

**Input.** The folder ``moaa download --out DIR`` wrote: ``DIR/<year>/<station>.csv``
beside NOAA's station list ``DIR/isd-history.csv``. Given ``DIR``, prepare reads the
year's folder ``DIR/<year>/``; given a folder of CSVs itself (the bundled sample, a
``moaa synth`` output), it reads that folder. A station list found among the CSVs is
skipped (it is not observations); a folder holding no ISD data file, or an input that
yields no accepted observation, is an error naming what was found.

Two steps, each incremental:

1. **Stage** — the files are parsed in batches (``MOAA_PREPARE_BATCH_MB`` of CSV each) by
   :mod:`moaa.dataprep.vectorized`: DuckDB expressions implementing the rules of
   :mod:`moaa.common.isd`, the Python parser taking every line the SQL does not accept.
   Each batch is written partitioned by UTC day, ``staging/batch-<id>/day=YYYY-MM-DD/``.
   Files whose size and mtime match the manifest are not parsed again; a changed file
   re-stages its batch.
2. **Index** — ``hours/day=YYYY-MM-DD/`` gathers every batch's files of that day as hard
   links: nothing is rewritten (the feeder reads a day's files and sorts them).

Both run under a DuckDB memory limit with a spill directory, so a year of every station
(10⁸ rows) never has to fit in memory. Re-running on unchanged input does nothing. The
per-file report (rows, accepted, rejected by reason) is printed, logged, and kept in
``report.json``; progress is a bar on a terminal and JSON log lines otherwise.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from pydantic import Field
from rich.console import Console
from rich.table import Table

from moaa.common.errors import MoaaError
from moaa.common.isd import parse_header
from moaa.common.logs import configure_logging
from moaa.common.progress import ProgressReporter
from moaa.common.settings import MoaaSettings
from moaa.dataprep.vectorized import parse_batch, read_source
from moaa.feeder.dataset import LAYOUT

__all__ = ["PrepareError", "PrepareSettings", "command", "input_folder", "prepare"]

log = logging.getLogger(__name__)
_CSV_SUFFIXES = (".csv", ".csv.gz")
#: Header columns that mark NOAA's station list (``isd-history.csv``).
_STATION_LIST_COLUMNS = frozenset({"USAF", "WBAN"})
#: Version of the staging layout; a manifest of another one re-stages everything (3: the
#: `obs_id` digest is MD5, computed by DuckDB).
_STAGING = "batches/3"


class PrepareError(MoaaError):
    """The input cannot become a dataset; the message says what was found."""


class PrepareSettings(MoaaSettings):
    """Settings of ``moaa prepare`` (``MOAA_*``)."""

    replay_year: int = Field(2020, description="Year being replayed (2013 for the bundled sample).")
    prepare_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="DuckDB threads while parsing and indexing (default: CPU count).",
    )
    prepare_memory_limit: str = Field("2GB", description="DuckDB memory limit; beyond, it spills.")
    prepare_batch_mb: int = Field(
        128, description="CSV megabytes parsed per batch (bounds memory; one staging file each)."
    )


def input_folder(input_dir: Path, year: int) -> Path:
    """The folder holding the year's CSVs: ``<dir>/<year>/`` when present (download's layout)."""
    year_dir = input_dir / str(year)
    return year_dir if year_dir.is_dir() else input_dir


def _year_hint(folder: Path) -> str:
    years = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    return f"; it holds year folders {', '.join(years)} (pass --year)" if years else ""


def _source_files(folder: Path, year: int) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_CSV_SUFFIXES))
    if files:
        return files
    raise PrepareError(f"no .csv or .csv.gz files in {folder} for {year}{_year_hint(folder)}")


def _first_line(path: Path) -> bytes:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.readline(1 << 16)
    except (OSError, EOFError) as exc:
        raise PrepareError(f"{path.name} cannot be read: {exc}") from None


def _examine(path: Path) -> tuple[bool, str]:
    """Whether the file has an ISD header, and what it is when it has not."""
    cols, error = parse_header(_first_line(path))
    if cols is not None:
        return True, ""
    names = {n.strip().strip('"') for n in _first_line(path).decode(errors="replace").split(",")}
    if names >= _STATION_LIST_COLUMNS:
        return False, f"{path.name} is NOAA's station list, not observations"
    return False, f"{path.name}: {error}"


def _fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _batches(paths: list[Path], batch_bytes: int) -> list[list[Path]]:
    """Consecutive files of about ``batch_bytes`` of CSV each (gzip counted ×8)."""
    batches: list[list[Path]] = [[]]
    size = 0
    for path in paths:
        weight = path.stat().st_size * (8 if path.name.endswith(".gz") else 1)
        if batches[-1] and size + weight > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += weight
    return [b for b in batches if b]


def _connect(workers: int, memory_limit: str, spill: Path) -> duckdb.DuckDBPyConnection:
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET temp_directory = ?", [str(spill)])
    con.execute(f"SET threads = {max(int(workers), 1)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _stage(
    con: duckdb.DuckDBPyConnection, batch: list[Path], staging: Path, year: int, threads: int
) -> dict[str, dict[str, Any]]:
    """Parse one batch into ``staging/batch-<id>/day=…/``; return its files' report entries."""
    try:
        # reading, gunzipping and splitting release the GIL: one thread per DuckDB thread
        with ThreadPoolExecutor(threads) as pool:
            sources = list(pool.map(read_source, batch))
    except ValueError as exc:
        raise PrepareError(str(exc)) from None
    table, counts = parse_batch(con, sources, year)
    name = f"batch-{uuid.uuid4().hex[:12]}"
    tmp = staging / f".{name}.tmp"
    con.register("staged_batch", table)
    try:
        con.execute(
            f"COPY staged_batch TO '{tmp}' (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd)"
        )
    finally:
        con.unregister("staged_batch")
    tmp.rename(staging / name)
    return {
        path.name: {"file": path.name, **_fingerprint(path), **counts[path.name].as_dict(),
                    "batch": name}
        for path in batch
    }  # fmt: skip


def _index(out_dir: Path) -> None:
    """Gather every batch's day partitions under ``hours/``, as hard links (no copy)."""
    target, tmp = out_dir / "hours", out_dir / "hours.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for staged in sorted((out_dir / "staging").glob("batch-*/day=*/*.parquet")):
        day = tmp / staged.parent.name
        day.mkdir(parents=True, exist_ok=True)
        os.link(staged, day / f"{staged.parent.parent.name}-{staged.name}")
    tmp.mkdir(exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _previous(manifest_path: Path, year: int) -> dict[str, Any]:
    old: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return old if old.get("year") == year and old.get("staging") == _STAGING else {}


def prepare(
    input_dir: Path,
    out_dir: Path,
    year: int,
    workers: int = 1,
    memory_limit: str = "2GB",
    batch_mb: int = 128,
) -> dict[str, Any]:
    """Stage changed files and re-index if needed; return the manifest.

    Raises :class:`PrepareError` when the folder holds no ISD data file or nothing in it
    is an accepted observation.
    """
    folder = input_folder(input_dir, year)
    examined = {p: _examine(p) for p in _source_files(folder, year)}
    skipped = {p.name: what for p, (_, what) in examined.items() if what.endswith("observations")}
    if not any(is_data for is_data, _ in examined.values()):
        found = "; ".join(what for _, what in examined.values())
        raise PrepareError(f"no ISD data file in {folder} for {year}: {found}{_year_hint(folder)}")
    for what in skipped.values():
        log.warning("prepare: skipping %s", what, extra={"skipped": what})
    sources = [p for p in examined if p.name not in skipped]

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / "staging"
    staging.mkdir(exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    old = _previous(manifest_path, year)
    plan = _plan(sources, old.get("files", {}), staging)
    if plan is None and (out_dir / "hours").is_dir():
        log.info("prepare: nothing to do, %d files unchanged", len(sources),
                 extra={"files": len(sources)})  # fmt: skip
        return old
    todo, files = plan or (sources, {})
    manifest_path.unlink(missing_ok=True)  # the old dataset no longer matches its staging

    started = time.monotonic()
    con = _connect(workers, memory_limit, out_dir / ".duckdb-spill")
    try:
        rows = 0
        with ProgressReporter("parsing files", len(todo), "files", log) as progress:
            for batch in _batches(todo, batch_mb << 20):
                entries = _stage(con, batch, staging, year, max(int(workers), 1))
                files.update(entries)
                rows += sum(e["rows"] for e in entries.values())
                elapsed = max(time.monotonic() - started, 1e-9)
                progress.advance(len(batch), rows=rows, rows_per_s=round(rows / elapsed))
        totals = _totals(files)
        if not totals["accepted"]:
            reasons = ", ".join(f"{k}={v}" for k, v in totals["rejected"].items()) or "none"
            raise PrepareError(
                f"0 of {totals['rows']} rows in {folder} are accepted observations "
                f"(rejected by reason: {reasons}): nothing to replay"
            )
        _index(out_dir)
    finally:
        con.close()
        shutil.rmtree(out_dir / ".duckdb-spill", ignore_errors=True)
    firsts = [f["first_hour"] for f in files.values() if f["first_hour"]]
    lasts = [f["last_hour"] for f in files.values() if f["last_hour"]]
    manifest = {
        "layout": LAYOUT,
        "staging": _STAGING,
        "dataset_id": uuid.uuid4().hex,
        "year": year,
        "built_at": datetime.now(UTC).isoformat(),
        "source_dir": str(folder.resolve()),
        "first_hour": min(firsts) if firsts else None,
        "last_hour": max(lasts) if lasts else None,
        "totals": totals,
        "skipped": skipped,
        "files": dict(sorted(files.items())),
    }
    (out_dir / "report.json").write_text(json.dumps(list(manifest["files"].values()), indent=1))
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    duration = time.monotonic() - started
    log.info(
        "prepare: done",
        extra={
            **totals,
            "parsed_files": len(todo),
            "duration_s": round(duration, 2),
            "rows_per_s": round(rows / max(duration, 1e-9)),
        },
    )
    return manifest


def _plan(
    sources: list[Path], old_files: dict[str, Any], staging: Path
) -> tuple[list[Path], dict[str, Any]] | None:
    """Files to parse and entries kept; ``None`` when nothing changed. Drops stale batches."""
    names = {p.name for p in sources}
    changed = {
        p.name
        for p in sources
        if {k: old_files.get(p.name, {}).get(k) for k in ("size", "mtime_ns")} != _fingerprint(p)
        or not (staging / old_files[p.name]["batch"]).exists()
    }
    gone = set(old_files) - names
    if not changed and not gone:
        return None
    dirty = {old_files[n]["batch"] for n in (changed | gone) & set(old_files)}
    todo = [p for p in sources if p.name in changed or old_files[p.name]["batch"] in dirty]
    files = {n: e for n, e in old_files.items() if n in names and e["batch"] not in dirty}
    kept = {e["batch"] for e in files.values()}
    for stale in staging.iterdir():
        if stale.name not in kept:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return todo, files


def _totals(files: dict[str, Any]) -> dict[str, Any]:
    rejected: Counter[str] = Counter()
    for entry in files.values():
        rejected.update(entry["rejected"])
    return {
        "files": len(files),
        "rows": sum(f["rows"] for f in files.values()),
        "accepted": sum(f["accepted"] for f in files.values()),
        "rejected": dict(sorted(rejected.items())),
    }


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
            help="The folder `moaa download --out` wrote (its <year>/ folder is read), "
            "or a folder of ISD CSV files (.csv or .csv.gz).",
            exists=True,
            file_okay=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder to write (created if missing).")
    ] = Path(".local/dataset"),
    year: Annotated[
        int | None, typer.Option(help="Replay year [env MOAA_REPLAY_YEAR, default 2020].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="DuckDB threads [env MOAA_PREPARE_WORKERS].")
    ] = None,
) -> None:
    """Prepare ISD CSVs once into the hour-indexed dataset the feeder replays.

    Reads DIR/<year>/ when present (the layout `moaa download --out DIR` writes), else the
    CSVs in DIR; NOAA's station list is skipped. Parses every file with DuckDB
    expressions implementing the common ISD rules (rows accepted / rejected by reason, per
    file), then indexes all rows by UTC hour, out of core (MOAA_PREPARE_MEMORY_LIMIT).
    Re-running on unchanged input does nothing. Exits 1 when the folder holds no ISD data
    file or no row is an accepted observation.
    """
    settings = PrepareSettings()
    configure_logging(settings.log_level, settings.log_format, component="prepare")
    try:
        manifest = prepare(
            input_dir,
            out,
            year or settings.replay_year,
            workers or settings.prepare_workers,
            settings.prepare_memory_limit,
            settings.prepare_batch_mb,
        )
    except PrepareError as exc:
        log.error("prepare failed: %s", exc, extra={"error": str(exc)})
        raise typer.Exit(1) from None
    _print_report(manifest, Console(stderr=True))
