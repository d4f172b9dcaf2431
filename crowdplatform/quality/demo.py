"""The demo's quality review: signals over the demo crowd's votes, then the rules.

The demo crowd (evaluations/demo.py) has careless, always-left and too-fast raters among its
careful ones; after this the staff review queue shows them with their evidence, and each of
them sees why on their quality page.
"""

from __future__ import annotations

from collections import Counter

from crowdplatform.quality.models import ActionStatus, QualityAction
from crowdplatform.quality.refresh import signals_refresh
from crowdplatform.quality.rules import rules_evaluate


def demo_quality_ensure() -> str:
    """Refresh every signal and run the rules (idempotent); one line for seed_demo's output."""
    signals_refresh(full=True)
    rules_evaluate()
    open_actions = QualityAction.objects.filter(status__in=[ActionStatus.PROPOSED, ActionStatus.APPLIED])
    raters = open_actions.values("rater").distinct().count()
    by_rule = Counter(open_actions.values_list("rule", flat=True))
    rules = ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items()))
    return f"Demo quality: {raters} raters in the staff review queue ({rules or 'no findings'})"
