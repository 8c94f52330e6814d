"""The shortcuts verify takes for cells as regbook wrote them never disagree with the full
comparison: a quick "equal" is always an equal that ``same`` would give."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regbook.core.schema import DATE, DATETIME, FLOAT, INT, TEXT
from regbook.registry import diff as verify

KINDS = (TEXT, INT, FLOAT, DATE, DATETIME)

cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.dates(min_value=date(1900, 3, 1)),
    st.datetimes(min_value=datetime(1900, 3, 1)),
)


@settings(max_examples=600, deadline=None)
@given(a=cells, b=cells)
def test_untouched_implies_same_under_every_kind(a, b):
    for kind in KINDS:
        if verify.untouched(kind, a, b):
            assert verify.same(kind, a, b), (kind, a, b)


@settings(max_examples=300, deadline=None)
@given(value=cells)
def test_a_value_is_untouched_against_itself_unless_it_is_not_finite(value):
    # The shortcut must still take the common case, or it saves nothing.
    finite = not (isinstance(value, float) and (value != value or abs(value) == float("inf")))
    for kind in KINDS:
        quick = not isinstance(value, float) or (finite and kind in (INT, FLOAT))
        assert verify.untouched(kind, value, value) == quick
    if isinstance(value, int) and not isinstance(value, bool):
        assert verify.untouched(INT, value, float(value)) == (float(value) == value)


def testwhole_numbers_read_as_excel_hands_them_back():
    assert verify.whole_number(7) == 7
    assert verify.whole_number(7.0) == 7
    assert verify.whole_number(" 7 ") == 7
    assert verify.whole_number(7.5) is None
    assert verify.whole_number("seven") is None
    assert verify.whole_number(None) is None


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 1)), micro=st.booleans())
def test_dates_and_times_as_excel_hands_them_back(moment, micro):
    moment = moment if micro else moment.replace(microsecond=0)
    text = moment.isoformat() + "Z"
    for found in (moment, moment.date()):
        for want in (text, text[:10], moment.strftime("%Y-%m-%dT%H:%M:%SZ")):
            for kind in KINDS:
                if verify.untouched(kind, want, found):
                    assert verify.same(kind, want, found), (kind, want, found)
    assert verify.untouched(DATETIME, text, moment) == (not moment.microsecond)
    assert verify.untouched(DATE, moment.date().isoformat(), moment.date())
    assert not verify.untouched(TEXT, text, moment)  # text columns keep the full check


def test_reading_beside_the_first_sheet_waits_and_passes_errors_on(registered):
    # on_first runs while the other sheets are read; whatever it raises comes out after
    # the reading thread is done, and the other sheets' problems come out too.
    from regbook.core.schema import LEDGER
    from regbook.workbook.read import read_workbook

    seen = []
    data = read_workbook(registered.workbook, first=LEDGER, on_first=seen.append)
    assert seen == [data[LEDGER.name]] and "Models" in data.tables

    class Stop(Exception):
        pass

    def fail(_table):
        raise Stop

    with pytest.raises(Stop):
        read_workbook(registered.workbook, first=LEDGER, on_first=fail)


ledger_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=1e6),
    st.sampled_from(["", " ", " x ", "2026-01-01T00:00:00Z", "register", " 7 "]),
    st.text(max_size=6),
)
number_cells = st.one_of(st.integers(-5, 10**6), st.floats(-5, 1e6), ledger_cells)
nonblank = st.text(min_size=1, max_size=6).filter(str.strip)
text_cells = st.one_of(nonblank, nonblank, nonblank, nonblank, ledger_cells)  # mostly text


@settings(max_examples=500, deadline=None)
@given(
    numbers=st.tuples(number_cells, number_cells),
    texts=st.lists(text_cells, min_size=9, max_size=9),
)
def test_usual_ledger_rows_read_as_the_cell_by_cell_reading_does(numbers, texts):
    from regbook.ledger import events as ledger

    row = [numbers[0], *texts[:3], numbers[1], *texts[3:]]
    quick = ledger._usual_row(row)
    if quick is None:
        return
    slow = ledger._row_values(row)
    assert quick == slow
    assert [type(v) for v in quick] == [type(v) for v in slow]


def test_a_ledger_row_as_written_takes_the_quick_reading():
    from regbook.ledger import events as ledger

    row = [3.0, "2026-01-01T00:00:00Z", "register", "m", 2.0, "{}", "0" * 64, "a" * 64,
           "alice@example.com", "SHA256:x", "-----BEGIN SSH SIGNATURE-----"]  # fmt: skip
    assert ledger._usual_row(row) == [3, *row[1:4], 2, *row[5:]]
    assert ledger._usual_row([*row[:4], None, *row[5:]])[4] is None
