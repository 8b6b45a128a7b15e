"""The ``moaa`` command loads only the package of the command it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MOAA = str(Path(sys.executable).with_name("moaa"))


def _modules_after(*args: str) -> set[str]:
    """Modules imported by ``moaa <args>`` (run in a fresh interpreter)."""
    code = (
        "import sys; from moaa.common import cli; sys.argv = ['moaa', *sys.argv[1:]]\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return set(done.stderr.split())


def test_a_command_imports_only_its_package() -> None:
    modules = _modules_after("feeder", "--help")
    assert "moaa.feeder.feeder" in modules
    assert not any(m.startswith(("pyspark", "moaa.streaming", "pandas")) for m in modules)


def test_help_lists_every_installed_command() -> None:
    out = subprocess.run([MOAA, "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("feeder", "producer", "stats", "insert", "forecast", "local", "show"):
        assert name in out
