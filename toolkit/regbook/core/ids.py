"""Identifiers: model names, MODEL@VERSION references and composite IDs (DESIGN section 4).

>>> from regbook.core.ids import CompositeId, ModelRef
>>> str(ModelRef.parse("credit-risk@7"))
'credit-risk@7'
>>> cid = CompositeId.parse("credit-risk@7+3f9a1c2b7d4e.d1e2f3a4.c0ffee12")
>>> cid.version, cid.artefact
(7, '3f9a1c2b7d4e')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from regbook.core.errors import InputError, cut
from regbook.core.schema import DVC_MD5_RE, FULL_COMMIT_RE, MODEL_NAME_RE

_REF_RE = re.compile(r"(?P<name>[^@\s]+)@(?P<version>[0-9]+)")
_CID_RE = re.compile(
    r"(?P<name>[^@\s]+)@(?P<version>[0-9]+)"
    r"\+(?P<a>[0-9a-f]{12})\.(?P<d>[0-9a-f]{8})\.(?P<c>[0-9a-f]{8})"
)


def check_model_name(name: str, where: str = "model name") -> str:
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise InputError(
            f"{where}: {name!r} is not a valid model name "
            "(lower case a-z 0-9 . _ -, at most 64, starting with a letter or digit)"
        )
    return name


def _version(digits: str, where: str) -> int:
    """A version typed as digits; more than 15 of them (beyond what a spreadsheet cell
    or canonical JSON keeps exactly) is refused, not converted."""
    if len(digits) > 15:
        raise InputError(f"{where}: version {cut(digits, 20)} is too large")
    return check_version(int(digits), where)


def check_version(value: object, where: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: {value!r} is not a positive whole number")
    return value


def check_code_commit(value: str, where: str = "code commit") -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not FULL_COMMIT_RE.fullmatch(text):
        raise InputError(
            f"{where}: {value!r} is not a full git commit ID (40 or 64 hex); "
            "abbreviated IDs are ambiguous in ten years"
        )
    return text


def check_data_version(value: str, where: str = "training data version") -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not (
        FULL_COMMIT_RE.fullmatch(text) or DVC_MD5_RE.fullmatch(text)
    ):
        raise InputError(
            f"{where}: {value!r} is neither a full git commit ID (40 or 64 hex) nor a "
            "DVC md5 (32 hex); abbreviated IDs are ambiguous in ten years"
        )
    return text


@dataclass(frozen=True, order=True)
class ModelRef:
    """``NAME@VERSION``, or just ``NAME`` (version None) where a command allows it."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str, *, version_required: bool = True) -> ModelRef:
        text = text.strip()
        match = _REF_RE.fullmatch(text)
        if match:
            name = check_model_name(match["name"], f"{text!r}")
            return cls(name, _version(match["version"], f"{cut(text)!r}"))
        if not version_required and "@" not in text:
            return cls(check_model_name(text, f"{text!r}"))
        want = "MODEL@VERSION" if version_required else "MODEL or MODEL@VERSION"
        raise InputError(f"{text!r} is not {want} (e.g. credit-risk@7)")


@dataclass(frozen=True)
class CompositeId:
    """``NAME@VERSION+A.D.C``: 12 hex of the content hash, 8 of the data version and 8 of
    the code commit. It names a version and carries enough to catch a mismatch."""

    name: str
    version: int
    artefact: str
    data: str
    code: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}+{self.artefact}.{self.data}.{self.code}"

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version)

    @classmethod
    def build(
        cls, name: str, version: int, content_hex: str, data_version: str, code_commit: str
    ) -> CompositeId:
        return cls(name, version, content_hex[:12], data_version[:8], code_commit[:8])

    @classmethod
    def parse(cls, text: str) -> CompositeId:
        match = _CID_RE.fullmatch(text.strip())
        if not match:
            raise InputError(
                f"{text!r} is not a composite ID (NAME@VERSION+A.D.C, e.g. "
                "credit-risk@7+3f9a1c2b7d4e.d1e2f3a4.c0ffee12)"
            )
        name = check_model_name(match["name"], f"{text!r}")
        version = _version(match["version"], f"{cut(text)!r}")
        return cls(name, version, match["a"], match["d"], match["c"])
