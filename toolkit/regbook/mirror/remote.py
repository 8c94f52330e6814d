"""The edge that talks to an MLflow tracking server, through MLflow's own client.

    with connect("http://127.0.0.1:5000") as remote:
        remote.versions("credit-risk")        # every version of a registered model
        remote.counts                         # requests sent: {"read": n, "write": m}

The client (``mlflow-skinny``) is imported here and only here, when a command needs it;
without it the command says how to install it. Every MLflow or network error becomes one
``InputError`` line naming the server.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError, cut

INSTALL_HINT = "the MLflow client is not installed: pip install 'regbook[mlflow]'"
# Quiet, offline-friendly defaults for the client; a user's own settings win.
CLIENT_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
# Endpoints that read although they are POSTed.
_READ_POSTS = ("/search", "/get")


def public_uri(uri: str) -> str:
    """The tracking URI without a user name or password: what is printed and recorded."""
    parts = urllib.parse.urlsplit(uri.strip())
    if parts.username is None and parts.password is None:
        return uri.strip()
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@dataclass
class RequestCounter:
    """HTTP requests sent to the server, reads and writes apart."""

    read: int = 0
    write: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str, url: str) -> None:
        path = urllib.parse.urlsplit(url).path
        reading = method.upper() in ("GET", "HEAD") or (
            method.upper() == "POST" and path.rstrip("/").endswith(_READ_POSTS)
        )
        with self.lock:
            if reading:
                self.read += 1
            else:
                self.write += 1

    def to_json(self) -> dict[str, int]:
        return {"read": self.read, "write": self.write}


def load_client() -> Any:
    """MLflow's client module, or an InputError saying how to install it."""
    for name, value in CLIENT_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import mlflow.tracking  # noqa: F401
        from mlflow import MlflowClient
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return MlflowClient


class Remote:
    """One tracking server: the few calls the mirror makes, each counted, each failure
    one line."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.shown = public_uri(uri)
        self.counts = RequestCounter()
        client_class = load_client()
        self.client = client_class(tracking_uri=uri, registry_uri=uri)
        from mlflow.exceptions import MlflowException

        self._error_type: type[Exception] = MlflowException

    def fail(self, err: Exception) -> InputError:
        text = getattr(err, "message", None) or str(err)
        return InputError(f"MLflow at {self.shown}: {cut(' '.join(str(text).split()), 240)}")

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``client.NAME(*args, **kwargs)``, its errors as InputError."""
        try:
            return getattr(self.client, name)(*args, **kwargs)
        except self._error_type as err:
            raise self.fail(err) from None
        except OSError as err:
            raise self.fail(err) from None

    def is_missing(self, err: InputError) -> bool:
        return "RESOURCE_DOES_NOT_EXIST" in str(err) or "not found" in str(err).lower()

    # -- reads ------------------------------------------------------------------------

    def registered_model(self, name: str) -> Any | None:
        try:
            return self.call("get_registered_model", name)
        except InputError as err:
            if self.is_missing(err):
                return None
            raise

    def versions(self, name: str) -> list[Any]:
        """Every version of the registered model ``name``, all pages."""
        out: list[Any] = []
        token = None
        escaped = name.replace("'", "\\'")
        while True:
            page = self.call(
                "search_model_versions",
                f"name='{escaped}'",
                max_results=10000,
                page_token=token,
            )
            out.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return out

    def experiment_id(self, name: str, *, create: bool) -> str | None:
        found = self.call("get_experiment_by_name", name)
        if found is not None:
            return str(found.experiment_id)
        if not create:
            return None
        return str(self.call("create_experiment", name))

    def upload(self, artifact_uri: str, path: Path, under: str) -> None:
        """The file or folder ``path`` logged under ``under`` in the artifact store at
        ``artifact_uri`` (a run's own, from its answer: no request to look it up)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            repo = get_artifact_repository(artifact_uri, tracking_uri=self.uri)
            if path.is_dir():
                repo.log_artifacts(str(path), under)
            else:
                repo.log_artifact(str(path), under)
        except self._error_type as err:
            raise self.fail(err) from None
        except OSError as err:
            raise self.fail(err) from None

    def download(self, source: str, into: Path) -> Path:
        """The artefact at ``source`` downloaded into the folder ``into``."""
        from mlflow.artifacts import download_artifacts

        try:
            got = download_artifacts(artifact_uri=source, dst_path=str(into), tracking_uri=self.uri)
        except self._error_type as err:
            raise self.fail(err) from None
        except OSError as err:
            raise self.fail(err) from None
        return Path(got)


def probe(uri: str, timeout: float = 10.0) -> None:
    """Refuse at once, in one line, when an http(s) server does not answer its health
    check: before anything is read or written."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    health = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    request = urllib.request.Request(health, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            answer.read(64)
    except urllib.error.HTTPError:
        return  # it answers: a proxy in front may not serve /health
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise InputError(
            f"MLflow at {public_uri(uri)} does not answer ({cut(str(reason), 120)}); "
            "nothing was written"
        ) from None


@contextmanager
def connect(uri: str) -> Iterator[Remote]:
    """A ``Remote`` for ``uri`` whose HTTP requests are counted while it is open."""
    if not uri or not uri.strip():
        raise InputError("tracking_uri is empty")
    load_client()
    probe(uri)
    remote = Remote(uri.strip())
    import requests

    original = requests.Session.request

    def counted(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        remote.counts.add(method, str(url))
        return original(session, method, url, *args, **kwargs)

    requests.Session.request = counted  # type: ignore[method-assign,assignment]
    try:
        yield remote
    finally:
        requests.Session.request = original  # type: ignore[method-assign]
