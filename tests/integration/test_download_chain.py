"""The real-data path as the chart's data Job runs it: a local NOAA → ``moaa download`` →
``moaa prepare`` → ``moaa feeder`` → producer → Kafka, every row accounted for.

The station list and station-year files are served by a local HTTP server with faults (one
station-year answers 404, one transfer is cut and resumed). The commands are
:data:`DATA_JOB_DOWNLOAD`, the lines the data Job runs for ``data.source=download``
(``tests/chart/test_data_job.py`` renders the chart and requires exactly these lines, with
``{data}`` = ``/data``).
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from moaa.common.observation import Observation
from moaa.localstack.testing import FakeNoaa

from .conftest import Pipeline, consume_all

pytestmark = pytest.mark.integration

#: The data Job's script for ``data.source=download`` (``--country`` selection).
DATA_JOB_DOWNLOAD = (
    "moaa download --year {year} --country {country} --out {data}/raw",
    "moaa prepare {data}/raw --out {data}/dataset --year {year}",
    "touch {data}/.ready-{year}",
)
YEAR, COUNTRY, DAYS = 2013, "US", 10
EWR, JFK, MISSING = "72502014734", "74486094789", "99999900001"
STATION_LIST = (
    '"USAF","WBAN","STATION NAME","CTRY","STATE","ICAO","LAT","LON","ELEV(M)","BEGIN","END"\n'
    '"725020","14734","NEWARK LIBERTY INTERNATIONAL AP","US","NJ","KEWR","+40.683","-074.169",'
    '"+0002.0","19730101","20230418"\n'
    '"744860","94789","JOHN F KENNEDY INTERNATIONAL AIRPORT","US","NY","KJFK","+40.639",'
    '"-073.764","+0002.7","19730101","20230418"\n'
    '"999999","00001","NOWHERE","US","NY","","+40.0","-074.0","+0001.0","19730101","20230418"\n'
    '"787240","99999","CHOLUTECA","HO","","MHCH","+13.300","-087.183","+0048.0","19730101",'
    '"20230418"\n'
)
#: Rows made bad on purpose in Newark's file, and the dead-letter reason of each.
BAD_ROWS = {
    "summary_report": lambda row: row.replace('"FM-15"', '"SOD"'),
    "tmp_quality_error": lambda row: row.replace('"+0039,1"', '"+0039,3"', 1),
    "bad_date": lambda row: row.replace("2013-01-05T", "2013-13-05T"),
    "field_count": lambda row: row + ',""',
}


def _station_year(sample: Path, sid: str) -> bytes:
    """The first DAYS days of a sample station's year, with BAD_ROWS mixed in for Newark."""
    with gzip.open(sample / f"{sid}.csv.gz", "rt") as fh:
        header, *rows = fh.read().splitlines()
    rows = [r for r in rows if f'"{YEAR}-01-{DAYS + 1:02d}T' > r.split(",")[1]]
    if sid == EWR:
        day5 = next(i for i, r in enumerate(rows) if '"2013-01-05T' in r and '"+0039,1"' in r)
        rows[day5:day5] = [spoil(rows[day5]) for spoil in BAD_ROWS.values()]
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.fixture
def noaa(sample_dir: Path) -> Iterator[FakeNoaa]:
    fake = FakeNoaa()
    fake.files["/isd-history.csv"] = STATION_LIST.encode()
    for sid in (EWR, JFK):
        fake.files[f"/access/{YEAR}/{sid}.csv"] = _station_year(sample_dir, sid)
    fake.cut_once.add(f"/access/{YEAR}/{EWR}.csv")
    with fake.serving():
        yield fake


def test_download_prepare_feed_accounts_for_every_row(noaa: FakeNoaa, kafka_bootstrap: str) -> None:
    data = Path(tempfile.mkdtemp(prefix="moaa-dl-"))  # short: the socket lives in it too
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MOAA_LOG_FORMAT": "json",
        "MOAA_REPLAY_YEAR": str(YEAR),
        "MOAA_NOAA_BASE_URL": f"{noaa.base}/access",
        "MOAA_NOAA_STATION_LIST_URL": f"{noaa.base}/isd-history.csv",
        "MOAA_DOWNLOAD_BACKOFF_S": "0.01",
        "MOAA_PREPARE_WORKERS": "1",
        "MOAA_PREPARE_BATCH_MB": "32",
    }
    pipe = Pipeline(kafka_bootstrap, data / "dataset", data)
    try:
        outputs = []
        for line in DATA_JOB_DOWNLOAD:
            args = shlex.split(line.format(year=YEAR, country=COUNTRY, data=data))
            done = subprocess.run(
                args, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            assert done.returncode == 0, f"{line}:\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
        summary = json.loads(outputs[0].strip().splitlines()[-1])
        assert (summary["downloaded"], summary["missing"], summary["failed"]) == (2, [MISSING], {})
        ewr = f"/access/{YEAR}/{EWR}.csv"
        assert noaa.requests[ewr] == 2  # cut, then fetched again
        assert (data / "raw" / str(YEAR) / f"{EWR}.csv").read_bytes() == noaa.files[ewr]
        assert (data / f".ready-{YEAR}").exists()

        pipe.start_producer()
        feeder = pipe.start_feeder("--tick", "0", "--hours", str(DAYS * 24))
        assert feeder.wait(180) == 0, pipe.log("feeder")

        rows_in = sum(
            len(noaa.files[f"/access/{YEAR}/{sid}.csv"].splitlines()) - 1 for sid in (EWR, JFK)
        )
        observations = consume_all(kafka_bootstrap, pipe.topic, idle_s=3)
        dead = consume_all(kafka_bootstrap, pipe.dlq, idle_s=2)
        assert len(observations) + len(dead) == rows_in  # in = observations + dead letters
        assert Counter(json.loads(m.value())["reason"] for m in dead) == Counter(list(BAD_ROWS))
        ids = {Observation.from_json(m.value()).obs_id for m in observations}
        assert len(ids) == len(observations) == rows_in - len(BAD_ROWS)
        assert {m.key().decode() for m in observations} == {EWR, JFK}
    finally:
        pipe.stop()
        shutil.rmtree(data, ignore_errors=True)
