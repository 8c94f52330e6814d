"""Validation gates: thresholds from ``regbook.toml`` evaluated over sealed metrics.

A gate is ``METRIC OP NUMBER`` with OP one of ``>= > <= < ==``. A gated metric that is
missing fails its gate; it is never skipped::

    rules = parse_gates({"performance": "auc_roc >= 0.75"})
    outcome = evaluate(rules, {"auc_roc": 0.81})
    outcome.result          # "PASS"
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regbook.core.errors import InputError
from regbook.core.schema import finite_number

OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_RULE = re.compile(
    r"\s*([a-z][a-z0-9_]*)\s*(>=|<=|==|>|<)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
)
PASS, FAIL = "PASS", "FAIL"


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {_number(self.threshold)}"

    @classmethod
    def parse(cls, name: str, rule: str, where: str = "regbook.toml: [gates]") -> Gate:
        match = _RULE.fullmatch(rule) if isinstance(rule, str) else None
        if not match:
            raise InputError(
                f'{where} {name}: {rule!r} is not a gate like "auc_roc >= 0.75" '
                "(operators: >= > <= < ==)"
            )
        threshold = float(match[3])
        if not math.isfinite(threshold):
            raise InputError(f"{where} {name}: the threshold must be a finite number")
        return cls(name, match[1], match[2], threshold)

    def check(self, value: float | None) -> str:
        if value is None:
            return FAIL
        return PASS if OPERATORS[self.op](value, self.threshold) else FAIL


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    value: float | None
    result: str

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate.name,
            "metric": self.gate.metric,
            "op": self.gate.op,
            "threshold": _number(self.gate.threshold),
            "value": self.value,
            "result": self.result,
        }


@dataclass(frozen=True)
class Outcome:
    results: tuple[GateResult, ...]

    @property
    def result(self) -> str:
        return PASS if self.results and all(r.result == PASS for r in self.results) else FAIL

    def to_json(self) -> dict[str, Any]:
        return {"gates": [r.to_json() for r in self.results], "result": self.result}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def parse_gates(config: Mapping[str, str]) -> tuple[Gate, ...]:
    if not config:
        raise InputError("regbook.toml: [gates] is empty; a gate run needs at least one gate")
    return tuple(Gate.parse(name, rule) for name, rule in config.items())


def evaluate(gates: tuple[Gate, ...], metrics: Mapping[str, float]) -> Outcome:
    """Each gate over the whole-evaluation-set value of its metric."""
    return Outcome(
        tuple(GateResult(g, metrics.get(g.metric), g.check(metrics.get(g.metric))) for g in gates)
    )


def recorded_outcome(payload: Mapping[str, Any]) -> Outcome:
    """The outcome a gate event recorded, read back; InputError unless every gate is
    there as ``gate`` writes it (texts, a known operator, finite numbers, PASS or FAIL):
    the payload is signed, not trusted to be well-formed."""
    gates = payload.get("gates")
    if not isinstance(gates, list):
        raise InputError("gate event payload is malformed: gates is not a list")
    results = []
    for n, item in enumerate(gates, start=1):
        if not isinstance(item, Mapping):
            raise InputError(f"gate event payload is malformed: gate {n} is not an object")
        name, metric, op = item.get("gate"), item.get("metric"), item.get("op")
        threshold, value, result = item.get("threshold"), item.get("value"), item.get("result")
        if not (isinstance(name, str) and isinstance(metric, str) and op in _OPS):
            raise InputError(
                f"gate event payload is malformed: gate {n} lacks its name, metric or operator"
            )
        if not finite_number(threshold) or not (value is None or finite_number(value)):
            raise InputError(
                f"gate event payload is malformed: gate {n} has a threshold or value that "
                "is not a finite number"
            )
        if result not in (PASS, FAIL):
            raise InputError(f"gate event payload is malformed: gate {n} result is not PASS/FAIL")
        gate = Gate(name, metric, op, float(threshold))
        results.append(GateResult(gate, None if value is None else float(value), result))
    return Outcome(tuple(results))


_OPS = tuple(OPERATORS)  # compared by ==, so a payload's list or object is no error
