"""The demo's quality review: signals over the demo crowd's votes, then the rules.

The demo crowd (evaluations/demo.py) has careless, always-left and too-fast raters among its
careful ones; after this the staff review queue shows them with their evidence, and each of
them sees why on their quality page. The demo's staff admin has already reviewed the always-left
raters and excluded their votes, so the leaderboard and the exports show votes left out by quality
review (and the rater sees the reason).
"""

from __future__ import annotations

from collections import Counter

from crowdplatform.accounts.demo import ADMIN_EMAIL
from crowdplatform.accounts.models import User
from crowdplatform.quality.models import ActionKind, ActionStatus, QualityAction
from crowdplatform.quality.refresh import signals_refresh
from crowdplatform.quality.rules import rules_evaluate
from crowdplatform.quality.services import staff_action
from evaluations.demo import crowd

ALWAYS_LEFT_REASON = (
    "You chose the left response on almost every task, whichever response was better: these votes do not "
    "compare the responses, so they are left out of this study's results."
)


def demo_quality_ensure() -> str:
    """Refresh every signal and run the rules (idempotent); one line for seed_demo's output."""
    signals_refresh(full=True)
    rules_evaluate()
    _always_left_excluded()
    open_actions = QualityAction.objects.filter(status__in=[ActionStatus.PROPOSED, ActionStatus.APPLIED])
    raters = open_actions.values("rater").distinct().count()
    by_rule = Counter(rule or "staff" for rule in open_actions.values_list("rule", flat=True))
    rules = ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items()))
    return f"Demo quality: {raters} raters in the staff review queue ({rules or 'no findings'})"


def _always_left_excluded() -> None:
    """Staff's review of the position-bias findings on the demo's always-left raters: their votes on
    the study are excluded (once; a second run finds the action and does nothing)."""
    staff = User.objects.filter(email=ADMIN_EMAIL).first()
    if staff is None:
        return
    always_left = {member.email for member in crowd() if member.kind == "always_left"}
    findings = QualityAction.objects.filter(
        rule="position_bias", rater__user__email__in=always_left, study__isnull=False
    ).select_related("rater", "study")
    for finding in findings:
        done = QualityAction.objects.filter(
            rater=finding.rater, study=finding.study, kind=ActionKind.EXCLUDE_VOTES, status=ActionStatus.APPLIED
        )
        if not done.exists():
            staff_action(
                rater=finding.rater,
                study=finding.study,
                kind=ActionKind.EXCLUDE_VOTES,
                reason=ALWAYS_LEFT_REASON,
                actor=staff,
            )
