"""The bundled real sample: reproducible from its source, and read like any NOAA file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from moaa.common.isd import ParseStats, parse_file

STATIONS = {"72502014734": 8703, "74486094789": 8706}


def test_sample_parses_completely(repo_root: Path) -> None:
    for station, rows in STATIONS.items():
        stats = ParseStats()
        items = list(
            parse_file(repo_root / "data" / "sample" / "2013" / f"{station}.csv.gz", stats)
        )
        assert stats.rows == rows == stats.accepted, stats.rejected
        assert {i.station_id for i in items} == {station}  # type: ignore[union-attr]
        assert all(i.ts.year == 2013 for i in items)  # type: ignore[union-attr]


def test_sample_is_reproduced_byte_for_byte(
    repo_root: Path, shared_dir: Path, tmp_path: Path
) -> None:
    script = repo_root / "data" / "sample" / "convert_nyc2013.py"
    subprocess.run(
        [sys.executable, str(script), "--shared", str(shared_dir), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for station in STATIONS:
        committed = (repo_root / "data" / "sample" / "2013" / f"{station}.csv.gz").read_bytes()
        assert (tmp_path / f"{station}.csv.gz").read_bytes() == committed
