"""Organization funds: a study hands out only what the client's prepaid funds pay for, pauses
itself (telling the client) when they run out, and resumes when they are topped up."""

from __future__ import annotations

import pytest
from django.core import mail

from crowdplatform.core.models import AuditEvent
from evaluations.assignment import task_next
from evaluations.models import StudyStatus
from payments import funds, ledger
from tests.money import fund

pytestmark = pytest.mark.django_db

COST = 30  # 25 cents pay + 5 cents platform fee


@pytest.fixture(autouse=True)
def _launch_with_one_funded_task(settings):
    settings.LAUNCH_FUNDED_TASKS_MIN = 1


def test_open_leases_count_as_spent(make_live_study, make_rater):
    study = make_live_study(items=6, funds_cents=2 * COST)
    first, second, third = make_rater(), make_rater(), make_rater()

    assert task_next(rater=first, study=study) is not None
    assert task_next(rater=second, study=study) is not None
    assert task_next(rater=third, study=study) is None
    assert funds.spendable_cents(organization_id=study.organization_id, currency="usd") == 0


def test_when_funds_run_out_the_study_pauses_and_the_client_is_told(
    make_live_study, vote_as, owner, django_capture_on_commit_callbacks
):
    study = make_live_study(items=6, funds_cents=COST)  # launches: the next task is covered
    with django_capture_on_commit_callbacks(execute=True):
        vote_as(study)

    study.refresh_from_db()
    assert (study.status, study.paused_reason) == (StudyStatus.PAUSED, "funds")
    assert ledger.balance(ledger.org_funds(study.organization_id, "usd")) == 0
    event = AuditEvent.objects.get(action="study.pause")
    assert event.data == {"from": "live", "to": "paused", "reason": "The organization's prepaid funds ran out."}
    assert [message.to for message in mail.outbox] == [[owner.email]]
    assert "prepaid funds ran out: Coding help" in mail.outbox[0].body


def test_a_study_paused_for_funds_resumes_when_funds_arrive(make_live_study, vote_as):
    study = make_live_study(items=6, funds_cents=COST)
    vote_as(study)
    funds.studies_pause_unfunded(organization_id=study.organization_id)
    assert funds.studies_resume_funded(organization_id=study.organization_id) == []

    fund(study.organization_id, 10 * COST)
    resumed = funds.studies_resume_funded(organization_id=study.organization_id)

    study.refresh_from_db()
    assert [s.pk for s in resumed] == [study.pk]
    assert (study.status, study.paused_reason) == (StudyStatus.LIVE, "")


def test_a_study_paused_by_its_client_is_not_resumed_by_funding(make_live_study, owner):
    from evaluations.services import study_pause

    study = make_live_study(items=6, funds_cents=COST)
    study_pause(study=study, actor=owner)
    fund(study.organization_id, 10 * COST)

    assert funds.studies_resume_funded(organization_id=study.organization_id) == []
    study.refresh_from_db()
    assert study.status == StudyStatus.PAUSED


def test_funds_are_shared_by_the_organizations_studies(make_live_study, make_rater):
    one = make_live_study(items=3, funds_cents=COST)
    other = make_live_study(items=3, funds_cents=0)
    assert task_next(rater=make_rater(), study=one) is not None
    assert task_next(rater=make_rater(), study=other) is None
