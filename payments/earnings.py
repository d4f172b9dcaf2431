"""The one function the evaluations side calls when a vote is accepted.

STUB (the only one allowed until the Payments issue lands): `earning_record`
is a documented no-op. The Payments issue replaces its body with the ledger
posting (client funds -> rater payable, reference `vote:<id>:pay`) without
changing its signature, so `vote_submit` never changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluations.models import Vote


def earning_record(*, vote: Vote) -> None:
    """Record what the rater earned for `vote`. Called inside the vote's transaction.

    No-op stub until the Payments issue lands: nothing is posted yet.
    """
    return None
