"""Importing qualification tests from JSONL: all lines valid, or nothing imported."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.models import ExpertiseDomain, QualificationItem, QualificationTest

pytestmark = pytest.mark.django_db


def item(n: int, **change) -> dict:
    return {
        "item_id": f"q{n}",
        "prompt": f"Question {n}?",
        "response_a": "Right answer.",
        "response_b": "Wrong answer.",
        "answer": "A",
        "explanation": "A cites the guideline; B contradicts it.",
        **change,
    }


def jsonl(*items: dict | str) -> list[bytes]:
    return [(line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in items]


def run_import(lines, staff, name="Medical accuracy — English"):
    return services.qualification_test_import(
        name=name,
        domain=ExpertiseDomain.objects.get(slug="medicine"),
        language="en",
        pass_score=0.8,
        lines=lines,
        actor=staff,
    )


def test_a_valid_file_creates_the_test_and_its_items_in_order(staff_user):
    test = run_import(jsonl(item(1), "", item(2, answer="tie"), item(3, answer="both_bad")), staff_user)
    assert (test.name, test.language, test.pass_score, test.domain.slug) == (
        "Medical accuracy — English",
        "en",
        0.8,
        "medicine",
    )
    assert list(test.items.values_list("position", "item_id", "answer")) == [
        (1, "q1", "A"),
        (2, "q2", "tie"),
        (3, "q3", "both_bad"),
    ]
    assert AuditEvent.objects.get(action="qualification_test.import").data == {"items": 3}


@pytest.mark.parametrize(
    ("lines", "errors"),
    [
        (jsonl(item(1), "{not json"), ["line 2: not valid JSON (Expecting property name enclosed in double quotes)"]),
        (jsonl(item(1), '["a list"]'), ["line 2: expected a JSON object"]),
        (jsonl(item(1, prompt="", explanation=None)), ["line 1: missing or empty prompt, explanation"]),
        (jsonl(item(1, answer="C")), ["line 1: answer must be one of A, B, tie, both_bad, not 'C'"]),
        (jsonl(item(1), item(1)), ["line 2: item_id 'q1' appears twice"]),
        (jsonl(item(1, prompt="x" * 70_000)), ["line 1: longer than 64 KB"]),
        ([b"\n", b"  \n"], ["the file holds no items"]),
        ([b"\xff\xfe\n"], ["line 1: not UTF-8 text"]),
        (
            jsonl(item(1, answer="C"), item(2), "{"),
            [
                "line 1: answer must be one of A, B, tie, both_bad, not 'C'",
                "line 3: not valid JSON (Expecting property name enclosed in double quotes)",
            ],
        ),
    ],
)
def test_a_bad_file_imports_nothing_and_names_each_bad_line(staff_user, lines, errors):
    with pytest.raises(ApplicationError) as error:
        run_import(lines, staff_user)
    assert error.value.code == "invalid_jsonl"
    assert error.value.fields == {"lines": errors}
    assert QualificationTest.objects.count() == 0
    assert QualificationItem.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_too_many_items_are_refused(staff_user, monkeypatch):
    monkeypatch.setattr("crowdplatform.raters.qualification_import.MAX_ITEMS", 2)
    with pytest.raises(ApplicationError) as error:
        run_import(jsonl(item(1), item(2), item(3)), staff_user)
    assert error.value.fields == {"lines": ["at most 2 items per test, not 3"]}
    assert QualificationTest.objects.count() == 0


def test_names_are_unique(staff_user):
    run_import(jsonl(item(1)), staff_user)
    with pytest.raises(ConflictError, match="exists"):
        run_import(jsonl(item(1)), staff_user)
    assert QualificationTest.objects.count() == 1


def test_import_through_the_staff_page(client, staff_user):
    client.force_login(staff_user)
    url = reverse("staff:qualification_tests")
    assert "No qualification tests yet" in client.get(url).text
    form = {"name": "Code review — English", "domain": "software", "language": "en", "pass_score": "0.7"}
    bad = SimpleUploadedFile("items.jsonl", b"".join(jsonl(item(1), "oops")))
    page = client.post(url, {**form, "items": bad})
    assert page.status_code == 200
    assert "Nothing imported: 1 problem(s)." in page.text
    assert "line 2: not valid JSON" in page.text
    assert QualificationTest.objects.count() == 0
    good = SimpleUploadedFile("items.jsonl", b"".join(jsonl(*(item(n) for n in range(1, 11)))))
    response = client.post(url, {**form, "items": good}, follow=True)
    assert "Imported 10 items into “Code review — English”." in response.text
    assert QualificationTest.objects.get().items.count() == 10


def test_only_staff_import(client, rater):
    client.force_login(rater)
    assert client.get(reverse("staff:qualification_tests")).status_code == 403
