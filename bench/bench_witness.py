"""The witnessed path CI runs every time (the trust-anchors issue): ``regbook verify
--no-artefacts --witness FILE`` on the 10,000-version registry with its full history
(40,000 events), with a witness at seq 39,900 and the keyring unchanged, side by side
with the cold ``verify --no-artefacts`` of the same registry.

Targets: the witnessed verify <= 3 s, and <= 0.6 times the cold one (the median over
rounds of the two timed back to back). The cold figure is recorded too: the new checks
may add at most 10% to it (compare it with docs/performance.md's figure before them,
``python bench/compare.py REV witness``).

The witness is the one CI would have written when the ledger ended at seq 39,900: its
JSON names that head, the digest of the signatures up to it, the keyring's and the
policy's sha256, signed by the registry's ci key.

    python bench/run.py witness
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import KEY_RELPATH, cached, clean_env, regbook_command  # noqa: E402
from measure import Command, alternate, paired_ratio, row, run_child  # noqa: E402

WITNESSED = 39_900
ROUNDS = 5
TARGET_S = 3.0
TARGET_RATIO = 0.6


def write_witness(root: Path, out: Path, seq: int) -> None:
    """The witness CI would have written at ``seq``."""
    from regbook.core.schema import LEDGER
    from regbook.core.workspace import Workspace
    from regbook.crypto.keys import load_keyring, load_private_key
    from regbook.ledger.anchors import Anchors
    from regbook.ledger.events import read_events
    from regbook.registry.witness import witness_text
    from regbook.workbook.read import read_workbook

    ws = Workspace.load(root)
    table = read_workbook(ws.workbook_path, sheets=(LEDGER,))[LEDGER.name]
    events, bad = read_events(table)
    assert not bad and len(events) > seq, "the generated ledger is shorter than expected"
    keyring = load_keyring(ws)
    upto = events[:seq]
    policy = Anchors.replay(upto, keyring).policy
    key = load_private_key(root / KEY_RELPATH.parent / "ci")
    text = witness_text(
        ws.settings.registry_id, upto, keyring.sha256, policy.sha256, "ci@bench.example",
        upto[-1].at, key,
    )  # fmt: skip
    out.write_bytes(text)


def run(workdir: Path) -> list[dict]:
    made = cached(10_000, history=True)
    witness = workdir / "witness"
    write_witness(made.root, witness, WITNESSED)
    env = clean_env()
    cold = [*regbook_command(), "--workspace", str(made.root), "verify", "--no-artefacts"]
    warm = [*cold, "--witness", str(witness)]
    # Both must be clean: the witness is the ledger's own head at 39,900.
    run_child(warm, env=env).check("the witnessed verify")
    cold_samples, warm_samples = alternate(
        ROUNDS,
        [Command("verify --no-artefacts (cold)", lambda _i: cold, env),
         Command("verify --no-artefacts --witness", lambda _i: warm, env)],
    )  # fmt: skip
    best_cold = min(s.seconds for s in cold_samples)
    best_warm = min(s.seconds for s in warm_samples)
    ratio = paired_ratio(warm_samples, cold_samples)
    label = "10,000 versions, 40,000 events"
    return [
        row(f"cold verify --no-artefacts, {label}: best of {ROUNDS}", best_cold, "s"),
        row(f"cold verify, {label}: median", statistics.median(s.seconds for s in cold_samples),
            "s"),
        row(f"witnessed verify (witness at {WITNESSED:,}): best of {ROUNDS}", best_warm, "s",
            f"<= {TARGET_S:g}", best_warm <= TARGET_S),
        row("witnessed verify: median",
            statistics.median(s.seconds for s in warm_samples), "s"),
        row("witnessed / cold, median of paired rounds", ratio, "x", f"<= {TARGET_RATIO:g}",
            ratio <= TARGET_RATIO),
    ]  # fmt: skip
