"""The accounts admin: users are deactivated, never deleted (votes, ledger entries, audit rows and the
public leaderboards' append-only records refer to them)."""

from __future__ import annotations

import pytest

from crowdplatform.accounts.models import User

pytestmark = pytest.mark.django_db


def test_a_superuser_cannot_delete_a_user_one_by_one_or_in_bulk(client, staff_user, owner):
    client.force_login(staff_user)
    users = sorted(User.objects.values_list("pk", "email", "is_active"))
    assert client.post(f"/admin/accounts/user/{owner.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [owner.pk], "post": "yes"}
    )
    assert response.status_code == 200  # the list again: the action is not offered
    assert b"delete_selected" not in response.content
    assert sorted(User.objects.values_list("pk", "email", "is_active")) == users
