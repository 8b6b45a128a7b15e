"""``moaa download``: fetch NOAA's per-station yearly global-hourly CSVs, once.

* the station list (``isd-history.csv``) is fetched first and selects the stations:
  ``--stations`` (explicit ids), ``--country`` (FIPS code) or ``--all`` (every station whose
  period of record overlaps the year);
* files are fetched in parallel into ``<out>/<year>/<station>.csv``, through a
  ``.part`` file renamed only when complete: a complete file is skipped next time, a
  partial one is resumed with an HTTP ``Range`` request;
* connection errors, timeouts, cut transfers and 5xx answers are retried with
  exponential backoff; a 404 means NOAA has no file for that station-year (common) and is
  reported as ``missing``, not retried;
* a progress bar on a terminal, periodic JSON log lines otherwise, and a summary (files,
  bytes, missing, failures). The exit code is 1 when any file failed.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import Field

from moaa.common.logs import configure_logging
from moaa.common.progress import ProgressReporter
from moaa.common.settings import MoaaSettings
from moaa.dataprep.stations import read_stations, stations_for_year

__all__ = ["DownloadSettings", "DownloadSummary", "command", "download"]

log = logging.getLogger(__name__)
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadSettings(MoaaSettings):
    """Settings of ``moaa download`` (``MOAA_*``)."""

    noaa_base_url: str = Field(
        "https://www.ncei.noaa.gov/data/global-hourly/access",
        description="Base URL of the yearly per-station files (<base>/<year>/<station>.csv).",
    )
    noaa_station_list_url: str = Field(
        "https://www.ncei.noaa.gov/pub/data/noaa/isd-history.csv",
        description="URL of the station list.",
    )
    download_workers: int = Field(8, description="Parallel downloads.")
    download_retries: int = Field(5, description="Retries per file after the first attempt.")
    download_timeout_s: float = Field(60.0, description="Connect/read timeout of one request.")
    download_backoff_s: float = Field(1.0, description="First retry delay; doubles each retry.")
    replay_year: int = Field(2020, description="Year to download.")


class _Retryable(Exception):
    """A failure worth another attempt (network error, cut transfer, 5xx)."""


@dataclass
class DownloadSummary:
    """What a download run did."""

    files: int = 0
    downloaded: int = 0
    skipped: int = 0
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    duration_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, object]:
        # Not dataclasses.asdict: it deep-copies every field, and a lock cannot be copied.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}


def _fetch_once(client: httpx.Client, url: str, part: Path) -> None:
    """One attempt: append to ``part`` from where it stops (restart if the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    received = 0
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                raise FileNotFoundError(url)
            if response.status_code == 416 and offset:
                return  # the part already holds the whole file
            if response.status_code in _RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {response.status_code}")
            response.raise_for_status()
            append = response.status_code == 206
            expected = response.headers.get("Content-Length")
            with part.open("ab" if append else "wb") as fh:
                for chunk in response.iter_bytes(1 << 16):
                    fh.write(chunk)
                    received += len(chunk)
            if expected is not None and received != int(expected):
                raise _Retryable(f"transfer cut after {received} of {expected} bytes")
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from None


def _fetch(
    client: httpx.Client, url: str, target: Path, settings: DownloadSettings
) -> tuple[str, int]:
    """Fetch ``url`` into ``target`` (via ``target.part``). Returns (outcome, bytes)."""
    if target.exists():
        return "skipped", 0
    part = target.with_name(target.name + ".part")
    resumed_from = part.stat().st_size if part.exists() else 0
    for attempt in range(settings.download_retries + 1):
        try:
            _fetch_once(client, url, part)
            part.replace(target)
            return "downloaded", target.stat().st_size - resumed_from
        except FileNotFoundError:
            part.unlink(missing_ok=True)
            return "missing", 0
        except (_Retryable, httpx.HTTPStatusError) as exc:
            if isinstance(exc, httpx.HTTPStatusError) or attempt == settings.download_retries:
                raise RuntimeError(str(exc)) from None
            delay = settings.download_backoff_s * 2**attempt * (0.5 + random.random() / 2)  # noqa: S311 - jitter
            log.info(
                "retrying %s in %.1f s (%s)",
                url,
                delay,
                exc,
                extra={"url": url, "attempt": attempt + 1},
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def select_stations(
    station_list: Path, year: int, stations: list[str] | None, country: str | None, all_: bool
) -> list[str]:
    if stations:
        return sorted(set(stations))
    if not country and not all_:
        raise typer.BadParameter("choose what to fetch: --stations ID,..., --country CC or --all")
    active = stations_for_year(read_stations(station_list), year)
    if country:
        active = [s for s in active if s.country == country.upper()]
    return sorted({s.station_id for s in active})


def download(
    year: int,
    out: Path,
    settings: DownloadSettings,
    stations: list[str] | None = None,
    country: str | None = None,
    all_: bool = False,
) -> DownloadSummary:
    """Fetch the station list and the selected station files; return the summary."""
    started = time.monotonic()
    summary = DownloadSummary()
    folder = out / str(year)
    folder.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(settings.download_timeout_s)
    limits = httpx.Limits(max_connections=settings.download_workers)
    with httpx.Client(timeout=timeout, limits=limits, follow_redirects=True) as client:
        station_list = out / "isd-history.csv"
        outcome, _ = _fetch(client, settings.noaa_station_list_url, station_list, settings)
        if outcome == "missing":
            raise RuntimeError(f"station list not found at {settings.noaa_station_list_url}")
        ids = select_stations(station_list, year, stations, country, all_)
        summary.files = len(ids)
        log.info(
            "download: %d stations for %d",
            len(ids),
            year,
            extra={"stations": len(ids), "year": year},
        )
        with (
            ProgressReporter(f"downloading {year}", len(ids), "files", log) as progress,
            ThreadPoolExecutor(max_workers=settings.download_workers) as pool,
        ):
            futures = {
                pool.submit(
                    _fetch,
                    client,
                    f"{settings.noaa_base_url}/{year}/{sid}.csv",
                    folder / f"{sid}.csv",
                    settings,
                ): sid
                for sid in ids
            }
            for future in as_completed(futures):
                sid = futures[future]
                with summary.lock:
                    try:
                        outcome, size = future.result()
                    except Exception as exc:
                        summary.failed[sid] = str(exc)
                        log.warning("failed %s: %s", sid, exc, extra={"station": sid})
                    else:
                        summary.bytes += size
                        if outcome == "missing":
                            summary.missing.append(sid)
                        elif outcome == "skipped":
                            summary.skipped += 1
                        else:
                            summary.downloaded += 1
                progress.advance(1, bytes=summary.bytes, failed=len(summary.failed))
    summary.missing.sort()
    summary.duration_s = round(time.monotonic() - started, 2)
    return summary


def command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to download into (<out>/<year>/<id>.csv).")
    ],
    year: Annotated[
        int | None, typer.Option(help="Year [env MOAA_REPLAY_YEAR, default 2020].")
    ] = None,
    stations: Annotated[
        str | None, typer.Option(help="Comma-separated station ids (USAF+WBAN).")
    ] = None,
    country: Annotated[
        str | None, typer.Option(help="Every station of a FIPS country code, e.g. US, FR.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every station active during the year (~14,000).")
    ] = False,
) -> None:
    """Download NOAA ISD global-hourly CSVs for a year, once.

    Parallel, resumable (complete files are skipped, partial ones resumed), retried with
    backoff; a progress bar on a terminal, JSON log lines otherwise. Prints a JSON summary
    (files, bytes, missing station-years, failures); exits 1 if any file failed.
    Base URLs: MOAA_NOAA_BASE_URL, MOAA_NOAA_STATION_LIST_URL.
    """
    settings = DownloadSettings()
    configure_logging(settings.log_level, settings.log_format, component="download")
    ids = [s.strip() for s in stations.split(",") if s.strip()] if stations else None
    summary = download(year or settings.replay_year, out, settings, ids, country, all_)
    typer.echo(json.dumps(summary.as_dict()))
    if summary.failed:
        raise typer.Exit(1)
