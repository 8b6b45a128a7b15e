"""Missing prerequisites fail with a message that says what to install."""

from __future__ import annotations

import pytest

from moaa.localstack.services import LocalStack, StackError
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.toolchain import Toolchain, ToolchainError


def test_missing_java_is_named(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="`java` is not on PATH: install a Java 17"):
        LocalStack(LocalStackSettings(state_dir=tmp_path, min_free_disk_mb=1)).up()


def test_missing_go_is_named(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="`go` is not on PATH"):
        Toolchain(tmp_path / "cache").ferretdb()
    assert not (tmp_path / "cache" / "ferretdb-v1.24.2").exists()  # nothing half-built left
