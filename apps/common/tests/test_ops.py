"""A component whose worker thread dies of an unhandled error exits non-zero, at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import threading, time
    from moaa.common.logs import configure_logging
    from moaa.common.ops import run_component

    configure_logging("INFO", "json", component="victim")

    def run():
        threading.Thread(target=lambda: {}["missing"], name="worker").start()
        time.sleep(60)  # the main loop would go on for ever

    run_component("victim", 0, lambda: (True, "ok"), run, lambda: None)
    """
)


def test_an_unhandled_error_in_a_thread_ends_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    fatal = [line for line in lines if line["level"] == "CRITICAL"]
    assert fatal, proc.stdout + proc.stderr
    assert fatal[0]["message"] == "victim: unhandled KeyError in thread worker; exiting"
    assert fatal[0]["crashed_thread"] == "worker" and "KeyError" in fatal[0]["exc_info"]


def test_a_thread_that_exits_cleanly_does_not() -> None:
    script = _SCRIPT.replace('{}["missing"]', "None").replace("time.sleep(60)", "time.sleep(0.5)")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
