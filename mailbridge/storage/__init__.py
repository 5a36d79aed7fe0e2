"""Durable state: the ``Storage`` protocol and its implementations."""

from mailbridge.storage.base import (
    AcceptResult,
    Attempt,
    Intake,
    ReplyDraft,
    ReplyJob,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SmsJob,
    SmsView,
    Storage,
)

__all__ = [
    "AcceptResult",
    "Attempt",
    "Intake",
    "ReplyDraft",
    "ReplyJob",
    "ReplyView",
    "RequestDetail",
    "RequestSummary",
    "SmsJob",
    "SmsView",
    "Storage",
]
