"""What a reuse decision in the triggerer comes to: a published hit or pin, an identical execution to
wait for, or a hand-over to a worker (a reason in words, or :class:`HandOver` raised)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class HandOver(Exception):
    """Why the node goes to a worker, in words."""


@dataclass(frozen=True)
class Reused:
    """A hit or a pin, published to the ledger: the XCom to push and the log line to write."""

    xcom: dict[str, Any]
    line: str


@dataclass(frozen=True)
class Waiting:
    """An identical execution is running elsewhere: wait for it, then decide again."""

    fingerprint: str
    holder: str
    until: str
