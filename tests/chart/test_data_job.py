"""The data Job of ``data.source=download`` runs the commands the download-chain test runs.

``tests/integration/test_download_chain.py`` runs :data:`DATA_JOB_DOWNLOAD` against a local
NOAA, through prepare, the feeder and the producer to Kafka; here the chart must render
exactly those lines, with ``{data}`` = the Job's ``/data`` volume.
"""

from __future__ import annotations

from typing import Any

from integration.test_download_chain import DATA_JOB_DOWNLOAD

from .conftest import Helm


def _data_job(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    [job] = [
        o
        for o in rendered
        if o["kind"] == "Job"
        and o["metadata"]["labels"].get("app.kubernetes.io/component") == "data"
    ]
    return job


def test_download_job_runs_the_tested_commands(helm: Helm) -> None:
    rendered = helm.template(
        "default",
        "--set", "data.source=download", "--set", "data.download.country=FR",
        "--set", "replay.year=2020",
    )  # fmt: skip
    job = _data_job(rendered)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-ec"]
    script = [line.strip() for line in container["args"][0].splitlines() if line.strip()]
    assert script == [
        line.format(year=2020, country="FR", data="/data") for line in DATA_JOB_DOWNLOAD
    ]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MOAA_REPLAY_YEAR"] == "2020"
