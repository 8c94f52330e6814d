"""A real ``mlflow server`` for the tests: 127.0.0.1, a SQLite backend store and a local
artifact root in a temporary folder, one per test session, stopped at the end. In CI
(``CI`` set) a missing MLflow fails the tests instead of skipping them."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
# No telemetry and no network calls that could hang a machine without network.
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
}
needs_mlflow = pytest.mark.skipif(
    not HAVE_MLFLOW and not os.environ.get("CI"),
    reason="MLflow is not installed (pip install -e '.[test]' installs it; CI must)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``mlflow server`` storing into ``folder``; its process and URI once it
    answers its health check."""
    assert HAVE_MLFLOW, "MLflow is required in CI: pip install -e '.[test]'"
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "server.log").open("wb")
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **QUIET},
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, uri
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"mlflow server did not start in {timeout:.0f} s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the workers it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    process, uri = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield uri
    finally:
        stop_server(process)
