"""Item uploads at the service level: items, responses, item pairs and pair totals, all or nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from evaluations import services
from evaluations.item_import import ItemImportError
from evaluations.models import Item, ItemPair, PairStat, Response, Study, StudyStatus
from tests.evaluations.conftest import gold_line, item_line, items_jsonl, jsonl, snapshot

pytestmark = pytest.mark.django_db

THREE = ("sys-a", "sys-b", "sys-c")


@pytest.fixture
def study(make_study, add_systems):
    study = make_study()
    add_systems(study, THREE)
    return study


def test_every_item_gets_one_pair_per_two_systems(study, upload, organization):
    result = upload(study, items_jsonl(4, THREE))
    assert result == services.ItemsUploaded(created=4, gold=0, item_pairs=4 * 3)
    assert Item.objects.filter(study=study).count() == 4
    assert Response.objects.count() == 4 * 3
    assert ItemPair.objects.filter(study=study, is_gold=False).count() == 12
    assert Counter(ItemPair.objects.values_list("item__prompt_id", flat=True)) == {f"p{n}": 3 for n in range(4)}
    stats = PairStat.objects.filter(study=study).order_by("system_low", "system_high")
    assert [(s.system_low.name, s.system_high.name, s.item_pairs_count, s.votes) for s in stats] == [
        ("sys-a", "sys-b", 4, 0),
        ("sys-a", "sys-c", 4, 0),
        ("sys-b", "sys-c", 4, 0),
    ]
    for pair in ItemPair.objects.select_related("response_low", "response_high", "pair_stat"):
        assert pair.response_low.item_id == pair.response_high.item_id == pair.item_id
        assert pair.response_low_id < pair.response_high_id
        assert {pair.response_low.system_id, pair.response_high.system_id} == {
            pair.pair_stat.system_low_id,
            pair.pair_stat.system_high_id,
        }
        assert (pair.votes, pair.is_gold) == (0, False)
    event = AuditEvent.objects.get(action="items.upload")
    assert (event.target_id, event.organization_id) == (str(study.pk), organization.pk)
    assert event.data == {"format": "jsonl", "filename": "items.jsonl", "created": 4, "gold": 0}


def test_responses_belong_to_their_systems_and_keep_their_turns(study, upload):
    upload(study, items_jsonl(1, THREE))
    item = Item.objects.get()
    assert (item.prompt_id, item.prompt, item.is_gold, item.gold_answer) == (
        "p0",
        [{"role": "user", "content": "Question 0?"}],
        False,
        "",
    )
    assert item.prompt_html == "<p>Question 0?</p>\n"
    responses = {r.label: r for r in item.responses.select_related("system")}
    assert set(responses) == set(THREE)
    for label, response in responses.items():
        assert response.system.name == label
        assert response.content == [{"role": "assistant", "content": f"{label} answers 0"}]
        assert response.content_html == f"<p>{label} answers 0</p>\n"


def test_gold_items_get_one_pair_and_no_system(study, upload):
    result = upload(study, jsonl([item_line(0, THREE), gold_line(1, "good"), gold_line(2, "tie")]))
    assert result == services.ItemsUploaded(created=3, gold=2, item_pairs=3 + 1 + 1)
    gold_items = Item.objects.filter(is_gold=True).order_by("prompt_id")
    assert [(i.prompt_id, i.gold_answer) for i in gold_items] == [("gold1", "good"), ("gold2", "tie")]
    gold_pairs = ItemPair.objects.filter(is_gold=True)
    assert gold_pairs.count() == 2
    assert all(pair.pair_stat_id is None for pair in gold_pairs)
    assert set(Response.objects.filter(item__is_gold=True).values_list("label", "system")) == {
        ("good", None),
        ("bad", None),
    }
    assert list(PairStat.objects.values_list("item_pairs_count", flat=True)) == [1, 1, 1]


def test_uploads_add_up(study, upload):
    upload(study, items_jsonl(2, THREE))
    result = upload(study, items_jsonl(3, THREE, start=10))
    assert result == services.ItemsUploaded(created=3, gold=0, item_pairs=9)
    assert Item.objects.count() == 5
    assert list(PairStat.objects.values_list("item_pairs_count", flat=True)) == [5, 5, 5]
    assert PairStat.objects.count() == 3
    assert AuditEvent.objects.filter(action="items.upload").count() == 2


def test_the_prompt_is_rendered_and_sanitized(study, upload):
    prompt = "<script>alert(1)</script> **bold** ![x](http://e.com/i.png)"
    responses = {"sys-a": "<b>yo</b>", "sys-b": "[home](javascript:alert(1))", "sys-c": "fine"}
    upload(study, jsonl([{"prompt_id": "x", "prompt": prompt, "responses": responses}]))
    item = Item.objects.get()
    assert item.prompt_html == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong> "
        '<a href="http://e.com/i.png" rel="noopener noreferrer nofollow">x</a></p>\n'
    )
    html = dict(item.responses.values_list("label", "content_html"))
    assert html["sys-a"] == "<p>&lt;b&gt;yo&lt;/b&gt;</p>\n"
    assert html["sys-b"] == "<p>[home](javascript:alert(1))</p>\n"  # text, never a link
    assert "<script" not in item.prompt_html
    assert "<img" not in item.prompt_html


def test_multi_turn_prompts_show_each_role(study, upload):
    prompt = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Sum 2+2"},
    ]
    upload(
        study,
        jsonl(
            [
                {
                    "prompt_id": "conv",
                    "prompt": prompt,
                    "language": "en",
                    "category": "math",
                    "responses": dict.fromkeys(THREE, "4"),
                }
            ]
        ),
    )
    item = Item.objects.get()
    assert (item.prompt, item.language, item.category) == (prompt, "en", "math")
    assert item.prompt_html.count('<p class="turn-role">') == 3
    assert item.prompt_html.startswith('<div class="turn turn-user"><p class="turn-role">User</p><p>Hi</p>')


def test_csv_uploads_work_too(study, owner):
    data = b"prompt_id,prompt,response:sys-a,response:sys-b,response:sys-c\nq1,Why?,A,B,C\nq2,How?,A2,B2,C2\n"
    result = services.items_upload(study=study, actor=owner, data=data, content_type="text/csv")
    assert result == services.ItemsUploaded(created=2, gold=0, item_pairs=6)
    assert AuditEvent.objects.get(action="items.upload").data["format"] == "csv"


def test_one_bad_line_and_nothing_is_added(study, upload):
    upload(study, items_jsonl(1, THREE))
    before = snapshot()
    data = jsonl([item_line(1, THREE)]) + b"{not json\n" + jsonl([item_line(3, ("sys-a", "sys-b"))])
    with pytest.raises(ItemImportError) as error:
        upload(study, data)
    assert [e.line for e in error.value.errors] == [2, 3]
    assert error.value.errors[1].error == "missing response for system(s) 'sys-c'"
    assert snapshot() == before
    assert Item.objects.count() == 1
    assert list(PairStat.objects.values_list("item_pairs_count", flat=True)) == [1, 1, 1]


def test_a_bad_first_upload_leaves_no_pair_totals(study, upload):
    before = snapshot()
    with pytest.raises(ItemImportError):
        upload(study, jsonl([item_line(0, THREE), item_line(0, THREE)]))
    assert snapshot() == before
    assert (Item.objects.count(), Response.objects.count(), ItemPair.objects.count(), PairStat.objects.count()) == (
        0,
        0,
        0,
        0,
    )


def test_a_prompt_id_already_in_the_study_is_refused(study, upload):
    upload(study, items_jsonl(2, THREE))
    before = snapshot()
    with pytest.raises(ItemImportError) as error:
        upload(study, items_jsonl(1, THREE, start=1))
    assert [(e.line, e.error) for e in error.value.errors] == [(1, "prompt_id 'p1' already exists in this study")]
    assert snapshot() == before


def test_the_same_prompt_ids_are_fine_in_another_study(study, upload, make_study, add_systems):
    upload(study, items_jsonl(2, THREE))
    other = make_study(name="Other")
    add_systems(other, THREE)
    assert upload(other, items_jsonl(2, THREE)).created == 2


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_a_closed_study_takes_no_items(study, upload, status):
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        upload(study, items_jsonl(1, THREE))
    assert (error.value.status, error.value.code) == (409, "study_closed")
    assert snapshot() == before


def test_items_can_be_added_while_live(make_live_study, upload):
    study = make_live_study(items=1)
    assert upload(study, items_jsonl(2, start=5)).created == 2
    assert PairStat.objects.get().item_pairs_count == 3


def test_items_need_two_systems_first(make_study, add_systems, upload):
    study = make_study()
    add_systems(study, ["sys-a"])
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        upload(study, items_jsonl(1, ["sys-a"]))
    assert (error.value.code, error.value.message) == (
        "no_systems",
        "Register at least two systems before uploading items.",
    )
    assert snapshot() == before
