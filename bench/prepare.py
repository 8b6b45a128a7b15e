"""Prepare throughput: ``moaa prepare`` against DuckDB's own read_csv + group-by of the same files.

Both read the same synthetic ISD files (malformed rows included) in the same run:

* reference — DuckDB alone: ``read_csv`` of every file (the header's columns given, all
  as text, so nothing is sniffed) and a group-by station and hour (count and mean
  temperature), to an Arrow table. That is the machine's speed for reading these CSVs; it
  validates nothing and writes nothing;
* moaa — :func:`moaa.dataprep.prepare.prepare` into a fresh folder: every row parsed by
  the rules of ``moaa.common.isd`` (accepted or rejected with its reason and line), staged,
  and indexed by day, as the feeder replays it.

The two run interleaved for ``--rounds`` rounds (3) and the medians count. Targets: moaa
≥ 300 k rows/s and a ratio moaa / reference time ≤ 3. Usage::

    make bench-prepare                     # or:
    .venv/bin/python bench/prepare.py --stations 300 --days 120
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import COLUMNS, synthesize

_REFERENCE = """
SELECT STATION, substr(DATE, 1, 13) AS hour, count(*) AS n,
       avg(TRY_CAST(substr(TMP, 1, 5) AS INTEGER) / 10) AS mean_tmp
FROM read_csv($files, columns = $columns, header = true, auto_detect = false, delim = ',',
              quote = '"', null_padding = true, strict_mode = false)
GROUP BY ALL
"""


def reference(files: list[str], threads: int) -> tuple[float, int]:
    """Seconds of DuckDB's read_csv + group-by of ``files`` (to Arrow), and the rows it read."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    columns = dict.fromkeys(COLUMNS, "VARCHAR")
    try:
        started = time.perf_counter()
        table = con.sql(_REFERENCE, params={"files": files, "columns": columns}).to_arrow_table()
        seconds = time.perf_counter() - started
    finally:
        con.close()
    return seconds, int(sum(table.column("n").to_pylist()))


def ours(src: Path, work: Path, year: int, threads: int) -> tuple[float, dict]:
    out = work / "dataset"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    manifest = prepare(src, out, year, workers=threads)
    return time.perf_counter() - started, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--year", type=int, default=2020)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moaa-bench-prepare-") as tmp:
        work = Path(tmp)
        src = work / "synth"
        synth = synthesize(args.stations, args.year, src, seed=11, days=args.days)
        files = sorted(str(p) for p in src.glob("*.csv"))
        refs: list[float] = []
        moaa: list[float] = []
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            seconds, read = reference(files, args.threads)
            refs.append(seconds)
            seconds, manifest = ours(src, work, args.year, args.threads)
            assert manifest["totals"]["rows"] == synth["rows"]
            moaa.append(seconds)
        ref, our = statistics.median(refs), statistics.median(moaa)
        rows = synth["rows"]
        result = {
            "rows": rows,
            "reference_rows_read": read,
            "files": len(files),
            "stations": args.stations,
            "days": args.days,
            "rounds": args.rounds,
            "threads": args.threads,
            "reference_s": round(ref, 3),
            "moaa_s": round(our, 3),
            "reference_rows_per_s": round(rows / ref),
            "moaa_rows_per_s": round(rows / our),
            "ratio": round(our / ref, 2),
            "ratios_per_round": [round(o / r, 2) for o, r in zip(moaa, refs, strict=True)],
        }
        print(json.dumps(result))
        slice_ = f"{args.stations} synthetic stations × {args.days} days"
        print(f"\nprepare, {rows:,} rows ({slice_}), median of {args.rounds} rounds")
        runs = ", ".join(f"{r:.2f}" for r in refs)
        print(
            f"  DuckDB read_csv + group-by : {ref:7.2f} s {rows / ref:>12,.0f} rows/s (runs {runs})"
        )
        runs = ", ".join(f"{r:.2f}" for r in moaa)
        print(
            f"  moaa prepare               : {our:7.2f} s {rows / our:>12,.0f} rows/s (runs {runs})"
        )
        print(f"  ratio                      : {our / ref:.2f}  (target ≤ 3; ≥ 300 k rows/s)")


if __name__ == "__main__":
    main()
