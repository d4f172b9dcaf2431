"""Rater quality: signals computed from votes, the actions rules and staff take, and appeals.

Everything here is visible to the rater it concerns (no hidden scores): their own signals,
the thresholds that apply to them, and every action with its reason and evidence.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class RaterSignal(models.Model):
    """One rater's quality signals on one study, or over all studies (`study` null).

    Counts are stored so that rates and intervals are derived, exact and explainable.
    """

    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.CASCADE, related_name="quality_signals")
    study = models.ForeignKey(
        "evaluations.Study", null=True, blank=True, on_delete=models.CASCADE, related_name="rater_signals"
    )
    votes = models.PositiveIntegerField(default=0)
    skips = models.PositiveIntegerField(default=0)
    gold_votes = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    gold_wilson_low = models.FloatField(null=True, blank=True)
    gold_wilson_high = models.FloatField(null=True, blank=True)
    # Agreement with the other raters of the same item pair: over the votes that have company,
    # the mean share of the other raters who chose the same answer.
    agreement_votes = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True)
    # Position bias: "A" against "B" choices (ties and both-bad left out), two-sided binomial test at 1/2.
    a_choices = models.PositiveIntegerField(default=0)
    b_choices = models.PositiveIntegerField(default=0)
    position_p_value = models.FloatField(null=True, blank=True)
    # Speed: server-measured seconds per vote; "exceptionally fast" = more than 3 SD below the study's mean.
    median_seconds = models.FloatField(null=True, blank=True)
    fast_votes = models.PositiveIntegerField(default=0)
    fast_threshold_seconds = models.FloatField(null=True, blank=True)
    # Straight-lining: the longest run of the same answer in vote order.
    longest_run = models.PositiveIntegerField(default=0)
    longest_run_choice = models.CharField(max_length=16, blank=True)
    # Model-based reliability from crowd-kit: Dawid-Skene skill on the choices, Noisy Bradley-Terry skill.
    ds_skill = models.FloatField(null=True, blank=True)
    nbt_skill = models.FloatField(null=True, blank=True)
    # Running state an incremental refresh folds new votes into (not signals: never shown, never
    # compared when deciding what changed): the unrounded sum behind `agreement`, and the run of
    # identical answers the rater's latest votes form (its choice code, -1 for none, and length).
    agreement_sum = models.FloatField(default=0.0)
    trailing_choice = models.SmallIntegerField(default=-1)
    trailing_run = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rater_id", "study_id"]
        constraints = [
            models.UniqueConstraint(fields=["rater", "study"], name="one_signal_per_rater_study"),
            models.UniqueConstraint(
                fields=["rater"], condition=Q(study__isnull=True), name="one_overall_signal_per_rater"
            ),
        ]

    def __str__(self) -> str:
        return f"Signals of rater {self.rater_id} on {self.study_id or 'all studies'}"

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_votes if self.gold_votes else None

    @property
    def skip_rate(self) -> float | None:
        tasks = self.votes + self.skips
        return self.skips / tasks if tasks else None

    @property
    def a_share(self) -> float | None:
        total = self.a_choices + self.b_choices
        return self.a_choices / total if total else None


class StudySignal(models.Model):
    """A study's quality: inter-rater agreement, gold accuracy across raters, flags, exclusions."""

    study = models.OneToOneField("evaluations.Study", on_delete=models.CASCADE, related_name="quality_signal")
    votes = models.PositiveIntegerField(default=0)
    alpha = models.FloatField(null=True, blank=True, help_text="Krippendorff's alpha on overlapping votes.")
    alpha_by_criterion = models.JSONField(default=dict, blank=True)
    gold_accuracy_histogram = models.JSONField(default=list, blank=True, help_text="Raters per accuracy band.")
    flags = models.PositiveIntegerField(default=0)
    excluded = models.JSONField(default=dict, blank=True, help_text="Excluded votes by reason.")
    # Task times are skewed, so speed is judged on log-seconds: the typical time is exp(median log s),
    # the spread a robust SD of log-seconds (1.4826 x MAD); see quality.signals.speed_threshold.
    speed_typical_seconds = models.FloatField(null=True, blank=True)
    speed_log_sd = models.FloatField(null=True, blank=True)
    # The newest vote the signals include: an incremental refresh starts after it. `votes` counts the
    # votes included; when it falls short of the study's count, a vote committed late (below the
    # watermark) was missed and the study is recomputed whole.
    watermark_vote_id = models.BigIntegerField(default=0)
    # Krippendorff's alpha as running sums an incremental refresh updates unit by unit:
    # {"": [observed same-label pairs, n per label...], criterion: [...]}; null = recompute whole.
    alpha_parts = models.JSONField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Quality of study {self.study_id}"


class ActionKind(models.TextChoices):
    WARN = "warn", "Warning"
    PAUSE = "pause", "Paused on this study"
    HOLD_PAY = "hold_pay", "Pending pay held for review"
    EXCLUDE_VOTES = "exclude_votes", "Votes excluded from results"
    REJECT_PAY = "reject_pay", "Pay rejected for named tasks"
    SUSPEND = "suspend", "Account suspended"
    CLEAR = "clear", "Cleared"


class ActionStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed to staff"
    APPLIED = "applied", "Applied"
    DISMISSED = "dismissed", "Dismissed by staff"
    REVERSED = "reversed", "Reversed on appeal"


class QualityAction(models.Model):
    """What a rule or a staff member did (or proposes to do) about a rater, why, and on what evidence."""

    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="quality_actions")
    study = models.ForeignKey(
        "evaluations.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="quality_actions"
    )
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    status = models.CharField(max_length=12, choices=ActionStatus.choices)
    rule = models.CharField(max_length=40, blank=True, help_text="The rule that fired; empty for a staff action.")
    reason = models.TextField(help_text="Shown to the rater, word for word.")
    evidence = models.JSONField(default=dict, blank=True, help_text="The figures and thresholds behind it.")
    detail = models.JSONField(default=dict, blank=True, help_text="What applying it changed (counts, ids).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="quality_action_status"),
            models.Index(fields=["rater", "study", "rule"], name="quality_action_rule"),
        ]
        constraints = [
            # A rule proposes (or applies) an action once per rater and study until staff decide it.
            models.UniqueConstraint(
                fields=["rater", "study", "rule", "kind"],
                condition=Q(status="proposed") & ~Q(rule=""),
                name="one_open_proposal_per_rule",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for rater {self.rater_id} ({self.status})"


class RaterStudyPause(models.Model):
    """A rater paused on one study: they get no tasks in it until it is lifted."""

    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="study_pauses")
    study = models.ForeignKey("evaluations.Study", on_delete=models.PROTECT, related_name="rater_pauses")
    action = models.ForeignKey(QualityAction, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "study"], condition=Q(lifted_at__isnull=True), name="one_active_pause_per_study"
            )
        ]

    def __str__(self) -> str:
        return f"Rater {self.rater_id} paused on study {self.study_id}"


class AppealStatus(models.TextChoices):
    OPEN = "open", "Open"
    UPHELD = "upheld", "Upheld: the action was reversed"
    DENIED = "denied", "Denied"


class QualityAppeal(models.Model):
    action = models.ForeignKey(QualityAction, on_delete=models.PROTECT, related_name="appeals")
    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="quality_appeals")
    message = models.TextField()
    status = models.CharField(max_length=8, choices=AppealStatus.choices, default=AppealStatus.OPEN)
    response = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["action"], condition=Q(status="open"), name="one_open_quality_appeal")
        ]

    def __str__(self) -> str:
        return f"Appeal on action {self.action_id} ({self.status})"
