"""A new system's responses to a live study's existing items: responses, item pairs and pair totals,
all or nothing, and the new system enters sampling."""

from __future__ import annotations

import json

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from evaluations import services
from evaluations.assignment import task_next
from evaluations.item_import import ItemImportError, LineError
from evaluations.models import ItemPair, PairStat, Response, Study, StudyStatus, System
from tests.evaluations.conftest import cast_vote, snapshot

pytestmark = pytest.mark.django_db


def lines(*records: object) -> bytes:
    return b"".join(
        (record if isinstance(record, bytes) else json.dumps(record).encode()) + b"\n" for record in records
    )


def answers(name: str, prompts: range) -> bytes:
    return lines(*({"prompt_id": f"p{n}", "response": f"{name} answers {n}"} for n in prompts))


@pytest.fixture
def study(make_live_study) -> Study:
    """Live: sys-a and sys-b answered p0..p2; one gold item gold0."""
    return make_live_study(items=3, gold=1)


@pytest.fixture
def newcomer(study, owner) -> System:
    return services.system_register(study=study, actor=owner, name="sys-c", provider="Newcomer Lab")


def upload_responses(study: Study, system: System, owner, data: bytes) -> services.ResponsesUploaded:
    return services.responses_upload(study=study, system=system, actor=owner, data=data)


def test_each_new_response_is_paired_with_every_other_systems_response(study, newcomer, owner):
    before_pairs = ItemPair.objects.filter(study=study).count()  # 3 ordinary + 1 gold

    result = upload_responses(study, newcomer, owner, answers("sys-c", range(3)))

    assert result == services.ResponsesUploaded(created=3, item_pairs=6)
    assert ItemPair.objects.filter(study=study).count() == before_pairs + 6 == 10
    stats = PairStat.objects.filter(study=study).order_by("system_low", "system_high")
    assert [(s.system_low.name, s.system_high.name, s.item_pairs_count, s.votes) for s in stats] == [
        ("sys-a", "sys-b", 3, 0),
        ("sys-a", "sys-c", 3, 0),
        ("sys-b", "sys-c", 3, 0),
    ]
    new_pairs = ItemPair.objects.filter(response_high__system=newcomer).order_by("item__prompt_id", "response_low")
    assert [(p.item.prompt_id, p.response_low.label, p.response_high.label, p.is_gold) for p in new_pairs] == [
        ("p0", "sys-a", "sys-c", False),
        ("p0", "sys-b", "sys-c", False),
        ("p1", "sys-a", "sys-c", False),
        ("p1", "sys-b", "sys-c", False),
        ("p2", "sys-a", "sys-c", False),
        ("p2", "sys-b", "sys-c", False),
    ]
    assert ItemPair.objects.filter(response_low__system=newcomer).count() == 0  # the new response has the higher id


def test_responses_keep_their_turns_and_are_rendered(study, newcomer, owner):
    turns = [{"role": "assistant", "content": "**Yes**, and <script>x</script> no."}]
    upload_responses(study, newcomer, owner, lines({"prompt_id": "p1", "response": turns}))

    response = Response.objects.get(system=newcomer)
    assert (response.item.prompt_id, response.label, response.content) == ("p1", "sys-c", turns)
    assert "<strong>Yes</strong>" in response.content_html
    assert "<script>" not in response.content_html


def test_a_partial_upload_pairs_only_the_items_answered_and_the_rest_can_follow(study, newcomer, owner):
    assert upload_responses(study, newcomer, owner, answers("sys-c", range(1))) == services.ResponsesUploaded(1, 2)
    assert upload_responses(study, newcomer, owner, answers("sys-c", range(1, 3))) == services.ResponsesUploaded(2, 4)
    assert sorted(PairStat.objects.filter(study=study).values_list("item_pairs_count", flat=True)) == [3, 3, 3]


def test_the_upload_is_audited(study, newcomer, owner):
    upload_responses(study, newcomer, owner, answers("sys-c", range(3)))
    event = AuditEvent.objects.order_by("id").last()
    assert (event.action, event.target_id, event.organization_id, event.data) == (
        "responses.upload",
        str(study.pk),
        study.organization_id,
        {"system": "sys-c", "created": 3, "item_pairs": 6},
    )


def test_a_rater_can_then_be_given_the_new_system(make_live_study, owner, make_rater):
    study = make_live_study(items=1, votes_per_pair=1)
    cast_vote(make_rater())  # the only pair (sys-a, sys-b) is now full
    assert task_next(rater=make_rater()) is None
    newcomer = services.system_register(study=study, actor=owner, name="sys-c")
    upload_responses(study, newcomer, owner, answers("sys-c", range(1)))

    task = task_next(rater=make_rater())

    assert task is not None
    assert newcomer.pk in (task.response_a.system_id, task.response_b.system_id)
    assert task.sampling_probability == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        pytest.param(
            lines({"prompt_id": "p0", "response": "ok"}, {"prompt_id": "p9", "response": "where?"}),
            [LineError(2, "prompt_id 'p9' is not in this study (upload it as a new item)")],
            id="unknown-prompt",
        ),
        pytest.param(
            lines({"prompt_id": "gold0", "response": "gold?"}),
            [LineError(1, "prompt_id 'gold0' is a gold item; systems do not answer gold items")],
            id="gold-item",
        ),
        pytest.param(
            lines({"prompt_id": "p0", "response": "one"}, {"prompt_id": "p0", "response": "two"}),
            [LineError(2, "prompt_id 'p0' appears twice (first on line 1)")],
            id="twice",
        ),
        pytest.param(
            lines({"prompt_id": "p0", "respones": "typo"}),
            [
                LineError(1, "unknown field 'respones' (did you mean 'response'?); the fields are prompt_id, response"),
                LineError(1, "response is missing"),
            ],
            id="typo",
        ),
        pytest.param(
            lines({"prompt_id": "p0", "response": [{"role": "robot", "content": "hi"}]}, b"{not json"),
            [
                LineError(1, "response turn 1: role must be user, assistant or system, not 'robot'"),
                LineError(2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
            ],
            id="bad-turn-and-bad-json",
        ),
        pytest.param(
            lines({"prompt_id": 7, "response": ""}),
            [LineError(1, "prompt_id must be a string, not a number"), LineError(1, "response is empty")],
            id="wrong-types",
        ),
        pytest.param(b"\n\n", [LineError(0, "the upload holds no responses")], id="empty"),
    ],
)
def test_one_bad_line_and_nothing_is_added(study, newcomer, owner, data, errors):
    before = snapshot()
    with pytest.raises(ItemImportError) as error:
        upload_responses(study, newcomer, owner, data)
    assert error.value.errors == errors
    assert snapshot() == before


def test_a_system_answers_an_item_once(study, newcomer, owner):
    upload_responses(study, newcomer, owner, answers("sys-c", range(1)))
    before = snapshot()
    with pytest.raises(ItemImportError) as error:
        upload_responses(study, newcomer, owner, answers("sys-c", range(2)))
    assert error.value.errors == [LineError(1, "the system already has a response to prompt_id 'p0'")]
    assert snapshot() == before


def test_a_system_that_came_with_the_items_cannot_answer_again(study, owner):
    before = snapshot()
    with pytest.raises(ItemImportError) as error:
        upload_responses(study, System.objects.get(name="sys-a"), owner, answers("sys-a", range(1)))
    assert error.value.errors == [LineError(1, "the system already has a response to prompt_id 'p0'")]
    assert snapshot() == before


def test_a_system_of_another_study_is_refused(study, make_live_study, owner):
    other = make_live_study(name="Other")
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        upload_responses(study, other.systems.get(name="sys-a"), owner, answers("sys-a", range(1)))
    assert error.value.code == "unknown_system"
    assert snapshot() == before


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_a_closed_study_takes_no_responses(study, newcomer, owner, status):
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        upload_responses(study, newcomer, owner, answers("sys-c", range(1)))
    assert error.value.code == "study_closed"
    assert snapshot() == before
