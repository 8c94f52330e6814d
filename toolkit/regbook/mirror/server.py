"""A local ``mlflow server``: 127.0.0.1, a SQLite backend store and a local artifact
root in one folder. The demo pushes to one; the tests and benchmarks run against one.

    server = LocalServer.start(folder)    # returns once its health check answers
    server.uri                             # http://127.0.0.1:PORT
    server.stop()                          # the server and the workers it started
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from regbook.core.errors import InputError

# No telemetry and no network calls that could hang a machine without network.
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalServer:
    process: subprocess.Popen[bytes]
    uri: str
    log: Path

    @classmethod
    def start(cls, folder: Path, timeout: float = 180.0, workers: int = 1) -> LocalServer:
        """Start ``mlflow server`` storing into ``folder`` (its log in server.log there),
        with ``workers`` worker processes; InputError if it exits or does not answer
        within ``timeout`` seconds."""
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = folder / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                 "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                 "--artifacts-destination", str(folder / "artifacts"), "--workers", str(workers)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **QUIET},
                start_new_session=True,  # its own process group: stop() ends its workers
            )  # fmt: skip
        server = cls(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(server.uri + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return server
            except OSError:
                time.sleep(0.3)
        server.stop()
        raise InputError(f"the local MLflow server did not start; see {log}")

    def stop(self) -> None:
        """Stop the server and the workers it started."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
