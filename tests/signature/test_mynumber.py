"""My Number check digit (検査用数字)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signature.errors import SignatureError
from signature.mynumber import check_digit, is_valid_my_number


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        pytest.param("123456789018", True, id="published-example"),
        pytest.param("123456789011", False, id="wrong-check-digit"),
        pytest.param("000000000000", True, id="all-zero-remainder-0"),
        pytest.param("12345678901", False, id="eleven-digits"),
        pytest.param("1234567890180", False, id="thirteen-digits"),
        pytest.param("１２３４５６７８９０１８", False, id="full-width-digits"),
        pytest.param("12345678901a", False, id="letter"),
    ],
)
def test_validity(number: str, valid: bool) -> None:
    assert is_valid_my_number(number) is valid


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_exactly_one_check_digit_is_valid(body: str) -> None:
    valid = [d for d in "0123456789" if is_valid_my_number(body + d)]
    assert valid == [str(check_digit(body))]


def test_check_digit_refuses_bad_input() -> None:
    with pytest.raises(SignatureError):
        check_digit("1234")
