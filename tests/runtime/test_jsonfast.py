"""The runtime's JSON agrees with the standard library's, byte for byte."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.runtime import jsonfast

_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
)
DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5)
    ),
    max_leaves=25,
)


@given(DOCUMENTS)
def test_dumps_matches_json(document: Any) -> None:
    assert jsonfast.dumps(document) == json.dumps(document, ensure_ascii=False)


@given(DOCUMENTS, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_reads_what_json_writes(document: Any, padding: str) -> None:
    text = padding + json.dumps(document) + padding
    assert jsonfast.loads(text.encode()) == json.loads(text)


@given(st.text(max_size=30))
def test_loads_accepts_and_refuses_what_json_does(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            jsonfast.loads(text)
        assert str(raised.value) == str(exc)
        return
    got = jsonfast.loads(text)
    assert got == expected or (isinstance(got, float) and math.isnan(got))


def test_non_finite_numbers_and_cycles_behave_as_in_json() -> None:
    assert jsonfast.dumps([math.inf, -math.inf]) == "[Infinity, -Infinity]"
    assert math.isnan(jsonfast.loads("NaN"))
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsonfast.dumps(cycle)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsonfast.dumps({1, 2})
    assert jsonfast.dumps({2, 1}, default=sorted) == "[1, 2]"
