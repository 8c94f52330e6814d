"""Identifiers and canonical encoding: round trips (Hypothesis) and refusals."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from regbook.core.errors import InputError
from regbook.core.ids import (
    CompositeId,
    ModelRef,
    check_code_commit,
    check_data_version,
    check_model_name,
)
from regbook.ledger.events import canonical, event_bytes

names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
versions = st.integers(min_value=1, max_value=10**9)


@given(names, versions, hexes, hexes, hexes)
def test_composite_id_round_trip(name, version, content, data, code):
    cid = CompositeId.build(name, version, content, data, code)
    assert CompositeId.parse(str(cid)) == cid
    assert str(cid) == f"{name}@{version}+{content[:12]}.{data[:8]}.{code[:8]}"
    assert ModelRef.parse(str(cid.ref)) == cid.ref


@given(names, versions)
def test_model_ref_round_trip(name, version):
    ref = ModelRef(name, version)
    assert ModelRef.parse(str(ref)) == ref
    assert ModelRef.parse(name, version_required=False) == ModelRef(name)


@pytest.mark.parametrize("text", ["credit-risk", "Credit@1", "x@0", "x@-1", "@1", "a b@1"])
def test_model_ref_refuses(text):
    with pytest.raises(InputError):
        ModelRef.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "credit-risk@7+3f9a1c2b7d4e.d1e2f3a4",  # missing part
        "credit-risk@7+3F9A1C2B7D4E.d1e2f3a4.c0ffee12",  # upper case
        "credit-risk@7+3f9a1c2b7d4.d1e2f3a4.c0ffee12",  # short
        "credit-risk+3f9a1c2b7d4e.d1e2f3a4.c0ffee12",
    ],
)
def test_composite_id_refuses(text):
    with pytest.raises(InputError):
        CompositeId.parse(text)


def test_commit_and_data_version_rules():
    assert check_code_commit("A" * 40) == "a" * 40
    assert check_code_commit("b" * 64) == "b" * 64
    for bad in ("c0ffee1", "g" * 40, "a" * 39, "a" * 32):
        with pytest.raises(InputError):
            check_code_commit(bad)
    assert check_data_version("d" * 32) == "d" * 32
    assert check_data_version("d" * 40) == "d" * 40
    with pytest.raises(InputError, match="abbreviated"):
        check_data_version("d" * 12)
    with pytest.raises(InputError):
        check_model_name("-leading-dash")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(min_value=-1e15, max_value=1e15)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_canonical_is_stable_and_round_trips(payload):
    text = canonical(payload)
    assert canonical(json.loads(text)) == text
    assert text.encode() == rfc8785.dumps(payload)


@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.text(max_size=20),
    st.one_of(st.none(), versions),
)
def test_event_bytes_equal_the_canonical_object(payload, model, version):
    fields = {
        "seq": 3,
        "at": "2026-11-26T10:00:00Z",
        "kind": "register",
        "model": model,
        "version": version,
        "prev": "0" * 64,
        "signer": "a@b",
        "fingerprint": "SHA256:x",
    }
    spliced = event_bytes(payload_text=canonical(payload), **fields)
    assert spliced == rfc8785.dumps({**fields, "payload": payload})
    assert hashlib.sha256(spliced).hexdigest()


@given(
    st.datetimes(
        min_value=__import__("datetime").datetime(1901, 1, 1),
        max_value=__import__("datetime").datetime(9000, 1, 1),
    )
)
def test_datetimes_survive_excel_serials(when):
    """Excel stores a date-time as a float of days; reading it back must give the same
    second, never the one before (a truncated 59.999999)."""
    from datetime import timedelta

    from regbook.core.schema import DATETIME, EXCEL_EPOCH, normalize

    when = when.replace(microsecond=0)
    serial = (when - EXCEL_EPOCH) / timedelta(days=1)
    assert normalize(DATETIME, serial) == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    # what a reader converting the serial itself may hand back: a hair under the second
    almost = when - timedelta(microseconds=3)
    assert normalize(DATETIME, almost) == when.strftime("%Y-%m-%dT%H:%M:%SZ")
