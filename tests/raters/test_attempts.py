"""Timed qualification attempts: grading, deadline, cool-down, attempt limit, double submission."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.raters import services
from crowdplatform.raters.models import (
    AttemptAnswer,
    ExpertiseDomain,
    Qualification,
    QualificationAttempt,
    QualificationItem,
    QualificationTest,
    RaterProfile,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_(db):
    test = QualificationTest.objects.create(
        name="Medical accuracy — English",
        # get_or_create: a transactional test may run after another one has flushed the seeded domains.
        domain=ExpertiseDomain.objects.get_or_create(slug="medicine", defaults={"name": "Medicine"})[0],
        language="en",
        pass_score=0.8,
        max_attempts=2,
        retake_cooldown_hours=24,
        time_limit_seconds=600,
    )
    for n in range(1, 11):
        QualificationItem.objects.create(
            test=test,
            position=n,
            item_id=f"q{n}",
            prompt="?",
            response_a="a",
            response_b="b",
            answer="A",
            explanation="e",
        )
    return test


@pytest.fixture
def approved(rater, staff_user):
    RaterProfile.objects.filter(user=rater).update(status="approved")
    return RaterProfile.objects.get(user=rater)


def expire(attempt):
    """Move the deadline into the past, after the answers given so far."""
    now = timezone.now()
    AttemptAnswer.objects.filter(attempt=attempt).update(answered_at=now - timedelta(seconds=10))
    QualificationAttempt.objects.filter(pk=attempt.pk).update(deadline_at=now - timedelta(seconds=1))


def answer_all(attempt, right: int, rater):
    items = list(attempt.test.items.order_by("position"))
    answers = {item.pk: ("A" if i < right else "B") for i, item in enumerate(items)}
    services.qualification_attempt_answer(attempt=attempt, answers=answers, actor=rater)


def test_a_passing_attempt_grants_the_qualification(approved, rater, test_):
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    assert (attempt.number, attempt.deadline_at - attempt.started_at) == (1, timedelta(seconds=600))
    answer_all(attempt, 9, rater)
    attempt = services.qualification_attempt_submit(attempt=attempt, actor=rater)
    assert (attempt.correct, attempt.total, attempt.score, attempt.passed) == (9, 10, 0.9, True)
    qualification = Qualification.objects.get(profile=approved, test=test_)
    assert (qualification.source, qualification.score) == ("test", 0.9)


def test_a_failing_attempt_grants_nothing(approved, rater, test_):
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    answer_all(attempt, 7, rater)
    attempt = services.qualification_attempt_submit(attempt=attempt, actor=rater)
    assert (attempt.score, attempt.passed) == (0.7, False)
    assert not Qualification.objects.exists()


def test_starting_again_resumes_the_running_attempt(approved, rater, test_):
    first = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    again = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    assert again.pk == first.pk
    assert QualificationAttempt.objects.count() == 1


def test_answers_after_the_deadline_are_refused_and_grading_uses_what_arrived(approved, rater, test_):
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    items = list(test_.items.order_by("position"))
    services.qualification_attempt_answer(attempt=attempt, answers={items[0].pk: "A", items[1].pk: "A"}, actor=rater)
    expire(attempt)
    with pytest.raises(ConflictError, match="Time ran out"):
        services.qualification_attempt_answer(attempt=attempt, answers={items[2].pk: "A"}, actor=rater)
    assert AttemptAnswer.objects.filter(attempt=attempt).count() == 2
    attempt = services.qualification_attempt_submit(attempt=attempt, actor=rater)
    assert (attempt.correct, attempt.total, attempt.passed) == (2, 10, False)


def test_an_expired_running_attempt_is_graded_when_the_rater_comes_back(approved, rater, test_):
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    answer_all(attempt, 10, rater)
    expire(attempt)
    with pytest.raises(ConflictError, match="retake this test from"):
        services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    attempt.refresh_from_db()
    assert (attempt.passed, attempt.score) == (True, 1.0)
    assert Qualification.objects.filter(profile=approved).count() == 1


def test_cooldown_then_attempt_limit(approved, rater, test_):
    first = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    services.qualification_attempt_submit(attempt=first, actor=rater)
    with pytest.raises(ConflictError) as error:
        services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    assert error.value.code == "cooldown"
    assert QualificationAttempt.objects.count() == 1

    QualificationAttempt.objects.filter(pk=first.pk).update(submitted_at=timezone.now() - timedelta(hours=25))
    second = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    assert second.number == 2
    services.qualification_attempt_submit(attempt=second, actor=rater)
    QualificationAttempt.objects.filter(pk=second.pk).update(submitted_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(ConflictError, match="used all 2 attempts"):
        services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    assert QualificationAttempt.objects.count() == 2


def test_only_approved_raters_take_tests(rater, test_):
    profile = RaterProfile.objects.get(user=rater)
    with pytest.raises(ConflictError, match="once your application is approved"):
        services.qualification_attempt_start(profile=profile, test=test_, actor=rater)
    assert QualificationAttempt.objects.count() == 0


def test_answers_must_belong_to_the_test(approved, rater, test_):
    other = QualificationTest.objects.create(name="Other", domain=test_.domain, language="en")
    foreign = QualificationItem.objects.create(
        test=other, position=1, item_id="x", prompt="?", response_a="a", response_b="b", answer="A", explanation="e"
    )
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    item = test_.items.first()
    for answers in ({foreign.pk: "A"}, {item.pk: "C"}):
        with pytest.raises(ApplicationError, match="own items"):
            services.qualification_attempt_answer(attempt=attempt, answers=answers, actor=rater)
    assert AttemptAnswer.objects.count() == 0


def test_submitting_twice_counts_once(approved, rater, test_):
    attempt = services.qualification_attempt_start(profile=approved, test=test_, actor=rater)
    answer_all(attempt, 10, rater)
    first = services.qualification_attempt_submit(attempt=attempt, actor=rater)
    second = services.qualification_attempt_submit(attempt=attempt, actor=rater)
    assert (first.submitted_at, first.score) == (second.submitted_at, second.score)
    assert Qualification.objects.count() == 1
    with pytest.raises(ConflictError, match="already graded"):
        services.qualification_attempt_answer(attempt=attempt, answers={}, actor=rater)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks across connections")
def test_two_simultaneous_submissions_count_once(rater, test_):
    RaterProfile.objects.filter(user=rater).update(status="approved")
    profile = RaterProfile.objects.get(user=rater)
    attempt = services.qualification_attempt_start(profile=profile, test=test_, actor=rater)
    answer_all(attempt, 10, rater)
    barrier = threading.Barrier(2)
    results = []

    def submit():
        barrier.wait()
        try:
            results.append(services.qualification_attempt_submit(attempt=attempt, actor=rater).submitted_at)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert results[0] == results[1]
    assert Qualification.objects.count() == 1
