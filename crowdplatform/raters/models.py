from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models


def private_storage() -> Storage:
    return storages["private"]


class ExpertiseDomain(models.Model):
    """A field raters can claim expertise in; the list is managed by staff."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True, help_text="Inactive domains are not offered to new applicants.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RecruitmentCampaign(models.Model):
    """A call for raters with requirements and a shareable invite link.

    Opened by staff, or by a client for its own private study (`organization`).
    Applications that arrive through the link are tagged with the campaign.
    """

    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    languages = models.JSONField(default=list, blank=True, help_text='BCP 47 codes wanted, e.g. ["en", "de"].')
    domains = models.ManyToManyField(ExpertiseDomain, blank=True, related_name="campaigns")
    countries = models.JSONField(default=list, blank=True, help_text="ISO codes wanted; empty: anywhere.")
    raters_wanted = models.PositiveIntegerField()
    token = models.CharField(max_length=32, unique=True)
    is_open = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ApplicationStatus(models.TextChoices):
    DRAFT = "draft", "Not submitted"
    APPLIED = "applied", "Awaiting review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"


class RaterProfile(models.Model):
    """The rater side of a user: the application and its review status.

    Status moves only through `crowdplatform.raters.services`:
    draft → applied → approved | rejected; approved → suspended → approved.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_profile")
    created_at = models.DateTimeField(auto_now_add=True)
    display_name = models.CharField(max_length=80, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code, e.g. DE.")
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA name, e.g. Europe/Berlin.")
    years_of_experience = models.PositiveSmallIntegerField(null=True, blank=True)
    credentials = models.TextField(blank=True, help_text="Degrees, licences, positions. Visible only to staff.")
    domains = models.ManyToManyField(ExpertiseDomain, blank=True, related_name="raters")
    credential_document = models.FileField(
        storage=private_storage,
        upload_to="credentials/",
        blank=True,
        help_text="A PDF or image (PNG, JPEG) backing the credentials. Only staff can open it.",
    )
    consented_terms_at = models.DateTimeField(null=True, blank=True)
    consented_pay_policy_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ApplicationStatus.choices, default=ApplicationStatus.DRAFT, db_index=True
    )
    campaign = models.ForeignKey(
        RecruitmentCampaign, null=True, blank=True, on_delete=models.PROTECT, related_name="applicants"
    )
    status_reason = models.TextField(blank=True, help_text="Why it was rejected or suspended; the rater sees it.")
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["status", "submitted_at"], name="rater_status_submitted")]

    def __str__(self) -> str:
        return f"Rater {self.user}"


class Proficiency(models.TextChoices):
    NATIVE = "native", "Native"
    FLUENT = "fluent", "Fluent"
    PROFESSIONAL = "professional", "Professional working"
    BASIC = "basic", "Basic"


class RaterLanguage(models.Model):
    profile = models.ForeignKey(RaterProfile, on_delete=models.CASCADE, related_name="languages")
    language = models.CharField(max_length=12, help_text="BCP 47 code, e.g. en or pt-BR.")
    proficiency = models.CharField(max_length=16, choices=Proficiency.choices)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["profile", "language"], name="rater_language_unique")]

    def __str__(self) -> str:
        return f"{self.language} ({self.proficiency})"


class QualificationTest(models.Model):
    """A qualification for a domain and a language, e.g. "Medical accuracy — English".

    Its gold items, timed attempts and automatic grading come with the
    qualification-test slice; staff can already grant it by hand.
    """

    name = models.CharField(max_length=150, unique=True)
    domain = models.ForeignKey(ExpertiseDomain, on_delete=models.PROTECT, related_name="qualification_tests")
    language = models.CharField(max_length=12, help_text="BCP 47 code, e.g. en.")
    pass_score = models.FloatField(default=0.8, help_text="Share of gold items right needed to pass (0–1).")
    validity_days = models.PositiveIntegerField(default=365, help_text="How long a pass stays valid.")
    time_limit_seconds = models.PositiveIntegerField(default=1200, help_text="Time allowed for one attempt.")
    retake_cooldown_hours = models.PositiveIntegerField(default=24, help_text="Wait between two attempts.")
    max_attempts = models.PositiveSmallIntegerField(default=3)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GoldAnswer(models.TextChoices):
    A = "A", "A is better"
    B = "B", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both are bad"


class QualificationItem(models.Model):
    """One paired comparison of a test, with its known answer and why."""

    test = models.ForeignKey(QualificationTest, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    item_id = models.CharField(max_length=100, help_text="The importer's own id for the item.")
    prompt = models.TextField()
    response_a = models.TextField()
    response_b = models.TextField()
    answer = models.CharField(max_length=10, choices=GoldAnswer.choices)
    explanation = models.TextField()

    class Meta:
        ordering = ["test_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["test", "item_id"], name="qualification_item_unique"),
            models.UniqueConstraint(fields=["test", "position"], name="qualification_item_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.test} #{self.position}"


class Qualification(models.Model):
    """A rater's proof of a qualification, with its score and expiry.

    At most one is in force per rater and test; a new grant supersedes the
    old one, which is kept (revoked) for the record.
    """

    class Source(models.TextChoices):
        TEST = "test", "Passed the test"
        MANUAL = "manual", "Granted by staff"

    profile = models.ForeignKey(RaterProfile, on_delete=models.CASCADE, related_name="qualifications")
    test = models.ForeignKey(QualificationTest, on_delete=models.PROTECT, related_name="qualifications")
    score = models.FloatField(help_text="0–1")
    source = models.CharField(max_length=8, choices=Source.choices)
    reason = models.TextField(blank=True, help_text="Why staff granted it by hand.")
    granted_at = models.DateTimeField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "test"], condition=models.Q(revoked_at__isnull=True), name="qualification_in_force"
            ),
            models.CheckConstraint(condition=models.Q(score__gte=0, score__lte=1), name="qualification_score_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.test} for {self.profile.user} ({self.score:.0%})"


class QualificationAttempt(models.Model):
    """One timed try at a test. Answers count only if they arrived before the deadline."""

    profile = models.ForeignKey(RaterProfile, on_delete=models.CASCADE, related_name="attempts")
    test = models.ForeignKey(QualificationTest, on_delete=models.PROTECT, related_name="attempts")
    number = models.PositiveSmallIntegerField(help_text="1 for the rater's first attempt at this test, and so on.")
    started_at = models.DateTimeField()
    deadline_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    correct = models.PositiveIntegerField(null=True, blank=True)
    total = models.PositiveIntegerField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "test", "number"], name="attempt_number_unique"),
            models.UniqueConstraint(
                fields=["profile", "test"], condition=models.Q(submitted_at__isnull=True), name="attempt_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.test} attempt {self.number} by {self.profile.user}"


class AttemptAnswer(models.Model):
    attempt = models.ForeignKey(QualificationAttempt, on_delete=models.CASCADE, related_name="answers")
    item = models.ForeignKey(QualificationItem, on_delete=models.CASCADE, related_name="+")
    choice = models.CharField(max_length=10, choices=GoldAnswer.choices)
    answered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attempt", "item"], name="attempt_answer_unique")]

    def __str__(self) -> str:
        return f"{self.attempt}: {self.choice} on item {self.item_id}"
