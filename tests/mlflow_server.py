"""A real ``mlflow server`` for the tests: 127.0.0.1, a SQLite backend store and a local
artifact root in a temporary folder, one per test session, stopped at the end
(``regbook.mirror.server``, which the demo starts too). In CI (``CI`` set) a missing
MLflow fails the tests instead of skipping them."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from regbook.mirror.server import QUIET, LocalServer

HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(
    not HAVE_MLFLOW and not os.environ.get("CI"),
    reason="MLflow is not installed (pip install -e '.[test]' installs it; CI must)",
)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert HAVE_MLFLOW, "MLflow is required in CI: pip install -e '.[test]'"
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    server = LocalServer.start(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server.uri
    finally:
        server.stop()
