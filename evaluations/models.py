"""Studies, the systems they compare, the prompts and responses, and the votes on them.

Vocabulary:
- a *system* is one model variant a client registers in a study;
- an *item* is one prompt with a response from each system (or, for a gold item,
  two crafted responses with a known answer);
- an *item pair* is one item with two of its responses: the unit raters judge;
  each may be judged by up to `votes_per_pair` different raters (the overlap);
- a *system pair* (PairStat) aggregates the item pairs of two systems: sampling
  policies choose among system pairs;
- a *task* is one item pair leased to one rater, sides in random order;
- a *vote* is the rater's answer to a task.

Counters (`votes_count`, PairStat) are kept with F() in the vote's transaction.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class StudyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


class SamplingPolicy(models.TextChoices):
    UNIFORM = "uniform", "Uniform: every system pair equally often"
    BALANCED = "balanced", "Balanced: fill the least-voted pairs first"
    ACTIVE = "active", "Active: the pair whose next vote most narrows the intervals"


class Choice(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both are bad"


def _platform_fee_default() -> int:
    return settings.PLATFORM_FEE_BPS_DEFAULT


def _pay_floor_default() -> int:
    return settings.PAY_FLOOR_CENTS_PER_HOUR


class Study(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="studies")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    question = models.TextField(help_text="What raters answer, e.g. 'Which response answers the question better?'")
    criteria = models.JSONField(default=list, help_text='[{"name": ..., "definition": ...}]: the rubric.')
    requirements = models.JSONField(
        default=dict, blank=True, help_text='{"qualifications": [{"test_id", "min_score"}], "languages", ...}'
    )
    votes_per_pair = models.PositiveSmallIntegerField(default=3, help_text="Raters per item pair (overlap).")
    pay_per_task_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    est_seconds_per_task = models.PositiveIntegerField(default=60)
    sampling = models.CharField(max_length=16, choices=SamplingPolicy.choices, default=SamplingPolicy.ACTIVE)
    gold_rate = models.FloatField(default=0.0, help_text="Share of tasks that are gold items, 0 to 0.5.")
    lease_seconds = models.PositiveIntegerField(default=600)
    budget_cents = models.PositiveBigIntegerField(
        default=0, help_text="The most the client will spend on votes; no task is handed out beyond it."
    )
    platform_fee_bps = models.PositiveIntegerField(
        default=_platform_fee_default, help_text="The platform's fee on each task, in basis points of the pay."
    )
    pay_floor_cents_per_hour = models.PositiveIntegerField(
        default=_pay_floor_default,
        help_text="Nobody's effective hourly rate on this study stays below this: top-ups make up the difference.",
    )
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    quality_rules = models.JSONField(
        default=dict, blank=True, help_text="Overrides of the platform's quality rules (QUALITY_RULES_DEFAULT)."
    )
    paused_reason = models.CharField(
        max_length=16, blank=True, help_text='Why the platform paused it ("funds"); empty when a person did.'
    )
    is_public = models.BooleanField(
        default=False, help_text="Anyone, signed in or not, may see the study's leaderboard."
    )
    votes_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="study_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def fee_per_task_cents(self) -> int:
        """The platform fee on one task, rounded down (in the client's favour)."""
        return self.pay_per_task_cents * self.platform_fee_bps // 10_000

    @property
    def cost_per_task_cents(self) -> int:
        """What one task costs the client: the rater's pay plus the platform fee."""
        return self.pay_per_task_cents + self.fee_per_task_cents

    @property
    def criterion_names(self) -> list[str]:
        return [criterion["name"] for criterion in self.criteria]


class System(models.Model):
    """A model variant under evaluation. Registered before any vote; once voted on, permanent."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="systems")
    name = models.CharField(max_length=100)
    provider = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True, help_text="Version notes: checkpoint, settings, date.")
    registered_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    votes_count = models.PositiveIntegerField(default=0)
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text="Retired from sampling: no new tasks pair it; its votes and rating stay."
    )

    class Meta:
        ordering = ["registered_at", "id"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="system_unique_name")]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    prompt_id = models.CharField(max_length=200)
    prompt = models.JSONField(help_text="Turns: [{role, content}].")
    prompt_html = models.TextField(help_text="Sanitized rendering of the prompt.")
    language = models.CharField(max_length=35, blank=True)
    category = models.CharField(max_length=100, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.CharField(
        max_length=100, blank=True, help_text="Gold items: the label of the better response, 'tie' or 'both_bad'."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["study", "prompt_id"], name="item_unique_prompt_id")]

    def __str__(self) -> str:
        return self.prompt_id


class Response(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.PROTECT, related_name="responses")
    label = models.CharField(max_length=100, help_text="The system's name, or a gold item's own label.")
    content = models.JSONField(help_text="Turns: [{role, content}].")
    content_html = models.TextField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["item", "label"], name="response_unique_label")]

    def __str__(self) -> str:
        return f"{self.item_id}:{self.label}"


class PairStat(models.Model):
    """Running totals for two systems of a study (low id first): what sampling reads."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pair_stats")
    system_low = models.ForeignKey(System, on_delete=models.CASCADE, related_name="+")
    system_high = models.ForeignKey(System, on_delete=models.CASCADE, related_name="+")
    item_pairs_count = models.PositiveIntegerField(default=0)
    votes = models.PositiveIntegerField(default=0)
    low_wins = models.PositiveIntegerField(default=0)
    high_wins = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "system_low", "system_high"], name="pairstat_unique"),
            models.CheckConstraint(condition=Q(system_low__lt=models.F("system_high")), name="pairstat_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.system_low_id}-{self.system_high_id}"


class ItemPair(models.Model):
    """One item judged on two of its responses; holds up to the study's overlap of votes."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="item_pairs")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="pairs")
    response_low = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_high = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    pair_stat = models.ForeignKey(PairStat, null=True, blank=True, on_delete=models.CASCADE, related_name="item_pairs")
    is_gold = models.BooleanField(default=False)
    votes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response_low", "response_high"], name="itempair_unique"),
        ]
        indexes = [
            models.Index(fields=["pair_stat", "votes", "id"], name="itempair_fill"),
            models.Index(fields=["study", "is_gold"], name="itempair_gold"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}:{self.response_low_id}-{self.response_high_id}"


class TaskStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Voted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Lease expired"


class SkipReason(models.TextChoices):
    UNCLEAR = "unclear", "The prompt or responses are unclear"
    EXPERTISE = "expertise", "Outside my expertise"
    LANGUAGE = "language", "A language I do not work in"
    HARMFUL = "harmful", "Disturbing or harmful content"
    BROKEN = "broken", "Broken or missing content"
    OTHER = "other", "Other"


class Task(models.Model):
    """One item pair leased to one rater. The id is random so it reveals nothing."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="tasks")
    item_pair = models.ForeignKey(ItemPair, on_delete=models.CASCADE, related_name="tasks")
    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="tasks")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+", help_text="Shown left.")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+", help_text="Shown right.")
    is_gold = models.BooleanField(default=False)
    sampling_policy = models.CharField(max_length=16, blank=True)
    sampling_probability = models.FloatField(
        null=True, blank=True, help_text="Probability of this system pair when it was drawn; empty for gold."
    )
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    skip_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            # A rater judges an item pair at most once (a lapsed lease does not count).
            models.UniqueConstraint(
                fields=["rater", "item_pair"], condition=~Q(status="expired"), name="task_once_per_rater"
            ),
            # One open lease per rater: asking again returns it instead of hoarding slots.
            models.UniqueConstraint(fields=["rater"], condition=Q(status="leased"), name="task_one_lease_per_rater"),
        ]
        indexes = [
            models.Index(fields=["item_pair", "status"], name="task_pair_status"),
            models.Index(fields=["study", "status", "expires_at"], name="task_study_status"),
            models.Index(fields=["study", "leased_at"], name="task_study_leased"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class QualityStatus(models.TextChoices):
    INCLUDED = "included", "Included"
    EXCLUDED = "excluded", "Excluded"


class Vote(models.Model):
    task = models.OneToOneField(Task, on_delete=models.PROTECT, related_name="vote")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="votes")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="votes")
    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="votes")
    system_a = models.ForeignKey(System, null=True, on_delete=models.PROTECT, related_name="+", help_text="Left.")
    system_b = models.ForeignKey(System, null=True, on_delete=models.PROTECT, related_name="+", help_text="Right.")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    criteria = models.JSONField(default=dict, blank=True, help_text="Criterion name -> choice, where given.")
    rationale = models.TextField(blank=True)
    is_gold = models.BooleanField(default=False)
    swapped = models.BooleanField(
        default=False,
        help_text="The pair's high response was shown left (denormalised from the task).",
    )
    gold_correct = models.BooleanField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(help_text="Server-measured: lease start to submission.")
    quality_status = models.CharField(max_length=16, choices=QualityStatus.choices, default=QualityStatus.INCLUDED)
    quality_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["study", "created_at"], name="vote_study_created"),
            models.Index(fields=["rater", "created_at"], name="vote_rater_created"),
            # Quality refresh: every vote's time per rater, read from the index alone (speed signals).
            models.Index(fields=["study", "rater", "duration_ms"], name="vote_study_rater_duration"),
        ]

    def __str__(self) -> str:
        return f"vote {self.pk}"


class FlagReason(models.TextChoices):
    HARMFUL = "harmful", "Harmful or disturbing content"
    PERSONAL_DATA = "personal_data", "Personal data"
    IDENTITY = "identity", "A response reveals which model wrote it"
    BROKEN = "broken", "Broken, truncated or empty"
    OTHER = "other", "Other"


class ContentFlag(models.Model):
    """A rater's report about a task's content, for the client and staff to review."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="flags")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="flags")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="flags")
    rater = models.ForeignKey("raters.RaterProfile", on_delete=models.PROTECT, related_name="flags")
    reason = models.CharField(max_length=16, choices=FlagReason.choices)
    note = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["task", "reason"], name="flag_once_per_reason")]

    def __str__(self) -> str:
        return f"{self.reason} on {self.item_id}"


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines (arena battle format)"
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Ready to download"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """A vote export written to a file by a Celery job, for studies too large to stream comfortably.

    The id is random so download links reveal nothing; the file lives in private storage and is
    served only to those who may see the study.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="export_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=16, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, blank=True, help_text="The export's filters, as the API takes them.")
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True, help_text="Votes to write, once counted.")
    rows_done = models.PositiveBigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True, help_text="Path in the private storage.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["study", "created_at"], name="exportjob_study_created")]

    def __str__(self) -> str:
        return f"{self.format} export of study {self.study_id}"
