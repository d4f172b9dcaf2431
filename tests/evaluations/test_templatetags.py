"""Formatting filters of the study pages."""

from __future__ import annotations

import pytest

from evaluations.templatetags import evaluations as tags


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (40, "40 s"), (720, "12 min"), (3600, "1 h"), (12_000, "3 h 20 min"), (3_456_000, "40 days")],
)
def test_duration(seconds, text):
    assert tags.duration(seconds) == text


def test_percent_and_money():
    assert [tags.percent(x) for x in (None, 0.0, 0.151, 1.0)] == ["—", "0%", "15.1%", "100%"]
    assert tags.percent_number(0.267) == 27
    assert [tags.dollars(x) for x in (None, 25, 250_000)] == ["—", "$0.25", "$2,500.00"]


def test_requirements_text():
    assert tags.requirements_text({}) == "any approved rater"
    assert tags.requirements_text({"languages": ["en"]}) == "languages en"
    assert (
        tags.requirements_text(
            {"languages": ["en", "de"], "domains": ["medicine"], "qualifications": [{"test_id": 1}, {"test_id": 2}]}
        )
        == "languages en, de; expertise medicine; 2 qualifications"
    )


def test_actions_follow_the_status():
    class Draft:
        status = "draft"

    assert [action for action, _, _ in tags.actions(Draft())] == ["launch", "archive"]
