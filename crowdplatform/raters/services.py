"""Every change to a rater's profile and application status."""

from __future__ import annotations

import re
import secrets
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from crowdplatform.accounts.models import Organization, User
from crowdplatform.accounts.principals import Actor
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.raters.models import (
    ApplicationStatus,
    AttemptAnswer,
    ExpertiseDomain,
    GoldAnswer,
    Proficiency,
    Qualification,
    QualificationAttempt,
    QualificationItem,
    QualificationTest,
    RaterLanguage,
    RaterProfile,
    RecruitmentCampaign,
)
from crowdplatform.raters.qualification_import import ImportErrors, parse_items

COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
EDITABLE_STATUSES = frozenset({ApplicationStatus.DRAFT, ApplicationStatus.REJECTED})


@transaction.atomic
def rater_profile_create(*, user: User, actor: Actor) -> RaterProfile:
    """The user's rater profile, created on first call."""
    profile, created = RaterProfile.objects.get_or_create(user=user)
    if created:
        audit_record(actor=actor, action="rater_profile.create", target=profile)
    return profile


@dataclass(frozen=True)
class ProfileInput:
    display_name: str
    country: str
    timezone: str
    years_of_experience: int | None
    credentials: str
    languages: tuple[tuple[str, str], ...]  # (BCP 47 code, proficiency)
    domain_slugs: tuple[str, ...]


def _validated(data: ProfileInput) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if data.country and not COUNTRY_CODE.match(data.country):
        errors["country"] = ["Use the two-letter ISO code, e.g. DE."]
    if data.timezone and data.timezone not in zoneinfo.available_timezones():
        errors["timezone"] = [f"{data.timezone!r} is not a known time zone (use e.g. Europe/Berlin)."]
    if data.years_of_experience is not None and not 0 <= data.years_of_experience <= 80:
        errors["years_of_experience"] = ["Enter a number of years from 0 to 80."]
    codes = [code for code, _ in data.languages]
    if any(not LANGUAGE_CODE.match(code) for code in codes):
        errors["languages"] = ["Use language codes such as en, de or pt-BR."]
    elif len(set(codes)) != len(codes):
        errors["languages"] = ["List each language once."]
    elif any(level not in Proficiency.values for _, level in data.languages):
        errors["languages"] = ["Choose a proficiency for each language."]
    return errors


@transaction.atomic
def rater_profile_update(*, profile: RaterProfile, data: ProfileInput, actor: Actor) -> RaterProfile:
    """Save the application form. Allowed before submission and after a rejection."""
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.status not in EDITABLE_STATUSES:
        raise ConflictError("Your application is under review or decided; it cannot be edited now.", code="locked")
    errors = _validated(data)
    domains = list(ExpertiseDomain.objects.filter(slug__in=data.domain_slugs, is_active=True))
    if len(domains) != len(set(data.domain_slugs)):
        errors["domains"] = ["Choose domains from the list."]
    if errors:
        raise ApplicationError("Some answers need fixing.", code="invalid_profile", fields=errors)
    profile.display_name = data.display_name.strip()
    profile.country = data.country
    profile.timezone = data.timezone
    profile.years_of_experience = data.years_of_experience
    profile.credentials = data.credentials.strip()
    profile.save(update_fields=["display_name", "country", "timezone", "years_of_experience", "credentials"])
    profile.domains.set(domains)
    profile.languages.all().delete()
    RaterLanguage.objects.bulk_create(
        RaterLanguage(profile=profile, language=code, proficiency=level) for code, level in data.languages
    )
    audit_record(
        actor=actor,
        action="rater_profile.update",
        target=profile,
        data={"languages": [list(pair) for pair in data.languages], "domains": sorted(data.domain_slugs)},
    )
    return profile


def application_missing(profile: RaterProfile) -> list[str]:
    """What the rater still has to fill in before submitting, in form order."""
    missing = []
    if not profile.display_name:
        missing.append("display name")
    if not profile.country:
        missing.append("country")
    if not profile.timezone:
        missing.append("time zone")
    if not profile.languages.exists():
        missing.append("at least one language")
    if not profile.domains.exists():
        missing.append("at least one expertise domain")
    if profile.years_of_experience is None:
        missing.append("years of experience")
    return missing


@transaction.atomic
def rater_application_submit(
    *, profile: RaterProfile, consent_terms: bool, consent_pay_policy: bool, actor: Actor
) -> RaterProfile:
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.status not in EDITABLE_STATUSES:
        raise ConflictError("You have already applied; one application per person.", code="already_applied")
    missing = application_missing(profile)
    if not consent_terms:
        missing.append("consent to the terms")
    if not consent_pay_policy:
        missing.append("consent to the pay policy")
    if missing:
        raise ApplicationError(
            "Your application is incomplete: " + ", ".join(missing) + ".",
            code="incomplete",
            fields={"missing": missing},
        )
    now = timezone.now()
    profile.consented_terms_at = profile.consented_pay_policy_at = now
    profile.status = ApplicationStatus.APPLIED
    profile.status_reason = ""
    profile.submitted_at = now
    profile.save(
        update_fields=["consented_terms_at", "consented_pay_policy_at", "status", "status_reason", "submitted_at"]
    )
    audit_record(actor=actor, action="rater_application.submit", target=profile)
    return profile


# --- Staff decisions ----------------------------------------------------------------------------

# For each decision: the statuses it may start from, the status it leads to, and whether a reason is required.
TRANSITIONS: dict[str, tuple[frozenset[str], str, bool]] = {
    "approve": (frozenset({ApplicationStatus.APPLIED}), ApplicationStatus.APPROVED, False),
    "reject": (frozenset({ApplicationStatus.APPLIED}), ApplicationStatus.REJECTED, True),
    "suspend": (frozenset({ApplicationStatus.APPROVED}), ApplicationStatus.SUSPENDED, True),
    "reinstate": (frozenset({ApplicationStatus.SUSPENDED}), ApplicationStatus.APPROVED, False),
}


@transaction.atomic
def rater_status_decide(*, profile: RaterProfile, decision: str, reason: str = "", actor: User) -> RaterProfile:
    """Approve, reject, suspend or reinstate a rater. The reason is shown to the rater."""
    if decision not in TRANSITIONS:
        raise ApplicationError(f"Unknown decision {decision!r}.", code="invalid_decision")
    sources, target, needs_reason = TRANSITIONS[decision]
    reason = reason.strip()
    if needs_reason and not reason:
        raise ApplicationError(f"Say why ({decision}): the rater sees the reason.", code="reason_required")
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.status not in sources:
        raise ConflictError(
            f"Cannot {decision} a rater whose status is {profile.get_status_display().lower()}.",
            code="invalid_transition",
        )
    previous = profile.status
    profile.status = target
    profile.status_reason = reason
    profile.reviewed_at = timezone.now()
    profile.reviewed_by = actor
    profile.save(update_fields=["status", "status_reason", "reviewed_at", "reviewed_by"])
    audit_record(
        actor=actor,
        action=f"rater_application.{decision}",
        target=profile,
        data={"from": previous, "to": target, "reason": reason},
    )
    return profile


@dataclass(frozen=True)
class BulkOutcome:
    decided: list[RaterProfile]
    refused: list[tuple[RaterProfile, str]]  # (profile, why)


def rater_status_decide_many(
    *, profiles: Iterable[RaterProfile], decision: str, reason: str = "", actor: User
) -> BulkOutcome:
    """The same decision for several raters; each is its own transaction and audit row."""
    decided, refused = [], []
    for profile in profiles:
        try:
            decided.append(rater_status_decide(profile=profile, decision=decision, reason=reason, actor=actor))
        except ApplicationError as error:
            refused.append((profile, error.message))
    return BulkOutcome(decided=decided, refused=refused)


# --- Qualifications -----------------------------------------------------------------------------


@transaction.atomic
def qualification_grant(
    *,
    profile: RaterProfile,
    test: QualificationTest,
    score: float,
    actor: User | None,
    source: str = Qualification.Source.MANUAL,
    reason: str = "",
) -> Qualification:
    """Grant a qualification (by hand, with a reason, or from a passed test).

    Any qualification for the same test still in force is superseded.
    """
    reason = reason.strip()
    if not 0 <= score <= 1:
        raise ApplicationError("A score is a share between 0 and 1.", code="invalid_score")
    if source == Qualification.Source.MANUAL and not reason:
        raise ApplicationError("Say why you grant it by hand.", code="reason_required")
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    now = timezone.now()
    superseded = Qualification.objects.filter(profile=profile, test=test, revoked_at__isnull=True)
    superseded.update(revoked_at=now, revoked_reason="Superseded by a newer grant.")
    qualification = Qualification.objects.create(
        profile=profile,
        test=test,
        score=score,
        source=source,
        reason=reason,
        granted_at=now,
        granted_by=actor,
        expires_at=now + timedelta(days=test.validity_days),
    )
    audit_record(
        actor=actor,
        action="qualification.grant",
        target=qualification,
        data={"test": test.name, "score": score, "source": source, "reason": reason},
    )
    return qualification


@transaction.atomic
def qualification_revoke(*, qualification: Qualification, reason: str, actor: User) -> Qualification:
    reason = reason.strip()
    if not reason:
        raise ApplicationError("Say why: the rater sees the reason.", code="reason_required")
    qualification = Qualification.objects.select_for_update().get(pk=qualification.pk)
    if qualification.revoked_at is not None:
        raise ConflictError("This qualification is no longer in force.", code="already_revoked")
    qualification.revoked_at = timezone.now()
    qualification.revoked_reason = reason
    qualification.save(update_fields=["revoked_at", "revoked_reason"])
    audit_record(actor=actor, action="qualification.revoke", target=qualification, data={"reason": reason})
    return qualification


# --- Credential documents -----------------------------------------------------------------------

# Recognised by their first bytes, never by the name or the browser's claimed type.
CREDENTIAL_SIGNATURES: dict[bytes, str] = {b"%PDF-": "pdf", b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}


def _credential_kind(upload: UploadedFile) -> str | None:
    upload.seek(0)
    head = upload.read(8)
    upload.seek(0)
    return next((kind for signature, kind in CREDENTIAL_SIGNATURES.items() if head.startswith(signature)), None)


@transaction.atomic
def rater_credential_document_set(*, profile: RaterProfile, upload: UploadedFile, actor: Actor) -> RaterProfile:
    """Store a credential document privately, replacing any earlier one."""
    limit = settings.CREDENTIAL_DOCUMENT_MAX_BYTES
    if upload.size is None or upload.size > limit:
        raise ApplicationError(
            f"The file is too large: the limit is {limit // (1024 * 1024)} MB.", code="file_too_large"
        )
    kind = _credential_kind(upload)
    if kind is None:
        raise ApplicationError("Upload a PDF, PNG or JPEG file.", code="file_type")
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.status not in EDITABLE_STATUSES:
        raise ConflictError("Your application is under review or decided; it cannot be edited now.", code="locked")
    previous = profile.credential_document.name
    # A random name: the rater's own file name may carry personal data and is not needed.
    profile.credential_document.save(f"{uuid.uuid4().hex}.{kind}", upload, save=False)
    profile.save(update_fields=["credential_document"])
    if previous:
        storage = profile.credential_document.storage
        transaction.on_commit(lambda: storage.delete(previous))
    audit_record(
        actor=actor,
        action="rater_profile.credential_document",
        target=profile,
        data={"type": kind, "bytes": upload.size},
    )
    return profile


# --- Qualification tests ------------------------------------------------------------------------


@transaction.atomic
def qualification_test_import(
    *, name: str, domain: ExpertiseDomain, language: str, pass_score: float, lines: Iterable[bytes], actor: User
) -> QualificationTest:
    """Create a test with its items from JSONL; any bad line and nothing is created."""
    name = name.strip()
    if not name:
        raise ApplicationError("A test needs a name.", fields={"name": ["This field is required."]})
    if not LANGUAGE_CODE.match(language):
        raise ApplicationError("Use a language code such as en.", fields={"language": ["Use a code such as en."]})
    if not 0 < pass_score <= 1:
        raise ApplicationError("The pass score is a share above 0 and at most 1.", code="invalid_score")
    if QualificationTest.objects.filter(name=name).exists():
        raise ConflictError(f"A test named {name!r} exists.", code="name_taken")
    try:
        rows = parse_items(lines)
    except ImportErrors as error:
        raise ApplicationError(
            f"Nothing imported: {len(error.errors)} problem(s).", code="invalid_jsonl", fields={"lines": error.errors}
        ) from None
    test = QualificationTest.objects.create(name=name, domain=domain, language=language, pass_score=pass_score)
    QualificationItem.objects.bulk_create(
        QualificationItem(test=test, position=position, **row.__dict__) for position, row in enumerate(rows, start=1)
    )
    audit_record(actor=actor, action="qualification_test.import", target=test, data={"items": len(rows)})
    return test


# --- Qualification attempts ---------------------------------------------------------------------


def _attempt_grade(attempt: QualificationAttempt, *, now: datetime) -> QualificationAttempt:
    """Close an open attempt (row locked by the caller): score what arrived by the deadline."""
    items = attempt.test.items.all()
    in_time = attempt.answers.filter(answered_at__lte=attempt.deadline_at)
    correct = sum(1 for answer in in_time.select_related("item") if answer.choice == answer.item.answer)
    total = items.count()
    attempt.submitted_at = now
    attempt.correct, attempt.total = correct, total
    attempt.score = correct / total if total else 0.0
    attempt.passed = attempt.score >= attempt.test.pass_score
    attempt.save(update_fields=["submitted_at", "correct", "total", "score", "passed"])
    audit_record(
        actor=attempt.profile.user,
        action="qualification_attempt.grade",
        target=attempt,
        data={"correct": correct, "total": total, "passed": attempt.passed},
    )
    if attempt.passed:
        qualification_grant(
            profile=attempt.profile,
            test=attempt.test,
            score=attempt.score,
            source=Qualification.Source.TEST,
            actor=attempt.profile.user,
        )
    return attempt


@transaction.atomic
def qualification_attempts_close_expired(*, profile: RaterProfile, test: QualificationTest) -> None:
    """Grade a running attempt whose time ran out, on the answers that arrived in time."""
    expired = (
        QualificationAttempt.objects.select_for_update()
        .select_related("test", "profile__user")
        .filter(profile=profile, test=test, submitted_at__isnull=True, deadline_at__lte=timezone.now())
        .first()
    )
    if expired is not None:
        _attempt_grade(expired, now=timezone.now())


def qualification_attempt_start(
    *, profile: RaterProfile, test: QualificationTest, actor: Actor
) -> QualificationAttempt:
    """Start an attempt, or return the one already running.

    An attempt whose time ran out is graded first, in its own transaction, so
    that its result stands even when a new attempt is refused.
    """
    qualification_attempts_close_expired(profile=profile, test=test)
    return _attempt_open(profile=profile, test=test, actor=actor)


@transaction.atomic
def _attempt_open(*, profile: RaterProfile, test: QualificationTest, actor: Actor) -> QualificationAttempt:
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.status != ApplicationStatus.APPROVED:
        raise ConflictError("Qualification tests open once your application is approved.", code="not_approved")
    if not test.is_active or not test.items.exists():
        raise ConflictError("This test is not open.", code="test_closed")
    now = timezone.now()
    attempts = QualificationAttempt.objects.filter(profile=profile, test=test)
    running = attempts.filter(submitted_at__isnull=True).first()
    if running is not None:
        return running
    if attempts.count() >= test.max_attempts:
        raise ConflictError(f"You have used all {test.max_attempts} attempts at this test.", code="no_attempts_left")
    last = attempts.order_by("-submitted_at").first()
    if last is not None and last.submitted_at + timedelta(hours=test.retake_cooldown_hours) > now:
        retry_at = last.submitted_at + timedelta(hours=test.retake_cooldown_hours)
        raise ConflictError(f"You can retake this test from {retry_at:%Y-%m-%d %H:%M} UTC.", code="cooldown")
    attempt = QualificationAttempt.objects.create(
        profile=profile,
        test=test,
        number=attempts.count() + 1,
        started_at=now,
        deadline_at=now + timedelta(seconds=test.time_limit_seconds),
    )
    audit_record(actor=actor, action="qualification_attempt.start", target=attempt, data={"number": attempt.number})
    return attempt


@transaction.atomic
def qualification_attempt_answer(
    *, attempt: QualificationAttempt, answers: dict[int, str], actor: Actor
) -> QualificationAttempt:
    """Record answers (item id → choice) at their arrival time. Late answers are refused, not stored."""
    attempt = QualificationAttempt.objects.select_for_update().get(pk=attempt.pk)
    now = timezone.now()
    if attempt.submitted_at is not None:
        raise ConflictError("This attempt is already graded.", code="attempt_closed")
    if now > attempt.deadline_at:
        raise ConflictError("Time ran out: answers sent after the deadline do not count.", code="time_up")
    valid_items = set(attempt.test.items.values_list("id", flat=True))
    if not set(answers) <= valid_items or any(choice not in GoldAnswer.values for choice in answers.values()):
        raise ApplicationError("Answer the test's own items with A, B, tie or both_bad.", code="invalid_answer")
    for item_id, choice in answers.items():
        AttemptAnswer.objects.update_or_create(
            attempt=attempt, item_id=item_id, defaults={"choice": choice, "answered_at": now}
        )
    return attempt


@transaction.atomic
def qualification_attempt_submit(*, attempt: QualificationAttempt, actor: Actor) -> QualificationAttempt:
    """Grade the attempt. Submitting again (or twice at once) returns the same result."""
    attempt = (
        QualificationAttempt.objects.select_for_update().select_related("test", "profile__user").get(pk=attempt.pk)
    )
    if attempt.submitted_at is not None:
        return attempt
    return _attempt_grade(attempt, now=timezone.now())


# --- Recruitment campaigns ----------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignInput:
    name: str
    description: str
    raters_wanted: int
    languages: tuple[str, ...] = ()
    domain_slugs: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()


@transaction.atomic
def campaign_create(
    *, data: CampaignInput, actor: User, organization: Organization | None = None
) -> RecruitmentCampaign:
    errors: dict[str, list[str]] = {}
    if not data.name.strip():
        errors["name"] = ["This field is required."]
    if data.raters_wanted < 1:
        errors["raters_wanted"] = ["Ask for at least one rater."]
    if any(not LANGUAGE_CODE.match(code) for code in data.languages):
        errors["languages"] = ["Use language codes such as en, de or pt-BR."]
    if any(not COUNTRY_CODE.match(code) for code in data.countries):
        errors["countries"] = ["Use two-letter ISO codes such as DE."]
    domains = list(ExpertiseDomain.objects.filter(slug__in=data.domain_slugs))
    if len(domains) != len(set(data.domain_slugs)):
        errors["domains"] = ["Choose domains from the list."]
    if errors:
        raise ApplicationError("Some answers need fixing.", code="invalid_campaign", fields=errors)
    campaign = RecruitmentCampaign.objects.create(
        name=data.name.strip(),
        description=data.description.strip(),
        organization=organization,
        languages=list(data.languages),
        countries=list(data.countries),
        raters_wanted=data.raters_wanted,
        token=secrets.token_urlsafe(12),
        created_by=actor,
    )
    campaign.domains.set(domains)
    audit_record(
        actor=actor,
        action="campaign.create",
        target=campaign,
        organization=organization,
        data={"raters_wanted": data.raters_wanted, "languages": list(data.languages)},
    )
    return campaign


@transaction.atomic
def rater_profile_join_campaign(*, profile: RaterProfile, campaign: RecruitmentCampaign, actor: Actor) -> RaterProfile:
    """Tag a not-yet-submitted application with the campaign it came through (the first one wins)."""
    profile = RaterProfile.objects.select_for_update().get(pk=profile.pk)
    if not campaign.is_open:
        raise ConflictError("This campaign is closed.", code="campaign_closed")
    if profile.campaign_id is not None:
        return profile
    if profile.status != ApplicationStatus.DRAFT:
        raise ConflictError("You have already applied; one application per person.", code="already_applied")
    profile.campaign = campaign
    profile.save(update_fields=["campaign"])
    audit_record(actor=actor, action="rater_profile.join_campaign", target=profile, data={"campaign": campaign.pk})
    return profile
