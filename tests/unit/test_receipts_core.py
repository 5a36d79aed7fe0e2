"""The receipt decisions: state moves, duplicates, early receipts, the not-delivered mail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailbridge.core.receipts import (
    ReceiptAction,
    RowOutcome,
    combine_parts,
    decide_receipt,
    receipt_summary,
    sms_state_of,
    undelivered_body,
    undelivered_due,
)
from mailbridge.models import SmsState
from mailbridge.providers.events import ReceiptState

T0 = datetime(2026, 12, 2, 16, 0, 5, tzinfo=UTC)


class TestStateOf:
    @pytest.mark.parametrize(
        ("receipt", "state"),
        [
            (ReceiptState.DELIVERED, SmsState.DELIVERED),
            (ReceiptState.FAILED, SmsState.FAILED),
            (ReceiptState.EXPIRED, SmsState.EXPIRED),
            (ReceiptState.PENDING, None),
        ],
    )
    def test_receipt_state_to_sms_state(self, receipt: ReceiptState, state: SmsState) -> None:
        """Each receipt state maps to its SPEC §4 state; pending to none."""
        assert sms_state_of(receipt) is state

    def test_unknown_value_is_interim(self) -> None:
        """A value outside the enum changes nothing."""
        assert sms_state_of("weird") is None


class TestDecide:
    @pytest.mark.parametrize(
        ("current", "receipt", "action"),
        [
            # the id is not known yet, or the send is not recorded: kept for mark_sent
            (None, ReceiptState.DELIVERED, ReceiptAction.KEEP),
            (None, ReceiptState.PENDING, ReceiptAction.KEEP),
            (SmsState.SENDING, ReceiptState.DELIVERED, ReceiptAction.KEEP),
            (SmsState.SCHEDULED, ReceiptState.FAILED, ReceiptAction.KEEP),
            # sent: a final receipt moves it, an interim one is only recorded
            (SmsState.SENT, ReceiptState.DELIVERED, ReceiptAction.APPLY),
            (SmsState.SENT, ReceiptState.FAILED, ReceiptAction.APPLY),
            (SmsState.SENT, ReceiptState.EXPIRED, ReceiptAction.APPLY),
            (SmsState.SENT, ReceiptState.PENDING, ReceiptAction.RECORD),
            # final: the same state again is a duplicate, another is recorded only
            (SmsState.DELIVERED, ReceiptState.DELIVERED, ReceiptAction.DUPLICATE),
            (SmsState.FAILED, ReceiptState.FAILED, ReceiptAction.DUPLICATE),
            (SmsState.EXPIRED, ReceiptState.EXPIRED, ReceiptAction.DUPLICATE),
            (SmsState.DELIVERED, ReceiptState.EXPIRED, ReceiptAction.RECORD),
            (SmsState.FAILED, ReceiptState.DELIVERED, ReceiptAction.RECORD),
            (SmsState.DELIVERED, ReceiptState.PENDING, ReceiptAction.RECORD),
            (SmsState.CANCELLED, ReceiptState.DELIVERED, ReceiptAction.RECORD),
        ],
    )
    def test_table(
        self, current: SmsState | None, receipt: ReceiptState, action: ReceiptAction
    ) -> None:
        """What a receipt does depends on the row's state and the receipt's."""
        assert decide_receipt(current, receipt) is action


class TestSummary:
    def test_with_error_code(self) -> None:
        """Status, error code and time in UTC."""
        assert receipt_summary("UNDELIV", "001", T0) == "UNDELIV err 001 at 2026-12-02 16:00:05 UTC"

    def test_without_error_code(self) -> None:
        """No code, no ``err``; an empty status is ``?``."""
        assert receipt_summary("DELIVRD", None, T0) == "DELIVRD at 2026-12-02 16:00:05 UTC"
        assert receipt_summary(" ", " ", T0).startswith("? at ")


def row(recipient: str, state: SmsState, *, by_receipt: bool = False, **kw: str) -> RowOutcome:
    """One settled row of a request."""
    return RowOutcome(recipient=recipient, state=state, by_receipt=by_receipt, **kw)


class TestUndeliveredDue:
    def test_all_failed_one_by_receipt(self) -> None:
        """Every row failed or expired, one of them after sent: due."""
        rows = [
            row("+1", SmsState.FAILED, by_receipt=True),
            row("+2", SmsState.EXPIRED),
        ]
        assert undelivered_due(rows, already_sent=False)

    def test_not_twice(self) -> None:
        """Once sent, never again for the request."""
        rows = [row("+1", SmsState.FAILED, by_receipt=True)]
        assert not undelivered_due(rows, already_sent=True)

    @pytest.mark.parametrize(
        "other", [SmsState.SENT, SmsState.DELIVERED, SmsState.SCHEDULED, SmsState.CANCELLED]
    )
    def test_one_row_not_failed(self, other: SmsState) -> None:
        """A row still on its way, delivered or cancelled: not due."""
        rows = [row("+1", SmsState.FAILED, by_receipt=True), row("+2", other)]
        assert not undelivered_due(rows, already_sent=False)

    def test_only_refused_at_hand_over(self) -> None:
        """No row failed by a receipt: the hand-over rules apply, not this mail."""
        rows = [row("+1", SmsState.FAILED), row("+2", SmsState.EXPIRED)]
        assert not undelivered_due(rows, already_sent=False)

    def test_no_rows(self) -> None:
        """A request without SMS rows never gets it."""
        assert not undelivered_due([], already_sent=False)


class TestUndeliveredBody:
    def test_lines(self) -> None:
        """The SPEC §2 error line with the ID, then one line per number."""
        body = undelivered_body(
            "42",
            [
                row("+79991234567", SmsState.FAILED, status="UNDELIV", error_code="001"),
                row("+79991234568", SmsState.EXPIRED, status="EXPIRED"),
                row("+79991234569", SmsState.FAILED),
            ],
        )
        assert body.splitlines() == [
            "ERROR = 8 (Message cannot be delivered), ID - 42",
            "not delivered to +79991234567: failed (UNDELIV err 001)",
            "not delivered to +79991234568: expired (EXPIRED)",
            "not delivered to +79991234569: failed",
        ]

    def test_number_once(self) -> None:
        """A number with several rows (several messages) is named once."""
        body = undelivered_body(
            "7", [row("+1", SmsState.FAILED), row("+1", SmsState.EXPIRED), row("+2", SmsState.SENT)]
        )
        assert body.splitlines()[1:] == ["not delivered to +1: failed"]


class TestCombineParts:
    @pytest.mark.parametrize(
        ("states", "whole"),
        [
            (["delivered", "delivered"], "delivered"),
            (["delivered", None], "pending"),
            ([None, None], "pending"),
            (["delivered", "failed"], "failed"),
            (["expired", None], "expired"),
            (["expired", "failed"], "failed"),
            ([], "pending"),
        ],
    )
    def test_table(self, states: list[str | None], whole: str) -> None:
        """A failed part fails the SMS; it is delivered only when every part is."""
        assert combine_parts(states) == whole
