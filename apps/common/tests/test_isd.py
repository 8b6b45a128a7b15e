"""ISD parser: golden tests on real NOAA rows, rules on hand-made rows, and garbage."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moaa.common.isd import ParseStats, parse_file, parse_lines
from moaa.common.observation import Observation, Rejection

DATA = Path(__file__).parent / "data"
CHOLUTECA = DATA / "78724099999_sample_2001-01-01.csv"
HEADER = (
    '"STATION","DATE","SOURCE","LATITUDE","LONGITUDE","ELEVATION","NAME","REPORT_TYPE",'
    '"CALL_SIGN","QUALITY_CONTROL","WND","CIG","VIS","TMP","DEW","SLP","AA1","REM"'
)
FIELDS = {
    "STATION": "72502014734",
    "DATE": "2020-03-01T05:51:00",
    "SOURCE": "7",
    "LATITUDE": "40.683",
    "LONGITUDE": "-74.169",
    "ELEVATION": "2.0",
    "NAME": "NEWARK LIBERTY INTERNATIONAL AP, NJ US",
    "REPORT_TYPE": "FM-15",
    "CALL_SIGN": "KEWR ",
    "QUALITY_CONTROL": "V020",
    "WND": "270,1,N,0046,1",
    "CIG": "22000,1,9,N",
    "VIS": "016093,1,9,9",
    "TMP": "-0015,1",
    "DEW": "-0033,1",
    "SLP": "10120,1",
    "AA1": "",
    "REM": "",
}


def row(**changes: str) -> str:
    """One CSV line in NOAA style (every non-empty value quoted)."""
    values = {**FIELDS, **changes}
    return ",".join(f'"{v}"' if v else "" for v in values.values())


def parse_one(line: str) -> Observation | Rejection:
    [item] = list(parse_lines([HEADER, line], source="test"))
    return item


# -- golden: real NOAA rows --------------------------------------------------------------


def test_real_rows_all_accepted_with_exact_values() -> None:
    stats = ParseStats()
    items = list(parse_file(CHOLUTECA, stats))
    assert stats.rows == 20 and stats.accepted == 20 and not stats.rejected
    first = items[0]
    assert isinstance(first, Observation)
    assert first.station_id == "78724099999"
    assert first.ts == datetime(2001, 1, 1, 0, 0, tzinfo=UTC)
    assert first.name == "CHOLUTECA, HO"
    assert (first.latitude, first.longitude, first.elevation_m) == (13.3, -87.1833333, 48.0)
    assert first.report_type == "FM-15"
    assert first.source == "4"
    assert (first.temperature_c, first.temperature_quality) == (30.0, "1")
    assert first.dew_point_c == 19.0
    assert first.sea_level_pressure_hpa is None  # 99999,9 on METAR rows
    assert first.wind_speed_ms == 8.7


def test_real_synop_metar_row_carries_pressure() -> None:
    items = [i for i in parse_file(CHOLUTECA) if isinstance(i, Observation)]
    synop = [i for i in items if i.report_type == "SY-MT"]
    assert [i.ts.hour for i in synop] == [15, 18, 21, 3, 6]
    assert synop[0].temperature_c == 29.3
    assert synop[0].dew_point_c == 16.1
    assert synop[0].sea_level_pressure_hpa == 1013.8
    assert synop[0].wind_speed_ms == 8.2


def test_real_rows_temperatures_match_the_file() -> None:
    with CHOLUTECA.open(newline="") as fh:
        expected = [int(r["TMP"].split(",")[0]) / 10 for r in csv.DictReader(fh)]
    got = [i.temperature_c for i in parse_file(CHOLUTECA) if isinstance(i, Observation)]
    assert got == expected


def test_gzipped_file_reads_like_plain(tmp_path: Path) -> None:
    gz = tmp_path / "78724099999.csv.gz"
    gz.write_bytes(gzip.compress(CHOLUTECA.read_bytes()))
    assert list(parse_file(gz)) == list(parse_file(CHOLUTECA))


def test_columns_are_picked_by_name_not_position() -> None:
    names = HEADER.split(",")
    values = next(csv.reader([row()]))
    order = list(reversed(range(len(names))))
    header = ",".join(names[i] for i in order)
    line = ",".join(f'"{values[i]}"' if values[i] else "" for i in order)
    [item] = list(parse_lines([header, line], source="reordered"))
    assert isinstance(item, Observation)
    assert item.temperature_c == -1.5


# -- rules ---------------------------------------------------------------------------------


def test_negative_and_zero_temperatures() -> None:
    assert parse_one(row(TMP="-0015,1")).temperature_c == -1.5  # type: ignore[union-attr]
    assert parse_one(row(TMP="+0000,1")).temperature_c == 0.0  # type: ignore[union-attr]


def test_timestamp_is_utc_and_hour_is_truncated() -> None:
    item = parse_one(row(DATE="2020-03-01T05:51:00"))
    assert isinstance(item, Observation)
    assert item.ts.tzinfo is UTC
    assert item.hour == datetime(2020, 3, 1, 5, 0, tzinfo=UTC)


def test_missing_sentinels_become_none() -> None:
    item = parse_one(row(TMP="+9999,9", DEW="+9999,9", SLP="99999,9", WND="999,9,9,9999,9"))
    assert isinstance(item, Observation)
    assert item.temperature_c is None
    assert item.dew_point_c is None
    assert item.sea_level_pressure_hpa is None
    assert item.wind_speed_ms is None


def test_calm_wind_is_zero_speed() -> None:
    item = parse_one(row(WND="999,9,C,0000,1"))
    assert isinstance(item, Observation) and item.wind_speed_ms == 0.0


@pytest.mark.parametrize("quality", ["2", "3", "6", "7"])
def test_flagged_temperature_rejects_the_row(quality: str) -> None:
    item = parse_one(row(TMP=f"+0250,{quality}"))
    assert isinstance(item, Rejection)
    assert item.reason == "tmp_quality_error"
    assert item.line == 2


@pytest.mark.parametrize("quality", ["0", "1", "4", "5", "9", "A", "C", "I", "M", "P", "R", "U"])
def test_good_temperature_quality_codes_are_kept(quality: str) -> None:
    item = parse_one(row(TMP=f"+0250,{quality}"))
    assert isinstance(item, Observation) and item.temperature_c == 25.0


def test_flagged_secondary_fields_are_blanked_not_rejected() -> None:
    item = parse_one(row(DEW="+0100,3", SLP="10120,7", WND="270,1,N,0046,2"))
    assert isinstance(item, Observation)
    assert (item.dew_point_c, item.sea_level_pressure_hpa, item.wind_speed_ms) == (None, None, None)


@pytest.mark.parametrize("report_type", ["SOD", "SOM", "SOD  ", " SOM"])
def test_summary_reports_never_count(report_type: str) -> None:
    item = parse_one(row(REPORT_TYPE=report_type, DATE="2020-03-01T23:59:00"))
    assert isinstance(item, Rejection) and item.reason == "summary_report"


def test_report_type_and_call_sign_are_trimmed() -> None:
    item = parse_one(row(REPORT_TYPE="FM-15 "))
    assert isinstance(item, Observation) and item.report_type == "FM-15"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"STATION": "7250201473"}, "bad_station"),
        ({"DATE": "2020-02-30T00:00:00"}, "bad_date"),
        ({"DATE": "2020-03-01 05:51"}, "bad_date"),
        ({"LATITUDE": "91.5"}, "bad_latitude"),
        ({"LONGITUDE": "east"}, "bad_longitude"),
        ({"TMP": "+0250"}, "bad_tmp"),
        ({"TMP": "25.0,1"}, "bad_tmp"),
        ({"TMP": "+0700,1"}, "tmp_out_of_range"),
    ],
)
def test_malformed_fields_are_rejected_with_a_reason(changes: dict[str, str], reason: str) -> None:
    item = parse_one(row(**changes))
    assert isinstance(item, Rejection)
    assert item.reason == reason
    assert item.detail and item.raw


def test_unknown_elevation_does_not_drop_the_row() -> None:
    item = parse_one(row(ELEVATION="-999.9"))
    assert isinstance(item, Observation) and item.elevation_m is None


def test_line_numbers_point_at_the_bad_line() -> None:
    lines = [HEADER, row(), '"broken', row(TMP="+0250,3"), "", row()]
    items = list(parse_lines(lines, source="f.csv"))
    assert [type(i).__name__ for i in items] == [
        "Observation",
        "Rejection",
        "Rejection",
        "Observation",
    ]
    assert [i.line for i in items if isinstance(i, Rejection)] == [3, 4]
    assert all(i.source == "f.csv" for i in items if isinstance(i, Rejection))


def test_wrong_field_count_and_nul_and_bad_utf8() -> None:
    lines: list[bytes] = [
        HEADER.encode(),
        row().encode() + b',"extra"',
        row().encode().replace(b"NEWARK", b"NEW\x00ARK"),
        row().encode().replace(b"NEWARK", b"NEW\xffARK"),
    ]
    reasons = [i.reason for i in parse_lines(lines, source="b") if isinstance(i, Rejection)]
    assert reasons == ["field_count", "bad_encoding", "bad_encoding"]


def test_header_without_required_columns_rejects_every_row() -> None:
    stats = ParseStats()
    items = list(parse_lines(['"STATION","DATE"', '"x","y"', '"z","w"'], source="h", stats=stats))
    assert all(isinstance(i, Rejection) and i.reason == "bad_header" for i in items)
    assert stats.rows == 2 and stats.rejected_total == 2


def test_observation_ids_are_stable_and_distinct() -> None:
    a1, a2 = parse_one(row()), parse_one(row())
    b = parse_one(row(TMP="-0016,1"))
    assert (
        isinstance(a1, Observation) and isinstance(a2, Observation) and isinstance(b, Observation)
    )
    assert a1.obs_id == a2.obs_id != b.obs_id
    assert a1.obs_id.startswith("72502014734-20200301055100-")


def test_record_round_trip() -> None:
    item = parse_one(row())
    assert isinstance(item, Observation)
    record = item.to_record()
    assert record["ts"] == "2020-03-01T05:51:00Z"
    assert Observation.from_record(record) == item
    assert Observation.from_json(item.to_json()) == item


# -- garbage never raises, and counts reconcile -----------------------------------------

garbage_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
mutated_rows = st.builds(
    lambda field, junk: row(**{field: junk}),
    st.sampled_from(sorted(FIELDS)),
    st.text(max_size=40),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.one_of(garbage_text, mutated_rows, st.just(row())), max_size=30))
def test_garbage_never_raises_and_counts_reconcile(lines: list[str]) -> None:
    stats = ParseStats()
    items = list(parse_lines([HEADER, *lines], source="fuzz", stats=stats))
    lines_in = sum(1 for line in lines if line.rstrip("\r\n").strip())
    assert stats.rows == len(items) == lines_in
    assert stats.rows == stats.accepted + stats.rejected_total
    assert stats.accepted == sum(isinstance(i, Observation) for i in items)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_binary_garbage_never_raises(chunks: list[bytes]) -> None:
    stats = ParseStats()
    data = io.BytesIO(b"\n".join([HEADER.encode(), *chunks]))
    items = list(parse_lines(data, source="bin", stats=stats))
    assert stats.rows == len(items) == stats.accepted + stats.rejected_total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=10))
def test_garbage_header_never_raises(lines: list[str]) -> None:
    stats = ParseStats()
    items = list(parse_lines(lines, source="hdr", stats=stats))
    assert stats.rows == len(items) == stats.accepted + stats.rejected_total
