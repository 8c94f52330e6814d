"""``regbook demo``: a whole registry built and checked on a built-in example.

Everything it shows is done for real, with the library the commands use: keys are
generated, artefacts hashed and copied, events signed and verified, and a tampered
copy of the workbook is caught cell by cell::

    run_demo(Path("regbook-demo"), print)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from regbook.check.verify import verify
from regbook.core.errors import InputError, plural
from regbook.core.ids import ModelRef
from regbook.core.schema import CARDS, METRICS, MODELS
from regbook.core.workspace import Workspace
from regbook.crypto.keys import SigningKey, load_private_key
from regbook.lineage.trace import (
    audit_log,
    make_demo_repos,
    render_audit,
    render_trace,
    trace_version,
)
from regbook.mirror.check import check as mlflow_check
from regbook.mirror.push import push as mlflow_push
from regbook.mirror.server import LocalServer
from regbook.registry.resume import ResumedRegistry, state_path
from regbook.registry.snapshot import CARD_SHEETS, LEDGER_ONLY, open_registry
from regbook.registry.transaction import Transaction
from regbook.registry.witness import Witness
from regbook.reports.card import write_card
from regbook.reports.evidence import write_evidence
from regbook.reports.listing import list_versions, to_text
from regbook.reports.pack import MANIFEST, write_pack
from regbook.reports.registry import write_registry
from regbook.workflow.archive import archive, fixity, retrieve
from regbook.workflow.governance import PromotionRefused, approve, gate, promote, scan
from regbook.workflow.lifecycle import Metric, Registered, RegistrationRequest, register, seal
from regbook.workflow.restore import restore
from regbook.workflow.setup import init_workspace
from regbook.workflow.trust import new_key, policy_status, revoke_key, sign_policy, take_witness

MARKER = ".regbook-demo"
SME, LEAD, CI = "alice@example.com", "gina@example.com", "ci@example.com"

# Stand-ins for what a training pipeline records: a DVC md5 of the training data, a
# full git commit of the training code, and the pipeline's run ID.
DATA_VERSION = "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a"
CODE_COMMIT = "c0ffee12d4e5f6a7b8c9d0e1f2a3b4c5d6e7f809"
FRAUD_DATA = "9b2e7d41c0a35f8e6d1c2b3a4f5e6d7c8b9a0f1e"
FRAUD_CODE = "5eed0c0de1a2b3c4d5e6f708192a3b4c5d6e7f80"


def _prepare(target: Path) -> None:
    """Replace a demo folder this command made; refuse anything else."""
    if target.exists():
        if not (target / MARKER).is_file():
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
            else:
                raise InputError(
                    f"{target}: exists and was not made by `regbook demo`; choose another folder"
                )
        else:
            shutil.rmtree(target, onerror=_force_writable)
    target.mkdir(parents=True)
    (target / MARKER).write_text(
        "made by `regbook demo`; `regbook demo` may replace it\n", encoding="utf-8"
    )


def _force_writable(func: Callable[[str], object], path: str, _exc: object) -> None:
    # Registered artefact copies are read-only; the demo folder is the demo's own.
    Path(path).chmod(stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
    func(path)


def _training_outputs(folder: Path) -> tuple[Path, Path]:
    """A small model file and a model directory, as a pipeline would leave them."""
    folder.mkdir()
    model = folder / "credit-risk.pkl"
    weights = b"".join(hashlib.sha256(f"credit-risk:{i}".encode()).digest() for i in range(2048))
    model.write_bytes(b"demo-model-v1\n" + weights)
    tree = folder / "fraud-detector"
    (tree / "tokenizer").mkdir(parents=True)
    (tree / "config.json").write_text(
        json.dumps({"layers": 4, "hidden": 64}, indent=2), encoding="utf-8"
    )
    (tree / "weights.bin").write_bytes(
        b"".join(hashlib.sha256(f"fraud:{i}".encode()).digest() for i in range(4096))
    )
    (tree / "tokenizer" / "vocab.txt").write_text("amount\nmerchant\ncountry\n", encoding="utf-8")
    return model, tree


def run_demo(target: Path, say: Callable[[str], None]) -> None:

    target = target.resolve()
    _prepare(target)
    root = target / "registry"
    say(f"regbook demo in {target}\n")

    say("1. The registry: a workspace with the workbook, settings and an empty keyring.")
    say("   $ regbook init registry")
    ws = init_workspace(root)
    say(
        f"   created {root.relative_to(target)}/ (registry.xlsx, regbook.toml, "
        "allowed_signers, models/, archive/)\n"
    )

    say("2. Keys: one ed25519 SSH key per person or pipeline, its role in the keyring.")
    say("   The governance lead's key comes first and signs its own keyring event; every")
    say("   later key is a keyring event in the ledger that the lead signs.")
    keys: dict[str, SigningKey] = {}
    for principal, role, name in (
        (LEAD, "governance-lead", "gina"),
        (SME, "sme", "alice"),
        (CI, "ci", "ci"),
    ):
        path = target / "keys" / name
        by_lead = " --key keys/gina" if keys else ""
        say(f"   $ regbook keys new {principal} --role {role} --out keys/{name}{by_lead}")
        made = new_key(ws, principal, (role,), out=path, gov_key=keys.get("gina"))
        assert made.key is not None
        keys[name] = made.key
        say(f"     {made.key.public.fingerprint} (keyring event {made.seqs[0]})")
    say("")

    model_file, model_dir = _training_outputs(target / "training")

    code_repo, data_repo, code_commit, data_commit = make_demo_repos(target / "repos")
    say("3. The SME registers a trained model from the command line: regbook hashes it,")
    say("   copies it into models/credit-risk/1/ (read-only) and signs the registration.")
    say("   $ regbook register credit-risk --artefact training/credit-risk.pkl \\")
    say(f"       --data-version {data_commit} \\")
    say(f"       --code-commit {code_commit} \\")
    say("       --code-repo repos/credit-risk-code --data-repo repos/credit-data \\")
    say("       --pipeline-run train-0042 --param learning_rate=0.05 --param max_depth=6 \\")
    say("       --metric auc_roc=0.83 --metric demographic_parity_ratio=0.88 \\")
    say("       --metric security_high_findings=0 --key keys/alice")
    done = register(ws, RegistrationRequest(
        model="credit-risk", artefact=model_file, data_version=data_commit,
        code_commit=code_commit, pipeline_run="train-0042",
        code_repo=str(code_repo), data_repo=str(data_repo),
        params={"learning_rate": "0.05", "max_depth": "6"},
        metrics=(Metric.parse_option("auc_roc=0.83"),
                 Metric.parse_option("demographic_parity_ratio=0.88"),
                 Metric.parse_option("security_high_findings=0")),
    ), keys["alice"])  # fmt: skip
    say(f"   {done.composite_id}")
    say(f"   ({done.content_hash}, stored at {done.storage})\n")

    say("4. Another version is typed straight into the Models sheet in Excel, as a draft")
    say("   row with its metrics on the Metrics sheet; `seal` validates, hashes and signs it.")
    incoming = root / "incoming"
    incoming.mkdir()
    shutil.copytree(model_dir, incoming / "fraud-detector")
    _type_draft(ws.workbook_path)
    say("   (typed: fraud-detector, storage incoming/fraud-detector, data and code commits,")
    say("    run train-0107, AUC-ROC 0.91; Metrics: demographic_parity_ratio 0.84)")
    say("   $ regbook seal --key keys/alice")
    for sealed in seal(ws, load_private_key(target / "keys" / "alice")):
        if isinstance(sealed, Registered):
            say(f"   {sealed.composite_id}   ({sealed.content_hash})")
    say("")

    _governance(ws, target, say)
    _security_scan(ws, target, say)

    say("6. Verify: the ledger's chain and signatures, every view cell, every artefact.")
    say("   $ regbook verify")
    report = verify(open_registry(ws))
    for finding in report.findings:
        say(f"   {finding}")
    say(
        f"   verify: {'ok' if report.ok else 'PROBLEMS'} ({report.events} ledger events, "
        f"{report.versions} versions, {report.artefacts_checked} artefacts)\n"
    )
    say("   $ regbook list")
    frame, _ = list_versions(open_registry(ws, sheets=LEDGER_ONLY))
    for line in to_text(frame).splitlines():
        say(f"   {line}")
    say("")

    _lineage(ws, target, say)

    say("8. Tampering is caught. In a copy of the registry someone edits the code commit")
    say("   and improves the AUC-ROC in Excel, swaps the stored model file, and gives")
    say("   the next row's Stage cell a number format that shows 'Production'.")
    tampered = _tampered_copy(root, target / "tampered")

    say("   $ regbook --workspace tampered verify")
    bad = verify(open_registry(Workspace.load(tampered)))
    for finding in bad.findings:
        say(f"   {finding}")
    say(f"   verify: {len(bad.problems)} problems (exit code 1)\n")

    pack = _evidence(ws, target, say)
    _archive(ws, target, say)
    rolled_back = _trust(ws, target, say)
    _rollback(Workspace.load(ws.root), target, say)
    _mlflow(ws, target, say)

    say("Where things are:")
    say(f"   workbook   {ws.workbook_path}   (open it in Excel or LibreOffice)")
    say(f"   keyring    {ws.keyring_path}")
    say(f"   artefacts  {ws.models_dir}")
    say(f"   archive    {ws.archive_dir}   (BagIt bags)")
    say(f"   evidence   {pack}   (for auditors)")
    say(f"   keys       {target / 'keys'}   (demo keys; real ones live in ~/.ssh)")
    say(f"   tampered   {tampered}")
    say(f"   rollback   {rolled_back}   (caught by the witness in ci-only/)")
    say("Try: regbook --workspace " + str(root) + " verify --json")
    if not report.ok or bad.ok:
        raise InputError("the demo did not behave as expected; see the output above")


def _governance(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """The stage workflow: approvals, a gate, CI-only Production, the deploy check."""

    ref = ModelRef.parse("credit-risk@1")
    key = {name: load_private_key(target / "keys" / name) for name in ("alice", "gina", "ci")}
    say("5. Governance: every stage change carries a signed approval naming the content")
    say("   hash, and only the CI pipeline's key may put a version into Production.")
    say("   $ regbook approve credit-risk@1 --to Staging --key keys/alice")
    done = approve(ws, ref, "Staging", key["alice"], note="offline evaluation reviewed")
    say(f"   approved {done.from_stage} -> {done.to_stage} by {done.principal} ({done.role})")
    say("   $ regbook promote credit-risk@1 --to Staging --key keys/alice")
    promoted = promote(ws, ref, "Staging", key["alice"])
    say(f"   promoted to {promoted.to_stage}")
    time.sleep(1.1)  # the ledger's clock ticks in seconds: Staging lasts a moment
    say("   $ regbook gate credit-risk@1 --key keys/ci        (in the CI pipeline)")
    gated = gate(ws, ref, key["ci"])
    for r in gated.outcome.results:
        say(f"   {r.gate.name:<12} {str(r.gate):<36} {r.value!s:>6}  {r.result}")
    say(f"   gate result: {gated.outcome.result}")
    say(
        "   $ regbook approve credit-risk@1 --to Production --note 'model risk review MR-7' "
        "--key keys/gina"
    )
    done = approve(ws, ref, "Production", key["gina"], note="model risk review MR-7")
    say(f"   approved {done.from_stage} -> {done.to_stage} by {done.principal} ({done.role})")
    say("   The governance lead tries to promote with her own key:")
    say("   $ regbook promote credit-risk@1 --to Production --key keys/gina")
    try:
        promote(ws, ref, "Production", key["gina"])
        raise InputError("the demo expected the governance lead's promotion to be refused")
    except PromotionRefused as refused:
        for line in str(refused).splitlines():
            say(f"   {line}")
    say("   $ regbook promote credit-risk@1 --to Production --key keys/ci   (CI)")
    promoted = promote(ws, ref, "Production", key["ci"])
    say(f"   promoted to {promoted.to_stage}, signed by {promoted.principal}")
    say("   Before deploying, CI checks the very file it is about to ship:")
    say("   $ regbook verify --for-deploy credit-risk@1 --artefact training/credit-risk.pkl")
    check = verify(
        open_registry(ws),
        scope=ref,
        for_deploy=True,
        deploy_artefact=target / "training" / "credit-risk.pkl",
    )
    verdict = "may be deployed" if check.ok else "must NOT be deployed"
    assert check.deploy is not None  # for mypy: a --for-deploy check always has it
    say(f"   {check.deploy['composite_id']} ({check.deploy['stage']}) {verdict}\n")
    if not check.ok:
        raise InputError("the demo's deploy check failed; see the output above")


def _booby_trapped_pickle() -> bytes:
    """A pickle that would run ``os.system`` if anyone loaded it, spelt opcode by opcode
    (never made by pickling, never loaded): GLOBAL os system, an argument, REDUCE."""
    command = b"echo this model just ran a command on your machine"
    return (
        b"\x80\x02cos\nsystem\n" + b"X" + len(command).to_bytes(4, "little") + command
        + b"\x85R."
    )  # fmt: skip


def _security_scan(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """A challenger whose pickle calls os.system: the scan finds it, the gate fails, and
    promotion to Production is refused naming the finding."""
    key = {name: load_private_key(target / "keys" / name) for name in ("alice", "gina", "ci")}
    candidate = target / "training" / "challenger.pkl"
    candidate.write_bytes(_booby_trapped_pickle())
    say("5b. The security gate reads a scan, not a typed number. A challenger model")
    say("   arrives whose pickle would call os.system when loaded (nobody loads it):")
    say("   $ regbook register credit-risk-challenger --artefact training/challenger.pkl \\")
    say("       --data-version ... --code-commit ... --pipeline-run train-0051 \\")
    say("       --metric auc_roc=0.86 --metric demographic_parity_ratio=0.90 --key keys/alice")
    done = register(ws, RegistrationRequest(
        model="credit-risk-challenger", artefact=candidate, data_version=DATA_VERSION,
        code_commit=CODE_COMMIT, pipeline_run="train-0051",
        metrics=(Metric.parse_option("auc_roc=0.86"),
                 Metric.parse_option("demographic_parity_ratio=0.90")),
    ), key["alice"])  # fmt: skip
    ref = ModelRef.parse(f"credit-risk-challenger@{done.version}")
    approve(ws, ref, "Staging", key["alice"], note="looks better offline")
    promote(ws, ref, "Staging", key["alice"])
    say(f"   ({ref} approved and promoted to Staging by alice)")
    say(f"   $ regbook scan {ref} --key keys/ci        (in the CI pipeline)")
    scanned = scan(ws, ref, key["ci"])
    for f in scanned.report.files:
        say(f"   {f.path:<16} {f.format:<8} code on load: {'yes' if f.runs_code else 'no':<4}"
            f" {f.verdict}")  # fmt: skip
        for item in f.findings:
            say(f"       {item.severity} {item.rule}: {item.global_name}")
    say(f"   scan: {scanned.report.verdict} (exit code 1; signed, ledger event {scanned.seq})")
    say(f"   $ regbook gate {ref} --key keys/ci")
    gated = gate(ws, ref, key["ci"])
    for r in gated.outcome.results:
        say(f"   {r.gate.name:<12} {str(r.gate):<36} {r.value!s:>6}  {r.result}")
    say(f"   gate result: {gated.outcome.result} ({gated.security})")
    approve(ws, ref, "Production", key["gina"], note="pending the gate")
    say(f"   $ regbook promote {ref} --to Production --key keys/ci")
    try:
        promote(ws, ref, "Production", key["ci"])
        raise InputError("the demo expected the challenger's promotion to be refused")
    except PromotionRefused as refused:
        for line in str(refused).splitlines():
            say(f"   {line}")
    say("")


def _lineage(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """The provenance walk, and an inference log audited against the ledger."""

    say("7. Lineage: from the composite ID an inference log carries back to the code")
    say("   commit, the DVC-tracked data, the pipeline run, the evaluation and approvals.")
    say("   $ regbook trace credit-risk@1")
    ledger = open_registry(ws, sheets=LEDGER_ONLY)
    trace = trace_version(ledger, "credit-risk@1")
    for line in render_trace(trace).splitlines():
        say(f"   {line}")
    state = ledger.version(ModelRef("credit-risk", 1))
    staged = next(
        e.at for e in state.events if e.kind == "promote" and e.payload.get("to") == "Staging"
    )
    live = next(
        e.at for e in state.events if e.kind == "promote" and e.payload.get("to") == "Production"
    )
    forged = state.composite_id[:-8] + "deadbeef"
    records = [(staged, state.composite_id)] + [(live, state.composite_id)] * 4 + [(live, forged)]
    log = target / "predictions.jsonl"
    log.write_text(
        "".join(
            json.dumps({"timestamp": at, "composite_id": cid, "score": 0.12 + i / 100}) + "\n"
            for i, (at, cid) in enumerate(records)
        ),
        encoding="utf-8",
    )
    say("   A service's prediction log, one composite ID per record; one ID is forged and")
    say("   one inference was served while the version was still in Staging:")
    say("   $ regbook trace --log predictions.jsonl")
    audit = audit_log(ledger, log)
    for line in render_audit(audit).splitlines():
        say(f"   {line}")
    say("")


def _archive(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """Retirement: a signed approval, a BagIt bag kept for the retention period, and the
    bag retrieved and checked again."""

    ref = ModelRef.parse("credit-risk@1")
    say("10. Retirement: credit-risk@1 is archived for ten years (EU AI Act Article 18) as")
    say("   a BagIt bag anyone can check with sha256sum or a BagIt validator.")
    say("   $ regbook approve credit-risk@1 --to Archived --key keys/gina")
    done = approve(
        ws,
        ref,
        "Archived",
        load_private_key(target / "keys" / "gina"),
        note="superseded; retain per Article 18",
    )
    say(f"   approved {done.from_stage} -> {done.to_stage} by {done.principal} ({done.role})")
    say("   $ regbook archive credit-risk@1 --key keys/gina")
    bagged = archive(ws, ref, load_private_key(target / "keys" / "gina"))
    say(f"   archived into {bagged.storage}, retained until {bagged.retain_until}")
    if bagged.removed:
        say(f"   (the original {bagged.removed} was removed once the bag validated)")
    say("   $ regbook retrieve credit-risk@1 --to retrieved")
    got = retrieve(ws, ref, target / "retrieved")
    say(f"   {got.composite_id}: {plural(got.files, 'file')}, hash re-checked ({got.content_hash})")
    say("   $ regbook fixity")
    report = fixity(ws)
    say(
        f"   fixity: {'ok' if report.ok else 'PROBLEMS'} ({plural(len(report.bags), 'bag')}, every "
        "hash checked)\n"
    )
    if not report.ok:
        raise InputError("the demo's fixity check failed; see the output above")


def _trust(ws: Workspace, target: Path, say: Callable[[str], None]) -> Path:
    """The trust anchors: a witness CI keeps, a rollback it catches, a signed policy
    change and a key rotated by signed keyring events. Returns the rolled-back copy."""

    key = {name: load_private_key(target / "keys" / name) for name in ("gina", "ci")}
    ci_only = target / "ci-only"  # in real life: where only CI may write (docs/ci.md)
    ci_only.mkdir(exist_ok=True)
    witness = ci_only / "regbook.witness"
    say("11. Trust anchors. CI keeps a witness of the ledger head it verified, signed by")
    say("   its key, where only CI can write (a protected branch, a protected variable).")
    say("   $ regbook witness --key keys/ci -o ci-only/regbook.witness")
    taken = take_witness(ws, key["ci"], witness)
    say(f"   witnessed event {taken.seq} ({taken.hash[:16]}...) of registry {taken.registry_id}")
    say("   In a copy, an insider undoes the archive: deletes the last two Ledger rows,")
    say("   puts the model back from its bag, and runs `regbook restore`.")
    copy = _rolled_back_copy(ws.root, target / "rolled-back")
    restore(Workspace.load(copy))
    ref = ModelRef.parse("credit-risk@1")
    alone = verify(open_registry(Workspace.load(copy)), scope=ref, for_deploy=True)
    say("   $ regbook --workspace rolled-back verify --for-deploy credit-risk@1")
    verdict = "may be deployed" if alone.ok else "must NOT be deployed"
    say(f"   {verdict}   (the chain that is left is whole)")
    say("   $ regbook --workspace rolled-back verify --for-deploy credit-risk@1 \\")
    say("         --witness ci-only/regbook.witness")
    caught = verify(
        open_registry(Workspace.load(copy), witness=Witness.load(witness)),
        scope=ref,
        for_deploy=True,
    )
    for finding in caught.problems:
        say(f"   {finding}")
    say(f"   {'may be deployed' if caught.ok else 'must NOT be deployed'}\n")
    say("   The policy (roles, transitions, gates) is in force only once signed. The")
    say("   governance lead raises the performance gate in regbook.toml and signs it:")
    config = ws.config_path.read_text(encoding="utf-8")
    ws.config_path.write_text(
        config.replace('performance = "auc_roc >= 0.75"', 'performance = "auc_roc >= 0.78"'),
        encoding="utf-8",
    )
    ws = Workspace.load(ws.root)
    say("   $ regbook policy show")
    for line in policy_status(open_registry(ws, sheets=LEDGER_ONLY, signatures=False)).differences:
        say(f"   regbook.toml differs: {line}")
    say("   $ regbook policy sign --key keys/gina")
    signed = sign_policy(ws, key["gina"])
    say(f"   policy {signed.policy.sha256[:16]}... signed into the ledger (event {signed.seq})")
    say("   The ci key is rotated: a new key, the old one revoked, each a keyring event")
    say("   the governance lead signs. The old key signs nothing after its revocation.")
    say("   $ regbook keys new ci2@example.com --role ci --out keys/ci2 --key keys/gina")
    rotated = new_key(ws, "ci2@example.com", ("ci",), out=target / "keys" / "ci2",
                      gov_key=key["gina"])  # fmt: skip
    say(f"   keyring event {rotated.seqs[0]}: {rotated.lines[0][:60]}...")
    say(f"   $ regbook keys revoke {CI} --key keys/gina")
    revoked = revoke_key(ws, CI, gov_key=key["gina"])
    say(f"   keyring event {revoked.seqs[0]}: {CI} revoked")
    assert rotated.key is not None
    say("   $ regbook verify --witness ci-only/regbook.witness")
    say("        --witness-out ci-only/regbook.witness --key keys/ci2   (CI, each run)")
    after = verify(open_registry(ws, witness=Witness.load(witness)), artefacts=False)
    for finding in after.problems:
        say(f"   {finding}")
    again = take_witness(ws, rotated.key, witness)
    say(f"   verify: {'ok' if after.ok else 'PROBLEMS'}; witnessed event {again.seq}")
    say("   Beside the witness CI wrote the registry's state at that head, its digest")
    say("   signed in the witness. With copies of both in the workspace, writers read")
    say("   only the rows written since:")
    say("   $ cp ci-only/regbook.witness ci-only/regbook.witness.state .")
    for name in (witness.name, state_path(witness).name):
        shutil.copy2(ci_only / name, ws.root / name)
    with Transaction(ws, resume=True) as tx:
        resumed = isinstance(tx.registry, ResumedRegistry)
        unread = sum(table.omitted for table in tx.data.tables.values())
    say(f"   a writer starts from event {again.seq}: {unread} rows CI verified not read again\n")
    if alone.ok is False or caught.ok or not after.ok or not resumed:
        raise InputError("the demo's trust anchors did not behave as expected; see above")
    return copy


def _rollback(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """A rollback: the archived credit-risk@1 reinstated to Production from its bag,
    with every precondition of a promotion to Production met again."""

    ref = ModelRef.parse("credit-risk@1")
    gina, ci2 = (load_private_key(target / "keys" / name) for name in ("gina", "ci2"))
    say("12. Rollback: credit-risk@1 goes back to Production from its bag, with every")
    say("   Production precondition met again: a governance-lead approval naming its")
    say("   content hash, a fresh gate under the policy in force, and the ci key.")
    say("   $ regbook approve credit-risk@1 --to Production --note 'INC-42: reinstate' \\")
    say("         --key keys/gina")
    done = approve(ws, ref, "Production", gina, note="INC-42: reinstate")
    say(f"   approved {done.from_stage} -> {done.to_stage} by {done.principal} ({done.role})")
    say("   $ regbook gate credit-risk@1 --key keys/ci2")
    gated = gate(ws, ref, ci2)
    say(f"   gate result: {gated.outcome.result} (performance now needs auc_roc >= 0.78)")
    say("   $ regbook promote credit-risk@1 --to Production --key keys/ci2")
    say("     (with a version in Production, --archive-previous archives it in the same step)")
    back = promote(ws, ref, "Production", ci2)
    say(f"   rolled back: {back.from_stage} -> {back.to_stage}; the artefact is back at")
    say(f"   {back.reinstated}, and its bag stays in archive/credit-risk/1\n")
    if gated.outcome.result != "PASS" or back.reinstated is None:
        raise InputError("the demo's rollback did not behave as expected; see above")


def _rolled_back_copy(root: Path, copy: Path) -> Path:
    """A copy of the registry with its last two Ledger rows deleted (the archive of
    credit-risk@1 and its approval) and the model put back from its bag."""
    import openpyxl

    shutil.copytree(root, copy)
    wb = openpyxl.load_workbook(copy / "registry.xlsx")
    sheet = wb["Ledger"]
    sheet.delete_rows(sheet.max_row - 1, 2)
    wb.save(copy / "registry.xlsx")
    back = copy / "models" / "credit-risk" / "1"
    back.mkdir(parents=True, exist_ok=True)
    for item in (copy / "archive" / "credit-risk" / "1" / "data").iterdir():
        shutil.copy2(item, back / item.name)
    return copy


def _evidence(ws: Workspace, target: Path, say: Callable[[str], None]) -> Path:
    """What goes to an auditor: the model card the SME wrote, the evidence report, and
    the evidence pack of the Production version. Returns the pack's path."""

    ref = ModelRef.parse("credit-risk@1")
    out = target / "evidence"
    out.mkdir()
    say("9. Evidence for auditors. The SME describes the model once in the Cards sheet")
    say("   (intended use, out-of-scope uses, limitations, owners ...); regbook adds the")
    say("   sealed facts and re-checks every signature and hash as it writes.")
    _type_card(ws.workbook_path)
    say("   $ regbook report card credit-risk@1 -o evidence/credit-risk-1-card.md")
    card = write_card(open_registry(ws, sheets=CARD_SHEETS), ref, out / "credit-risk-1-card.md")
    say(f"   model card for {card['composite_id']}")
    say("   $ regbook report evidence credit-risk@1 -o evidence/credit-risk-1-evidence.pdf")
    data = write_evidence(open_registry(ws), ref, out / "credit-risk-1-evidence.pdf")
    approvals = sum(len(step["approvals"]) for step in data["history"])
    found = plural(data["problems"]["count"], "problem")
    say(f"   {found}; {approvals} approvals, their signatures "
        "and the artefact's hash re-checked")  # fmt: skip
    say("   $ regbook report registry -o evidence/registry-description.html")
    described = write_registry(open_registry(ws), out / "registry-description.html")
    say(f"   as configured: {len(described['transitions'])} transitions, "
        f"{len(described['gates'])} gates, {len(described['keys'])} keys; "
        f"{len(described['production'])} version(s) in Production")  # fmt: skip
    say("   $ regbook report pack credit-risk@1 -o evidence/credit-risk-1-evidence.zip")
    pack = write_pack(ws, ref, out / "credit-risk-1-evidence.zip")
    say(f"   {len(pack.files)} files under {pack.folder}/: evidence.html, evidence.pdf,")
    say("   model-card.md, provenance.json, signatures/, registry.xlsx, allowed_signers")
    say(f"   and {MANIFEST}; an auditor checks it with stock tools:")
    say(f"   $ unzip {pack.path.name} && cd {pack.folder} && sha256sum -c {MANIFEST}")
    say(f"   evidence pack: {pack.path}\n")
    if pack.problems or data["problems"]["count"] or described["problems"]["count"]:
        raise InputError("the demo's evidence reports found problems; see the output above")
    return pack.path


def _type_card(workbook: Path) -> None:
    """What the SME types in the Cards sheet, once per model."""
    import openpyxl

    wb = openpyxl.load_workbook(workbook)
    card = {
        "model": "credit-risk",
        "intended_use": "Ranks consumer credit applications by default risk to support, "
        "not replace, an underwriter's decision.",
        "out_of_scope": "Fully automated refusals; business lending; applicants under 18.",
        "training_data": "Anonymised applications 2019-2024 from the bank's loan book, "
        "versioned with DVC.",
        "evaluation": "Hold-out set of 2024 applications; demographic parity compared "
        "across age bands.",
        "limitations": "Less reliable for applicants with under six months of history.",
        "ethics": "Age and postcode are excluded as features; reviewed by the ethics board.",
        "owners": "Credit Risk Analytics (alice@example.com); model risk: gina@example.com",
    }
    wb[CARDS.name].append([card.get(c.key) for c in CARDS.columns])
    wb.save(workbook)


def _type_draft(workbook: Path) -> None:
    """What the SME types in Excel: a Models row without version or seal, and a Metrics
    row for it."""
    import openpyxl

    wb = openpyxl.load_workbook(workbook)
    row = {
        "model": "fraud-detector",
        "storage": "incoming/fraud-detector",
        "data_version": FRAUD_DATA,
        "code_commit": FRAUD_CODE,
        "pipeline_run": "train-0107",
        "params": "layers=4; hidden=64",
        "auc_roc": 0.91,
        "notes": "typed in Excel by the SME",
    }
    wb[MODELS.name].append([row.get(c.key) for c in MODELS.columns])
    metric = {
        "model": "fraud-detector",
        "metric": "demographic_parity_ratio",
        "value": 0.84,
        "kind": "fairness",
    }
    wb[METRICS.name].append([metric.get(c.key) for c in METRICS.columns])
    wb.save(workbook)


def _tampered_copy(root: Path, copy: Path) -> Path:
    import openpyxl

    shutil.copytree(root, copy)
    wb = openpyxl.load_workbook(copy / "registry.xlsx")
    ws = wb[MODELS.name]
    ws[f"{MODELS.letter('code_commit')}2"] = "c0ffe312d4e5f6a7b8c9d0e1f2a3b4c5d6e7f809"
    ws[f"{MODELS.letter('auc_roc')}2"] = 0.93
    # A display forgery: the Stage value is untouched, but every reader shows Production.
    ws[f"{MODELS.letter('stage')}3"].number_format = ';;;"Production"'
    wb.save(copy / "registry.xlsx")
    stored = next((copy / "models" / "credit-risk" / "1").iterdir())
    stored.chmod(stored.stat().st_mode | stat.S_IWUSR)
    stored.write_bytes(stored.read_bytes()[:-1] + b"!")
    return copy


# --- the MLflow mirror (docs/mlflow.md) ----------------------------------------------

DEMO_MLFLOW_ENV = "REGBOOK_DEMO_MLFLOW"  # a server URI to use, or "off"


def _mlflow(ws: Workspace, target: Path, say: Callable[[str], None]) -> None:
    """Push to a local MLflow server, move `production` by hand through MLflow's own
    client, and show `regbook mlflow check` catching it. Skipped, saying so, when MLflow
    is not installed; ``$REGBOOK_DEMO_MLFLOW`` names a running server to use instead of
    starting one, or ``off``."""
    import importlib.util
    import os

    chosen = os.environ.get(DEMO_MLFLOW_ENV, "")
    if chosen == "off" or importlib.util.find_spec("mlflow") is None:
        say("MLflow: not installed (pip install 'regbook[mlflow]' mlflow); skipped.\n")
        return
    say("MLflow: a local tracking server (SQLite store, local artifacts) takes the mirror.")
    server = None if chosen else LocalServer.start(target / "mlflow")
    uri = server.uri if server is not None else chosen
    try:
        say(f"   $ regbook mlflow push --tracking-uri {uri}")
        done = mlflow_push(open_registry(ws, sheets=CARD_SHEETS), uri)
        for made in done.created:
            say(f"   created {made['composite_id']} as MLflow version {made['mlflow_version']}")
        for line in done.aliases:
            say(f"   alias {line}")
        say("   Someone with EDIT rights in MLflow registers a version regbook never sealed")
        say("   and moves `production` to it by hand, through MLflow's own client:")
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        pushed = next(c for c in done.created if c["composite_id"].startswith("credit-risk@"))
        live = client.get_model_version("credit-risk", pushed["mlflow_version"])
        say("   >>> v = client.create_model_version('credit-risk', source, run_id)")
        made = client.create_model_version(
            "credit-risk", str(live.source), run_id=live.run_id, await_creation_for=0
        )
        say(f"   >>> client.set_registered_model_alias('credit-risk', 'production', "
            f"'{made.version}')")  # fmt: skip
        client.set_registered_model_alias("credit-risk", "production", str(made.version))
        say(f"   $ regbook mlflow check --tracking-uri {uri}")
        report = mlflow_check(open_registry(ws, sheets=CARD_SHEETS), uri, artefacts=False)
        for finding in report.findings:
            say(f"   {finding}")
        say(f"   check: {'ok' if report.ok else 'caught (exit code 1)'}\n")
        if report.ok:
            raise InputError("the demo's MLflow check missed the moved alias")
    finally:
        if server is not None:
            server.stop()
