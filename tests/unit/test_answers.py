"""Tests for mailbridge.core.answers: the SPEC §2 result lines and SMTP replies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.answers import ResultLine, error_line, ok_line, parse_result_line, smtp_reply

# (N, line without an ID, line with ID 42)
ERROR_CASES = [
    (1, "ERROR = 1 (Error in parameters)", "ERROR = 1 (Error in parameters)"),
    (2, "ERROR = 2 (Invalid login or password)", "ERROR = 2 (Invalid login or password)"),
    (3, "ERROR = 3 (Insufficient funds)", "ERROR = 3 (Insufficient funds), ID - 42"),
    (
        4,
        "ERROR = 4 (IP address temporarily blocked)",
        "ERROR = 4 (IP address temporarily blocked)",
    ),
    (5, "ERROR = 5 (Invalid date format)", "ERROR = 5 (Invalid date format)"),
    (6, "ERROR = 6 (Message denied)", "ERROR = 6 (Message denied), ID - 42"),
    (
        7,
        "ERROR = 7 (Invalid phone number format)",
        "ERROR = 7 (Invalid phone number format), ID - 42",
    ),
    (
        8,
        "ERROR = 8 (Message cannot be delivered)",
        "ERROR = 8 (Message cannot be delivered), ID - 42",
    ),
    (
        9,
        "ERROR = 9 (Duplicate request, wait a minute)",
        "ERROR = 9 (Duplicate request, wait a minute)",
    ),
]

request_ids = st.one_of(
    st.integers(min_value=1, max_value=2147483647).map(str),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_",
        min_size=1,
        max_size=40,
    ),
)


class TestOkLine:
    @pytest.mark.parametrize(
        ("n", "request_id", "expected"),
        [
            (1, "42", "OK - 1 SMS, ID - 42"),
            (0, "1", "OK - 0 SMS, ID - 1"),
            (12, "alert-7.x_1", "OK - 12 SMS, ID - alert-7.x_1"),
        ],
    )
    def test_table(self, n: int, request_id: str, expected: str) -> None:
        """The OK line, exactly."""
        assert ok_line(n, request_id) == expected

    @pytest.mark.parametrize("request_id", ["", "a b", "42\r\nBcc: x@example.com", "ид"])
    def test_unsafe_id_rejected(self, request_id: str) -> None:
        """An ID that could break the line is a ValueError."""
        with pytest.raises(ValueError, match="request ID"):
            ok_line(1, request_id)

    def test_negative_count_rejected(self) -> None:
        """A negative SMS count is a ValueError."""
        with pytest.raises(ValueError, match="negative"):
            ok_line(-1, "1")


class TestErrorLine:
    @pytest.mark.parametrize(("code", "without_id", "with_id"), ERROR_CASES)
    def test_every_error(self, code: int, without_id: str, with_id: str) -> None:
        """Each error number, with and without a known ID."""
        assert error_line(code) == without_id
        assert error_line(code, None) == without_id
        assert error_line(code, "42") == with_id

    @pytest.mark.parametrize("code", [0, 10, -1])
    def test_unknown_code(self, code: int) -> None:
        """An error number outside 1..9 is a ValueError."""
        with pytest.raises(ValueError, match="unknown SMSC error"):
            error_line(code)

    def test_unsafe_id_rejected(self) -> None:
        """An ID with a line break is refused for errors that carry it."""
        with pytest.raises(ValueError, match="request ID"):
            error_line(7, "1\nX-Evil: 1")


class TestSmtpReply:
    @pytest.mark.parametrize(
        ("line", "reject", "code", "expected"),
        [
            ("OK - 1 SMS, ID - 42", False, None, "250 2.0.0 OK - 1 SMS, ID - 42"),
            ("OK - 1 SMS, ID - 42", True, None, "250 2.0.0 OK - 1 SMS, ID - 42"),
            (
                "ERROR = 7 (Invalid phone number format), ID - 42",
                False,
                7,
                "250 2.0.0 ERROR = 7 (Invalid phone number format), ID - 42",
            ),
            (
                "ERROR = 2 (Invalid login or password)",
                True,
                2,
                "550 5.7.1 ERROR = 2 (Invalid login or password)",
            ),
            (
                "ERROR = 4 (IP address temporarily blocked)",
                True,
                4,
                "450 4.7.1 ERROR = 4 (IP address temporarily blocked)",
            ),
            (
                "ERROR = 4 (IP address temporarily blocked)",
                False,
                4,
                "250 2.0.0 ERROR = 4 (IP address temporarily blocked)",
            ),
        ],
    )
    def test_table(self, line: str, reject: bool, code: int | None, expected: str) -> None:
        """The SPEC §2 examples: 250 by default, 550 or 450 when rejecting."""
        assert smtp_reply(line, reject=reject, code=code) == expected

    @pytest.mark.parametrize(("code", "without_id", "with_id"), ERROR_CASES)
    def test_reject_every_error(self, code: int, without_id: str, with_id: str) -> None:
        """Rejected, every error is 550 5.7.1 except 4, which is 450 4.7.1."""
        prefix = "450 4.7.1 " if code == 4 else "550 5.7.1 "
        assert smtp_reply(with_id, reject=True, code=code) == prefix + with_id

    @pytest.mark.parametrize("line", ["OK\r\nRSET", "a\nb", "a\rb"])
    def test_line_break_rejected(self, line: str) -> None:
        """A reply line with CR or LF is a ValueError."""
        with pytest.raises(ValueError, match="line break"):
            smtp_reply(line, reject=False, code=None)


class TestParseResultLine:
    @pytest.mark.parametrize(("code", "without_id", "with_id"), ERROR_CASES)
    def test_every_error(self, code: int, without_id: str, with_id: str) -> None:
        """Each error line reads back to its number and ID."""
        has_id = with_id != without_id
        parsed = parse_result_line(with_id)
        assert parsed.ok is False
        assert parsed.number == code
        assert parsed.request_id == ("42" if has_id else None)
        assert parse_result_line(without_id).request_id is None

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            (
                "OK - 3 SMS, ID - 7",
                ResultLine(ok=True, number=3, request_id="7"),
            ),
            (
                "250 2.0.0 OK - 3 SMS, ID - 7",
                ResultLine(ok=True, number=3, request_id="7"),
            ),
            (
                "550 5.7.1 ERROR = 2 (Invalid login or password)\r\n",
                ResultLine(
                    ok=False, number=2, request_id=None, description="Invalid login or password"
                ),
            ),
            (
                "ERROR = 6 (Denied message (by text)), ID - ab.1",
                ResultLine(
                    ok=False, number=6, request_id="ab.1", description="Denied message (by text)"
                ),
            ),
        ],
    )
    def test_table(self, line: str, expected: ResultLine) -> None:
        """Lines with an SMTP prefix, a trailing CRLF or nested parentheses."""
        assert parse_result_line(line) == expected

    @pytest.mark.parametrize(
        "line",
        ["", "OK", "OK - 1 SMS", "OK - x SMS, ID - 1", "ERROR = x (y)", "ERROR 1", "250 2.0.0"],
    )
    def test_not_a_result_line(self, line: str) -> None:
        """Anything else is a ValueError."""
        with pytest.raises(ValueError, match="result line"):
            parse_result_line(line)

    @given(st.integers(min_value=0, max_value=10**6), request_ids)
    def test_ok_round_trip(self, n: int, request_id: str) -> None:
        """parse_result_line inverts ok_line."""
        parsed = parse_result_line(ok_line(n, request_id))
        assert parsed == ResultLine(ok=True, number=n, request_id=request_id)

    @given(st.integers(min_value=1, max_value=9), st.none() | request_ids, st.booleans())
    def test_error_round_trip(self, code: int, request_id: str | None, reject: bool) -> None:
        """parse_result_line inverts error_line, also through smtp_reply."""
        line = error_line(code, request_id)
        parsed = parse_result_line(smtp_reply(line, reject=reject, code=code))
        assert parsed.ok is False
        assert parsed.number == code
        assert parsed.request_id == (request_id if code in {3, 6, 7, 8} else None)
