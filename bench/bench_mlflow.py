"""The MLflow mirror against a local ``mlflow server`` (SQLite store, local artifact
root), side by side in one run:

- the first ``regbook mlflow push`` of 1,000 sealed versions: goal <= 60 s, and no worse
  than MLflow's own client creating the same 1,000 versions one by one in a loop (a run,
  its metrics and parameters, the artefact, the registered version with its tags);
- a no-op re-push of the 1,000: <= 5 s, and no write request;
- ``regbook mlflow check --no-artefacts`` over the 1,000: <= 5 s.

The request counts (reads and writes) of each regbook command are recorded too.

``mlflow_one_shot_create(store_dir)`` times MLflow's own one-shot registration: a fresh
``python -c`` process that imports mlflow and creates one model version in a
SQLite-backed store already holding 10,000 versions of a model (built once, cached in
``store_dir``).

    python bench/run.py mlflow
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import OUT, TESTS, clean_env, generate, regbook_command  # noqa: E402
from measure import row, run_child  # noqa: E402
from regbook.mirror.server import QUIET, LocalServer  # noqa: E402

sys.path.insert(0, str(TESTS))

VERSIONS = 1000
SERVER_WORKERS = 2
MODELS = 10
TARGET_PUSH_S = 60.0
TARGET_NOOP_S = 5.0
TARGET_CHECK_S = 5.0
BIG_STORE_VERSIONS = 10_000
BIG_MODEL = "big-model"

# MLflow's own client, one version at a time, as a team's script would register them.
_LOOP = """\
import json, sys
from pathlib import Path
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
uri, listing = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
experiment = c.create_experiment("mlflow-loop")
made = set()
for v in listing:
    run = c.create_run(experiment, tags={"mlflow.source.git.commit": v["code_commit"]})
    c.log_batch(run.info.run_id, metrics=[Metric(k, x, 0, 0) for k, x in v["metrics"].items()],
                params=[Param(k, x) for k, x in v["params"].items()])
    c.log_artifact(run.info.run_id, v["path"], "model")
    c.set_terminated(run.info.run_id)
    if v["model"] not in made:
        c.create_registered_model(v["model"])
        made.add(v["model"])
    c.create_model_version(v["model"], run.info.artifact_uri + "/model", run_id=run.info.run_id,
                           tags=v["tags"], await_creation_for=0)
"""


def _listing(root: Path, out: Path) -> None:
    """What the loop registers: the same versions, artefacts and tags as the push, under
    model names of their own."""
    from regbook.core.workspace import Workspace
    from regbook.mirror.mapping import run_metrics, version_tags
    from regbook.mirror.push import artefact_path
    from regbook.registry.snapshot import CARD_SHEETS, open_registry

    ws = Workspace.load(root)
    snapshot = open_registry(ws, sheets=CARD_SHEETS)
    listing = [
        {
            "model": "loop-" + s.model,
            "code_commit": s.payload["code_commit"],
            "metrics": run_metrics(s),
            "params": s.payload.get("params", {}),
            "path": str(artefact_path(ws, s)),
            "tags": version_tags(snapshot, s),
        }
        for s in snapshot.registry.versions.values()
    ]
    out.write_text(json.dumps(listing))


def _regbook(root: Path, *args: str) -> tuple[float, dict]:
    sample = run_child(
        [*regbook_command(), "--workspace", str(root), "mlflow", *args, "--json"],
        env={**clean_env(), **QUIET},
    )
    if sample.returncode not in (0, 1):
        raise RuntimeError(f"regbook mlflow {args[0]} exited {sample.returncode}: {sample.stderr}")
    return sample.seconds, json.loads(sample.stdout)


def run(workdir: Path) -> list[dict]:
    root = workdir / "ws"
    generate(VERSIONS, root, models=MODELS)
    # A server as a team would run it: a worker per core (the loop below is sequential,
    # one request at a time, so it gains nothing from the second).
    server = LocalServer.start(workdir / "mlflow", workers=SERVER_WORKERS)
    uri = server.uri
    rows = []
    try:
        listing = workdir / "listing.json"
        _listing(root, listing)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _LOOP, uri, str(listing)],
            check=True, env={**clean_env(), **QUIET}, capture_output=True,
        )  # fmt: skip
        loop_s = time.perf_counter() - started
        push_s, pushed = _regbook(root, "push", "--tracking-uri", uri)
        assert len(pushed["created"]) == VERSIONS, "the push did not create every version"
        noop_s, again = _regbook(root, "push", "--tracking-uri", uri)
        check_s, report = _regbook(root, "check", "--tracking-uri", uri, "--no-artefacts")
        assert report["ok"], report["findings"][:3]
        req = pushed["requests"]
        rows += [
            row(f"MLflow client loop: {VERSIONS} versions one by one", loop_s, "s"),
            row(
                f"mlflow push, first, {VERSIONS} versions ({req['read']} reads, "
                f"{req['write']} writes)",
                push_s, "s", f"<= {TARGET_PUSH_S:.0f} s and <= loop",
                push_s <= TARGET_PUSH_S and push_s <= loop_s,
            ),
            row(
                f"mlflow push, no-op ({again['requests']['read']} reads, "
                f"{again['requests']['write']} writes)",
                noop_s, "s", f"<= {TARGET_NOOP_S:.0f} s, 0 writes",
                noop_s <= TARGET_NOOP_S and again["requests"]["write"] == 0,
            ),
            row(
                f"mlflow check --no-artefacts ({report['requests']['read']} reads)",
                check_s, "s", f"<= {TARGET_CHECK_S:.0f} s", check_s <= TARGET_CHECK_S,
            ),
        ]  # fmt: skip
    finally:
        server.stop()
    one_shot = mlflow_one_shot_create(OUT / "mlflow-10k")
    rows.append(row(f"MLflow one-shot create_model_version, {BIG_STORE_VERSIONS} in store",
                    one_shot, "s"))  # fmt: skip
    return rows


# --- MLflow's own one-shot registration into a big store ------------------------------

_FILL = """\
import sys
from mlflow import MlflowClient
uri, artefact, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
if start == 0:
    c.create_registered_model("MODEL")
for i in range(start, count):
    c.create_model_version("MODEL", artefact, await_creation_for=0)
""".replace("MODEL", BIG_MODEL)

_ONE_SHOT = """\
import sys
import mlflow
uri, artefact = sys.argv[1], sys.argv[2]
client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
client.create_model_version("MODEL", artefact, await_creation_for=0)
""".replace("MODEL", BIG_MODEL)


def big_store(store_dir: Path) -> tuple[str, str]:
    """The SQLite store in ``store_dir`` holding ``BIG_STORE_VERSIONS`` versions of one
    model, made through MLflow's client the first time (minutes), then reused. Its
    tracking URI and the artefact folder its versions name."""
    store_dir = Path(store_dir).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store_dir / 'mlflow.db'}"
    artefact = store_dir / "artefact"
    artefact.mkdir(exist_ok=True)
    (artefact / "model.bin").write_bytes(b"one artefact for every version\n")
    stamp = store_dir / "filled.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("versions") == BIG_STORE_VERSIONS:
        return uri, str(artefact)
    for name in ("mlflow.db", "mlflow.db-journal"):
        (store_dir / name).unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-c", _FILL, uri, str(artefact), "0", str(BIG_STORE_VERSIONS)],
        check=True, env={**clean_env(), **QUIET}, capture_output=True,
    )  # fmt: skip
    stamp.write_text(json.dumps({"versions": BIG_STORE_VERSIONS}))
    return uri, str(artefact)


def one_shot_command(store_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command (and its environment) of a fresh process that imports mlflow and
    registers one version of a model that already has 10,000 versions, in the SQLite
    store in ``store_dir`` (made once: see ``big_store``). Each run adds one version."""
    uri, artefact = big_store(store_dir)
    return [sys.executable, "-c", _ONE_SHOT, uri, artefact], {**clean_env(), **QUIET}


def mlflow_one_shot_create(store_dir: Path) -> float:
    """Seconds ``one_shot_command`` takes."""
    argv, env = one_shot_command(store_dir)
    sample = run_child(argv, env=env)
    sample.check("mlflow one-shot create_model_version")
    return sample.seconds
