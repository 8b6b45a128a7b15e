"""The vectorized parse against the reference parser: identical observations and rejects.

Each case parses the same file with :func:`moaa.common.isd.parse_file` (the reference)
and with :mod:`moaa.dataprep.vectorized`, and requires the same JSON, item by item: the
same accepted values and ``obs_id``, the same rejection reasons, details and line numbers.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moaa.common.isd import parse_file
from moaa.common.observation import Observation
from moaa.dataprep.synth import synthesize
from moaa.dataprep.vectorized import parse_batch, read_source

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample" / "2013"
with gzip.open(SAMPLE / "72502014734.csv.gz", "rt") as _fh:
    HEADER, BASE = _fh.readline().rstrip("\n"), _fh.readline().rstrip("\n")
# The sample's first row as fields (NAME holds a comma, the last field is empty).
BASE_FIELDS = [f.strip('"') for f in BASE.replace('","', "\x1f").split("\x1f")]
BASE_FIELDS[-1:] = BASE_FIELDS[-1].split('",')


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def _vectorized(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> dict[str, list[bytes]]:
    table, counts = parse_batch(con, [read_source(p) for p in paths], 2013)
    out = {}
    for path in paths:
        rows = table.filter(pc.equal(table.column("source_file"), path.name)).sort_by("seq")
        out[path.name] = rows.column("record").to_pylist()
        assert counts[path.name].rows == len(out[path.name])
    return out


def _assert_same(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> int:
    got = _vectorized(con, paths)
    rows = 0
    for path in paths:
        expected = [item.to_json() for item in parse_file(path)]
        assert got[path.name] == expected, path.name
        rows += len(expected)
    return rows


def test_bundled_sample_is_identical(con: duckdb.DuckDBPyConnection) -> None:
    assert _assert_same(con, sorted(SAMPLE.glob("*.csv.gz"))) == 17409


def test_synth_with_malformed_rows_is_identical(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    manifest = synthesize(12, 2020, tmp_path, seed=5, malformed_rate=0.1, days=7)
    assert sum(manifest["expected"]["rejected"].values()) > 50
    assert _assert_same(con, sorted(tmp_path.glob("*.csv"))) == manifest["rows"]


def test_unreadable_dates_take_the_hour_of_the_row_before(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    def line(date: str) -> str:
        fields = list(BASE_FIELDS)
        fields[1] = date
        return ",".join(f'"{v}"' if v else "" for v in fields)

    (tmp_path / "a.csv").write_text(
        "\n".join([HEADER, line("x"), line("2013-01-01T05:51:00"), line("y"),
                   line("2013-01-01T07:00:00"), line("z")]) + "\n"
    )  # fmt: skip
    (tmp_path / "b.csv").write_text(f"{HEADER}\n{line('never')}\n")
    table, _ = parse_batch(con, [read_source(tmp_path / n) for n in ("a.csv", "b.csv")], 2013)
    hours = {
        (r["source_file"], r["seq"]): r["hour"].hour if r["source_file"] == "a.csv" else r["hour"]
        for r in table.to_pylist()
    }
    assert [hours["a.csv", n] for n in range(2, 7)] == [5, 5, 5, 7, 7]
    assert hours["b.csv", 2] == datetime(2013, 1, 1, tzinfo=UTC)
    days = set(table.column("day").to_pylist())
    assert days == {"2013-01-01"}


_TRICKY = [
    "", " ", "+9999,9", "+0039,2", "+0039,7", "-0932,1", "-0933,1", "+0618,1", "+0619,1",
    "-0000,1", "+0039,", "+0039,,", "+039,1", "99999,9", "10120,3", "10120,1", "0,1",
    "1234567890123,1", "270,1,N,9999,9", "270,1,N,0046,7", "270,1,N,0046,1", "270,1,N,²,1",
    "40.683", "-90.0", "90.0001", "180", "-180.5", " 40.683 ", "1e1", "nan", "inf", "0.00001",
    "-0.0", "+040.683", ".5", "5.", "1_0", "2013-02-29T00:00:00", "2012-02-29T23:59:59",
    "2013-01-01T24:00:00", "0000-01-01T00:00:00", "0999-01-01T00:00:00",
    "2013-01-01T05:51:60", "2013-1-01T05:51:00", "SOD", "SOM ", " SOD", "FM-15", "7250201473",
    "72502014734 ", "7250201473a", "abc\\", 'a"b', "a,b", "\t72502014734", "٣", "²", "é",
    "\x00", "\x1f", "\x7f", "-0450.1", "9000.0", "9000.1", "-999.9", "NEWARK, NJ \\ US", "1,,2", ",,", "x,,", " 10120,1", "10120,1 ", "+0039,1 ", " FM-15",
]  # fmt: skip
_value = st.one_of(
    st.sampled_from(_TRICKY),
    st.text(alphabet=st.sampled_from(list('0123456789+-.,:T "\\aZé٣²\t\x1f\r')), max_size=12),
)
_field = st.tuples(
    st.integers(0, len(BASE_FIELDS) - 1), _value, st.sampled_from(["quoted", "bare", "stray"])
)


def _render(changes: list[tuple[int, str, str]], width: int) -> str:
    fields = [f'"{v}"' if v else "" for v in BASE_FIELDS]
    for index, value, style in changes:
        quoted = f'"{value}"' if style == "quoted" else value
        fields[index] = f'{quoted}"' if style == "stray" else quoted
    return ",".join((fields + ['""'] * width)[: len(BASE_FIELDS) + width])


_line = st.one_of(
    st.builds(_render, st.lists(_field, max_size=4), st.sampled_from([0, 0, 0, -1, 1])),
    st.text(max_size=40),
    st.just(""),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_line, min_size=1, max_size=25),
    endings=st.sampled_from(["\n", "\r\n"]),
    garbage=st.sampled_from([b"", b"\xff\xfe bad utf-8\n", b"\x00\n"]),
)
def test_generated_malformed_lines_are_identical(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    lines: list[str],
    endings: str,
    garbage: bytes,
) -> None:
    path = tmp_path / "gen.csv"
    body = endings.join([HEADER, *(ln.replace("\n", " ") for ln in lines)]).encode()
    path.write_bytes(body + b"\n" + garbage + BASE.encode() + b"\n")
    _assert_same(con, [path])


def test_accepted_records_decode_as_observations(con: duckdb.DuckDBPyConnection) -> None:
    table, _ = parse_batch(con, [read_source(SAMPLE / "74486094789.csv.gz")], 2013)
    for record, hour in zip(
        table.column("record").to_pylist()[:500],
        table.column("hour").to_pylist()[:500],
        strict=True,
    ):
        assert Observation.from_json(record).hour == hour
