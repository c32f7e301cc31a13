"""The intake's answers that are final for a package — and, by elimination, every other 4xx.

Only these codes (with HTTP 422) mean "this package is refused, do not send it again": the relay
records the package as rejected, moves on and tells the portal. Any other 4xx — authentication,
authorisation, routing, size limits, protocol errors — is a *configuration* error between relay and
intake: the relay keeps every item, stops the channel, turns readiness red and resumes by itself
when the intake answers correctly again (docs/relay.md, "Answers from the intake").
"""

from __future__ import annotations

from typing import Literal

__all__ = ["PACKAGE_REFUSALS", "PACKAGE_REFUSED_STATUS", "AnswerKind", "classify"]

PACKAGE_REFUSED_STATUS = 422
#: The documented package refusals (docs/intake.md, "Receiving deliveries").
PACKAGE_REFUSALS = frozenset({
    #: a field the intake would store is out of range (a date, a length, an enumeration)
    "PACKAGE_VALUE_OUT_OF_RANGE",
})

AnswerKind = Literal["receipt", "refused", "retry", "configuration", "failed"]


def classify(status: int, code: str | None) -> AnswerKind:
    """What an answer of the delivery endpoint means for the package that got it."""
    if status in (200, 201):
        return "receipt"
    if status in (409, 502, 503, 504):
        return "retry"
    if status == PACKAGE_REFUSED_STATUS and code in PACKAGE_REFUSALS:
        return "refused"
    if 400 <= status < 500:
        return "configuration"
    return "failed"  # 500 and anything unexpected: this attempt failed; the item is tried again later
