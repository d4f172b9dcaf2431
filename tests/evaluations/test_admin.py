"""The admin shows the evaluations' rows to staff, read-only."""

from __future__ import annotations

import pytest

from evaluations import assignment

pytestmark = pytest.mark.django_db

PAGES = ("study", "system", "task", "vote", "contentflag")


def test_staff_browse_every_list_and_change_nothing(client, staff_user, make_live_study, rater_profile):
    make_live_study()
    task = assignment.task_next(rater=rater_profile)
    assignment.task_flag(task_id=task.pk, rater=rater_profile, reason="broken")
    assignment.vote_submit(task_id=task.pk, rater=rater_profile, data=assignment.VoteInput(choice="a"))
    client.force_login(staff_user)

    for model in PAGES:
        response = client.get(f"/admin/evaluations/{model}/")
        assert response.status_code == 200, model
        assert client.get(f"/admin/evaluations/{model}/add/").status_code == 403
