"""The workbook's shape, defined once: sheets, columns, formats, stages and roles.

Everything else (the template, the reader's header checks, the views, the Guide
sheet, the docs) is generated from the definitions here::

    from regbook.core.schema import MODELS
    MODELS.header("code_commit")   # 'Code commit'
    MODELS.letter("code_commit")   # 'I'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TypeGuard

STAGES = ("None", "Staging", "Production", "Archived")
ROLES = ("sme", "governance-lead", "ci")
METRIC_KINDS = ("performance", "fairness", "security")

# Metrics known by name: the Models column that shows them, and their default kind.
KNOWN_METRICS = {
    "auc_roc": ("auc_roc", "performance"),
    "demographic_parity_ratio": ("dpr", "fairness"),
    "security_high_findings": (None, "security"),
}

MODEL_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
METRIC_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
FULL_COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
DVC_MD5_RE = re.compile(r"[0-9a-f]{32}")

# Excel's limit for one cell's text.
CELL_TEXT_LIMIT = 32767

TEXT, INT, FLOAT, DATE, DATETIME = "text", "int", "float", "date", "datetime"

SHADE_SEALED = "FFE7E6E6"  # light grey behind sealed cells
SHADE_HEADER = "FF1F3864"  # dark blue header band


@dataclass(frozen=True)
class Column:
    key: str  # the name code uses
    header: str  # the exact header text in row 1
    kind: str  # text | int | float | date | datetime
    width: float
    meaning: str
    format: str  # how a value is written, for the Guide
    editor: str  # who may edit, for the Guide
    sealed: bool = False  # locked and shaded once the row is sealed
    choices: tuple[str, ...] | None = None  # a closed set: drop-down validation
    wrap: bool = False  # long prose: the column wraps its text

    @property
    def text_format(self) -> bool:
        """Hash, commit and ID columns are text, so Excel never turns them into numbers."""
        return self.kind == TEXT

    @property
    def number_format(self) -> str:
        return {
            TEXT: "@",
            INT: "0",
            FLOAT: "General",
            DATE: "yyyy-mm-dd",
            DATETIME: "yyyy-mm-dd hh:mm:ss",
        }[self.kind]


@dataclass(frozen=True)
class Sheet:
    name: str
    purpose: str
    written_by: str
    columns: tuple[Column, ...]
    # Added after workbooks were in use: one made before lacks it, and regbook reads it
    # only where it is needed (the model card), as absent rather than as an error.
    optional: bool = False

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        assert len(set(keys)) == len(keys), f"duplicate column key in {self.name}"

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def column(self, key: str) -> Column:
        for col in self.columns:
            if col.key == key:
                return col
        raise KeyError(key)

    def index(self, key: str) -> int:
        """0-based position of a column."""
        return self._positions[key]

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {col.key: i for i, col in enumerate(self.columns)}

    def header(self, key: str) -> str:
        return self.column(key).header

    def letter(self, key: str) -> str:
        return column_letter(self.index(key) + 1)

    def ref(self, key: str, row: int) -> str:
        """An A1 reference naming a cell: ``Models!I7``."""
        return f"{self.name}!{self.letter(key)}{row}"


def column_letter(n: int) -> str:
    """1 -> A, 27 -> AA."""
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


_SME = "SME in a draft row; sealed afterwards"
_RB = "regbook only (a view of the ledger)"
_RB_KEYS = "regbook only (a view of allowed_signers)"
_RB_LEDGER = "regbook only (the ledger itself)"

MODELS = Sheet(
    name="Models",
    purpose="One row per model version: the tracking table. Draft rows are typed by the "
    "SME; `regbook seal` validates, hashes and signs them.",
    written_by="SME (draft rows) and regbook (sealed rows)",
    columns=(
        Column(
            "model",
            "Model name",
            TEXT,
            22,
            "The model's name; one name, many versions.",
            "lower case: a-z 0-9 . _ - (max 64), starts with a letter or digit",
            _SME,
            True,
        ),
        Column(
            "version",
            "Version",
            INT,
            9,
            "Version number, assigned at sealing: one more "
            "than the highest version ever sealed for this model; never reused.",
            "positive whole number; leave empty in a draft",
            _RB,
            True,
        ),
        Column(
            "composite_id",
            "Composite ID",
            TEXT,
            44,
            "The identifier inference logs "
            "carry: NAME@VERSION+A.D.C (A: 12 hex of the content hash, D: 8 of the data "
            "version, C: 8 of the code commit).",
            "text",
            _RB,
            True,
        ),
        Column(
            "stage",
            "Stage",
            TEXT,
            11,
            "Lifecycle stage, a view of the ledger's transition events.",
            "None, Staging, Production or Archived",
            _RB,
            True,
            STAGES,
        ),
        Column(
            "storage",
            "Storage location",
            TEXT,
            40,
            "Where the artefact lives: a path "
            "relative to the workspace (models/NAME/VERSION/...) or an absolute path on a "
            "mounted share.",
            "path; in a draft, the artefact to register (recorded where it is)",
            _SME,
            True,
        ),
        Column(
            "content_hash",
            "Content hash",
            TEXT,
            30,
            "SHA-256 of the artefact: "
            "sha256:HEX for a file, sha256-tree:HEX for a directory (see docs).",
            "text",
            _RB,
            True,
        ),
        Column(
            "data_version",
            "Training data version (DVC commit)",
            TEXT,
            30,
            "The data registry's full git commit, or a DVC md5, of the training data.",
            "40 or 64 hex (git commit) or 32 hex (DVC md5); no abbreviations",
            _SME,
            True,
        ),
        Column(
            "data_repo",
            "Data repository",
            TEXT,
            30,
            "Where the data version can be looked up: a git URL or a local path.",
            "text, optional",
            _SME,
            True,
        ),
        Column(
            "code_commit",
            "Code commit",
            TEXT,
            30,
            "Full git commit of the training code.",
            "40 or 64 hex; no abbreviations",
            _SME,
            True,
        ),
        Column(
            "code_repo",
            "Code repository",
            TEXT,
            30,
            "Where the code commit can be looked up: a git URL or a local path.",
            "text, optional",
            _SME,
            True,
        ),
        Column(
            "pipeline_run",
            "Pipeline execution ID",
            TEXT,
            22,
            "The training pipeline run that produced the artefact.",
            "text",
            _SME,
            True,
        ),
        Column(
            "trained_on",
            "Training date",
            DATE,
            13,
            "The day training finished; defaults to the day of registration.",
            "date (yyyy-mm-dd)",
            _SME,
            True,
        ),
        Column(
            "params",
            "Hyperparameters",
            TEXT,
            30,
            "Training hyperparameters.",
            'NAME=VALUE pairs separated by ";" or a JSON object; regbook rewrites it '
            "as JSON when sealing",
            _SME,
            True,
        ),
        Column(
            "auc_roc",
            "AUC-ROC",
            FLOAT,
            10,
            "Area under the ROC curve on the evaluation set (the Metrics sheet's auc_roc).",
            "number between 0 and 1",
            _SME,
            True,
        ),
        Column(
            "dpr",
            "Demographic parity ratio",
            FLOAT,
            14,
            "Fairness: lowest over highest "
            "positive rate across groups (the Metrics sheet's demographic_parity_ratio).",
            "number between 0 and 1",
            _SME,
            True,
        ),
        Column(
            "gate",
            "Validation gate result",
            TEXT,
            16,
            "The latest recorded validation gate result.",
            "PASS or FAIL",
            _RB,
            True,
        ),
        Column(
            "approval",
            "Approval evidence (approver, role, date)",
            TEXT,
            34,
            "The signed approval that brought the version to its stage.",
            "principal (role) yyyy-mm-dd",
            _RB,
            True,
        ),
        Column(
            "deployed_on",
            "Deployment date",
            DATE,
            13,
            "When the version was promoted to Production.",
            "date",
            _RB,
            True,
        ),
        Column(
            "retain_until",
            "Retain until",
            DATE,
            13,
            "For an archived version: the end of its retention period (archive date plus "
            "[retention] years; EU AI Act Article 18).",
            "date",
            _RB,
            True,
        ),
        Column(
            "registered_by",
            "Registered by",
            TEXT,
            22,
            "The principal whose key signed the registration.",
            "text",
            _RB,
            True,
        ),
        Column(
            "registered_at",
            "Registered at",
            DATETIME,
            19,
            "When the registration was signed (UTC).",
            "date and time, UTC",
            _RB,
            True,
        ),
        Column(
            "notes",
            "Notes",
            TEXT,
            30,
            "Free text; stays editable after sealing and is not part of the seal.",
            "text",
            "SME, any time",
        ),
        Column(
            "seal",
            "Seal",
            TEXT,
            20,
            "The hash of the ledger event that sealed this row; empty on a draft.",
            "64 hex",
            _RB,
            True,
        ),
    ),
)

METRICS = Sheet(
    name="Metrics",
    purpose="One row per model version and metric (long form). Rows for a draft are "
    "sealed with it.",
    written_by="SME (drafts), sealed with the version",
    columns=(
        Column(
            "model",
            "Model name",
            TEXT,
            22,
            "The model the metric belongs to.",
            "as in Models",
            _SME,
            True,
        ),
        Column(
            "version",
            "Version",
            INT,
            9,
            "The version; leave empty for the model's draft.",
            "whole number or empty",
            _SME,
            True,
        ),
        Column(
            "metric",
            "Metric",
            TEXT,
            28,
            "Metric name. auc_roc, "
            "demographic_parity_ratio and security_high_findings are known by name.",
            "lower case identifier: [a-z][a-z0-9_]*",
            _SME,
            True,
        ),
        Column("value", "Value", FLOAT, 12, "The metric's value.", "number", _SME, True),
        Column(
            "kind",
            "Kind",
            TEXT,
            13,
            "Which validation gate family it feeds.",
            "performance, fairness or security",
            _SME,
            True,
            METRIC_KINDS,
        ),
        Column(
            "slice",
            "Slice",
            TEXT,
            20,
            "Data slice the value was measured on; empty means the whole evaluation set.",
            "text, optional",
            _SME,
            True,
        ),
    ),
)

APPROVALS = Sheet(
    name="Approvals",
    purpose="One row per signed approval.",
    written_by="regbook",
    columns=(
        Column("model", "Model name", TEXT, 22, "Model approved.", "text", _RB),
        Column("version", "Version", INT, 9, "Version approved.", "whole number", _RB),
        Column(
            "content_hash",
            "Content hash",
            TEXT,
            30,
            "The artefact hash the approval names.",
            "text",
            _RB,
        ),
        Column("from_stage", "From stage", TEXT, 11, "Stage before.", "stage", _RB, choices=STAGES),
        Column("to_stage", "To stage", TEXT, 11, "Stage approved.", "stage", _RB, choices=STAGES),
        Column("principal", "Approver", TEXT, 24, "Who signed.", "text", _RB),
        Column(
            "role", "Role", TEXT, 16, "The role the approver acted in.", "role", _RB, choices=ROLES
        ),
        Column("fingerprint", "Key fingerprint", TEXT, 30, "The signing key.", "SHA256:...", _RB),
        Column(
            "at", "Approved at", DATETIME, 19, "When it was signed (UTC).", "date and time", _RB
        ),
        Column("note", "Note", TEXT, 30, "The approver's note.", "text", _RB),
        Column("seq", "Ledger seq", INT, 9, "The ledger event.", "whole number", _RB),
    ),
)

HISTORY = Sheet(
    name="History",
    purpose="One row per stage transition, gate result and archive move.",
    written_by="regbook",
    columns=(
        Column("at", "At", DATETIME, 19, "When (UTC).", "date and time", _RB),
        Column("model", "Model name", TEXT, 22, "Model.", "text", _RB),
        Column("version", "Version", INT, 9, "Version.", "whole number", _RB),
        Column(
            "event",
            "Event",
            TEXT,
            12,
            "What happened.",
            "register, metrics, gate, promote, archive, policy, keyring",
            _RB,
        ),
        Column("from_stage", "From stage", TEXT, 11, "Stage before.", "stage", _RB),
        Column("to_stage", "To stage", TEXT, 11, "Stage after.", "stage", _RB),
        Column("result", "Result", TEXT, 10, "Gate result.", "PASS or FAIL", _RB),
        Column("principal", "By", TEXT, 24, "Who signed the event.", "text", _RB),
        Column("role", "Role", TEXT, 16, "The role the signer acted in.", "role", _RB),
        Column("detail", "Detail", TEXT, 40, "More about the event.", "text", _RB),
        Column("seq", "Ledger seq", INT, 9, "The ledger event.", "whole number", _RB),
    ),
)

KEYS = Sheet(
    name="Keys",
    purpose="The keyring (allowed_signers), shown for reading. Editing it here changes "
    "nothing: the keyring file is the trust anchor.",
    written_by="regbook",
    columns=(
        Column("principal", "Principal", TEXT, 28, "Who the key belongs to.", "text", _RB_KEYS),
        Column(
            "roles",
            "Roles",
            TEXT,
            28,
            "What the key may sign: sme, governance-lead, ci.",
            "comma-separated roles",
            _RB_KEYS,
        ),
        Column("key_type", "Key type", TEXT, 12, "Key algorithm.", "ssh-ed25519", _RB_KEYS),
        Column(
            "fingerprint",
            "Fingerprint",
            TEXT,
            52,
            "SHA-256 fingerprint, as ssh-keygen -l prints it.",
            "SHA256:...",
            _RB_KEYS,
        ),
        Column(
            "valid_after",
            "Valid after",
            TEXT,
            20,
            "The key may sign from.",
            "UTC date-time or empty",
            _RB_KEYS,
        ),
        Column(
            "valid_before",
            "Valid before",
            TEXT,
            20,
            "The key may sign until (revocation or rotation).",
            "UTC date-time or empty",
            _RB_KEYS,
        ),
        Column(
            "line", "Keyring line", INT, 9, "Line in allowed_signers.", "whole number", _RB_KEYS
        ),
    ),
)

LEDGER = Sheet(
    name="Ledger",
    purpose="The append-only, hash-chained, signed event log: the source of truth. Never "
    "edit it; every other sheet is checked against it.",
    written_by="regbook only",
    columns=(
        Column("seq", "Seq", INT, 7, "Position in the chain, from 1.", "whole number", _RB_LEDGER),
        Column(
            "at",
            "At",
            TEXT,
            21,
            "When the event was signed.",
            "ISO 8601 UTC: yyyy-mm-ddThh:mm:ssZ",
            _RB_LEDGER,
        ),
        Column(
            "kind",
            "Kind",
            TEXT,
            10,
            "Event kind.",
            "register, metrics, approve, gate, promote, archive, policy, keyring",
            _RB_LEDGER,
        ),
        Column("model", "Model", TEXT, 22, "Model name.", "text", _RB_LEDGER),
        Column("version", "Version", INT, 9, "Version.", "whole number", _RB_LEDGER),
        Column(
            "payload",
            "Payload",
            TEXT,
            60,
            "The event's content.",
            "canonical JSON (RFC 8785)",
            _RB_LEDGER,
        ),
        Column(
            "prev",
            "Prev hash",
            TEXT,
            20,
            "Hash of the previous event; 64 zeros for the first.",
            "64 hex",
            _RB_LEDGER,
        ),
        Column(
            "hash",
            "Hash",
            TEXT,
            20,
            "SHA-256 of this event's canonical bytes.",
            "64 hex",
            _RB_LEDGER,
        ),
        Column("signer", "Signer", TEXT, 24, "Principal of the signing key.", "text", _RB_LEDGER),
        Column(
            "fingerprint", "Key fingerprint", TEXT, 30, "The signing key.", "SHA256:...", _RB_LEDGER
        ),
        Column(
            "signature",
            "Signature",
            TEXT,
            40,
            "SSH signature (PROTOCOL.sshsig) over "
            "the canonical bytes, in the namespace of the role acted in.",
            "armored SSH SIGNATURE",
            _RB_LEDGER,
        ),
    ),
)

_CARD = "SME, any time (not sealed)"


def _card_text(key: str, header: str, meaning: str, width: float = 40) -> Column:
    return Column(key, header, TEXT, width, meaning, "free text; line breaks are kept",
                  _CARD, wrap=True)  # fmt: skip


CARDS = Sheet(
    name="Cards",
    purpose="One row per model: the model card's prose, written by the SME. It is not "
    "sealed and not checked against the ledger; `regbook report card` adds the sealed "
    "facts and says which section came from where.",
    written_by="SME, any time (not sealed)",
    columns=(
        Column(
            "model",
            "Model name",
            TEXT,
            22,
            "The model this card describes; one row per model, for all its versions.",
            "as in Models",
            _CARD,
        ),
        _card_text(
            "intended_use",
            "Intended use",
            "What the model is for: the decision it supports, the users, the setting.",
        ),
        _card_text(
            "out_of_scope", "Out-of-scope uses", "Uses the model is not designed or validated for."
        ),
        _card_text(
            "training_data",
            "Training data",
            "What the training data is: source, period, population, preprocessing. "
            "The card adds the sealed data version and repository.",
        ),
        _card_text(
            "evaluation",
            "Evaluation",
            "How the model was evaluated, fairness included: evaluation data, groups "
            "compared, what the metrics mean. The card adds the sealed metrics and "
            "gate results.",
        ),
        _card_text(
            "limitations",
            "Limitations",
            "Known weaknesses, failure modes and conditions where results degrade.",
        ),
        _card_text(
            "ethics",
            "Ethical considerations",
            "Risks to people, sensitive attributes, mitigations, human oversight.",
        ),
        _card_text(
            "owners", "Owners", "Who is accountable for the model and whom to contact.", width=30
        ),
    ),
    optional=True,
)

GUIDE = Sheet(
    name="Guide",
    purpose="What every column means, its format, and who may edit it.",
    written_by="the template",
    columns=(
        Column("sheet", "Sheet", TEXT, 12, "", "", ""),
        Column("column", "Column", TEXT, 34, "", "", ""),
        Column("meaning", "Meaning", TEXT, 70, "", "", ""),
        Column("format", "Format", TEXT, 40, "", "", ""),
        Column("editor", "Who may edit", TEXT, 30, "", "", ""),
    ),
)

SHEETS: tuple[Sheet, ...] = (MODELS, METRICS, CARDS, APPROVALS, HISTORY, KEYS, LEDGER, GUIDE)
SHEETS_BY_NAME = {s.name: s for s in SHEETS}
# What commands read by default: every sheet but the optional ones (Cards), so a
# workbook made before those existed keeps working and a Cards edit never blocks a seal.
READ_SHEETS: tuple[Sheet, ...] = tuple(s for s in SHEETS if not s.optional)

# Views regbook derives from the ledger (Keys comes from allowed_signers instead).
LEDGER_VIEWS = (MODELS, METRICS, APPROVALS, HISTORY)


# --- normalising what Excel does to values -------------------------------------------

EXCEL_EPOCH = datetime(1899, 12, 30)


class BadValue(ValueError):
    """A cell value that cannot be read as its column's kind."""


def normalize(kind: str, value: object) -> str | int | float | None:
    """The comparable form of a cell value: what a view cell and the ledger agree on.

    Empty cells are None. Text is stripped; dates become ``yyyy-mm-dd``; date-times
    ``yyyy-mm-ddThh:mm:ssZ``; Excel date serials and integral floats are undone.
    Raises BadValue when the value cannot be read as ``kind``.
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if kind == TEXT:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, date):
            return value.isoformat()
        return str(value).strip()
    if kind == INT:
        if isinstance(value, bool):
            raise BadValue(f"expected a whole number, found {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            try:
                return int(value)
            except ValueError:  # more digits than Python converts (4,300)
                pass
        raise BadValue(f"expected a whole number, found {_show(value)}")
    if kind == FLOAT:
        if isinstance(value, bool):
            raise BadValue(f"expected a number, found {value!r}")
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise BadValue(f"expected a finite number, found {value!r}")
            return float(value)
        if isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise BadValue(f"expected a number, found {_show(value)}") from None
            if math.isfinite(out):
                return out
        raise BadValue(f"expected a number, found {_show(value)}")
    if kind == DATE:
        return _to_date(value).isoformat()
    if kind == DATETIME:
        return _to_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise AssertionError(kind)


# Excel counts 1900 as a leap year, so before March 1900 its day numbers and the
# calendar's differ by one: a date written there does not read back the same.
FIRST_EXCEL_DATE = "1900-03-01"


def excel_date(text: str) -> str:
    """A yyyy-mm-dd date a workbook keeps exactly; BadValue before 1900-03-01."""
    if text < FIRST_EXCEL_DATE:
        raise BadValue(
            f"{text} is before {FIRST_EXCEL_DATE}; a workbook cannot keep that date exactly"
        )
    return text


def finite_number(value: object) -> TypeGuard[int | float]:
    """A finite number as JSON gives it: a float other than NaN and infinity, or an int
    a float holds exactly (not a bool)."""
    if type(value) is int:
        return -(2**53) < value < 2**53
    return type(value) is float and math.isfinite(value)


def same(kind: str, a: object, b: object) -> bool:
    """Whether two values are equal once Excel's changes are undone."""
    if type(a) is type(b) and a == b and not isinstance(a, float):
        return True  # the common case: an untouched cell
    if (
        (type(a) is int or type(a) is float)
        and (type(b) is int or type(b) is float)
        and kind in (FLOAT, INT)
        and math.isfinite(a)
        and math.isfinite(b)
    ):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    try:
        na, nb = normalize(kind, a), normalize(kind, b)
    except BadValue:
        return False
    if isinstance(na, float) and isinstance(nb, float):
        return math.isclose(na, nb, rel_tol=1e-12, abs_tol=0.0)
    return na == nb


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + '..."'


def _to_date(value: object) -> date:
    """A date, and only a date: a time of day (in a datetime, a day number's fraction or
    the text) is not part of it, and a cell that gained one was edited."""
    if isinstance(value, datetime):
        if value.time() != time():
            raise BadValue(f"expected a date without a time of day, found {_show(value)}")
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 2958466:
            if value != int(value):
                raise BadValue(f"expected a date without a time of day, found {_show(value)}")
            return (EXCEL_EPOCH + timedelta(days=int(value))).date()
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return _to_date(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise BadValue(f"expected a date (yyyy-mm-dd), found {_show(value)}")


def _to_datetime(value: object) -> datetime:
    try:
        return _to_datetime_in_range(value)
    except OverflowError:  # next to year 1 or 9999, once rounded or moved to UTC
        raise BadValue(f"date and time out of range: {_show(value)}") from None


def _to_datetime_in_range(value: object) -> datetime:
    # Excel keeps date-times as fractions of a day, so a value read back can be a hair
    # under the second it was written at: round to the nearest second, never truncate.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return (value + timedelta(microseconds=500_000)).replace(microsecond=0)
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 2958466:
            return EXCEL_EPOCH + timedelta(seconds=round(float(value) * 86400))
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadValue(f"expected a date and time, found {_show(value)}") from None
        return _to_datetime_in_range(parsed)
    raise BadValue(f"expected a date and time, found {_show(value)}")


def guide_rows() -> list[tuple[str, str, str, str, str]]:
    """The Guide sheet's rows: one per column of every sheet but the Guide itself."""
    rows = []
    for sheet in SHEETS:
        if sheet is GUIDE:
            continue
        rows.append((sheet.name, "(sheet)", sheet.purpose, "", sheet.written_by))
        for col in sheet.columns:
            # The choices, unless the format already names every one of them.
            named = all(c in col.format for c in col.choices or ())
            choices = f" ({', '.join(col.choices)})" if col.choices and not named else ""
            rows.append((sheet.name, col.header, col.meaning, col.format + choices, col.editor))
    return rows
