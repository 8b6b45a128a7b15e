"""``moaa download`` against a real local HTTP server playing NOAA, faults included."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from moaa.dataprep.download import DownloadSettings, download
from moaa.localstack.testing import FakeNoaa

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample" / "2013"
EWR, JFK = "72502014734", "74486094789"


@pytest.fixture
def noaa() -> Iterator[FakeNoaa]:
    fake = FakeNoaa()
    history = (
        '"USAF","WBAN","STATION NAME","CTRY","STATE","ICAO","LAT","LON","ELEV(M)","BEGIN","END"\n'
        '"725020","14734","NEWARK LIBERTY INTERNATIONAL AP","US","NJ","KEWR","+40.683","-074.169","+0002.0","19730101","20230418"\n'
        '"744860","94789","JOHN F KENNEDY INTERNATIONAL AIRPORT","US","NY","KJFK","+40.639","-073.764","+0002.7","19730101","20230418"\n'
        '"999999","00001","NOWHERE","US","NY","","+40.0","-074.0","+0001.0","19730101","20230418"\n'
        '"787240","99999","CHOLUTECA","HO","","MHCH","+13.300","-087.183","+0048.0","19730101","20230418"\n'
    )
    fake.files["/isd-history.csv"] = history.encode()
    for sid in (EWR, JFK):
        fake.files[f"/access/2013/{sid}.csv"] = gzip.decompress(
            (SAMPLE / f"{sid}.csv.gz").read_bytes()
        )
    with fake.serving():
        yield fake


def _settings(fake: FakeNoaa) -> DownloadSettings:
    return DownloadSettings(
        noaa_base_url=f"{fake.base}/access",
        noaa_station_list_url=f"{fake.base}/isd-history.csv",
        download_workers=3,
        download_retries=3,
        download_backoff_s=0.01,
        download_timeout_s=5,
    )


def test_country_selection_with_404_cut_and_retry(noaa: FakeNoaa, tmp_path: Path) -> None:
    noaa.cut_once.add(f"/access/2013/{EWR}.csv")
    noaa.fail_once.add(f"/access/2013/{JFK}.csv")
    summary = download(2013, tmp_path, _settings(noaa), country="US")

    assert summary.files == 3
    assert summary.downloaded == 2
    assert summary.missing == ["99999900001"]  # a 404: NOAA has no such station-year
    assert summary.failed == {}
    for sid in (EWR, JFK):
        assert (tmp_path / "2013" / f"{sid}.csv").read_bytes() == noaa.files[
            f"/access/2013/{sid}.csv"
        ]
    assert not list((tmp_path / "2013").glob("*.part"))
    # the cut transfer was resumed from where it stopped, not restarted
    assert [p for p, _ in noaa.ranges] == [f"/access/2013/{EWR}.csv"]
    assert noaa.requests[f"/access/2013/{JFK}.csv"] == 2  # 503, then success
    assert summary.bytes == sum(len(noaa.files[f"/access/2013/{s}.csv"]) for s in (EWR, JFK))


def test_second_run_skips_complete_files(noaa: FakeNoaa, tmp_path: Path) -> None:
    download(2013, tmp_path, _settings(noaa), stations=[EWR, JFK])
    before = noaa.requests.copy()
    again = download(2013, tmp_path, _settings(noaa), stations=[EWR, JFK])
    assert again.skipped == 2 and again.downloaded == 0 and again.bytes == 0
    assert noaa.requests == before  # nothing fetched again (the station list is kept too)


def test_partial_file_is_resumed(noaa: FakeNoaa, tmp_path: Path) -> None:
    body = noaa.files[f"/access/2013/{JFK}.csv"]
    (tmp_path / "2013").mkdir()
    (tmp_path / "2013" / f"{JFK}.csv.part").write_bytes(body[:1000])
    summary = download(2013, tmp_path, _settings(noaa), stations=[JFK])
    assert summary.downloaded == 1 and summary.bytes == len(body) - 1000
    assert (tmp_path / "2013" / f"{JFK}.csv").read_bytes() == body
    assert noaa.ranges == [(f"/access/2013/{JFK}.csv", "bytes=1000-")]


def test_persistent_failure_is_reported_not_fatal(noaa: FakeNoaa, tmp_path: Path) -> None:
    settings = _settings(noaa)
    path = f"/access/2013/{EWR}.csv"

    class AlwaysFail(set):  # type: ignore[type-arg]
        def __contains__(self, item: object) -> bool:
            return item == path

        def discard(self, item: object) -> None:
            pass

    noaa.fail_once = AlwaysFail()
    summary = download(2013, tmp_path, settings, stations=[EWR, JFK])
    assert summary.downloaded == 1
    assert list(summary.failed) == [EWR] and "503" in summary.failed[EWR]
    assert noaa.requests[path] == settings.download_retries + 1


def test_no_selection_is_a_clear_error(noaa: FakeNoaa, tmp_path: Path) -> None:
    import typer

    with pytest.raises(typer.BadParameter, match="--stations"):
        download(2013, tmp_path, _settings(noaa))
