"""The audit log: written inside transactions, append-only, browsable by staff only."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from crowdplatform.accounts.principals import ApiKeyPrincipal
from crowdplatform.core.audit import audit_record
from crowdplatform.core.models import AuditEvent


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_to_run_outside_a_transaction(organization):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=None, action="x.y", target=organization)
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_audit_rolls_back_with_the_change(organization):
    def change_that_fails():
        with transaction.atomic():
            audit_record(actor=None, action="organization.rename", target=organization)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        change_that_fails()
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_audit_record_fields(organization, owner, api_key_pair):
    with transaction.atomic():
        by_user = audit_record(actor=owner, action="organization.touch", target=organization, data={"n": 1})
        by_key = audit_record(actor=ApiKeyPrincipal(api_key_pair[0]), action="export.start", organization=organization)
        by_system = audit_record(actor=None, action="payout.batch")
    assert (by_user.actor_user, by_user.actor_label, by_user.target_type, by_user.target_id) == (
        owner,
        owner.email,
        "accounts.organization",
        str(organization.pk),
    )
    assert (by_user.organization_id, by_user.target_label, by_user.data) == (organization.pk, "Alpha Lab", {"n": 1})
    api_key = api_key_pair[0]
    assert (by_key.actor_user, by_key.actor_api_key, by_key.actor_label) == (
        None,
        api_key,
        f"API key 'script' (cpk_{api_key.prefix})",
    )
    assert (by_key.organization_id, by_key.target_type) == (organization.pk, "")
    assert (by_system.actor_label, by_system.organization_id) == ("system", None)


@pytest.mark.django_db
def test_the_database_refuses_to_update_audit_events():
    with transaction.atomic():
        event = audit_record(actor=None, action="x.y")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")
    event.refresh_from_db()
    assert event.action == "x.y"


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite allows DELETE so that test flushes work")
def test_postgresql_refuses_to_delete_audit_events():
    with transaction.atomic():
        event = audit_record(actor=None, action="x.y")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def _events(n: int) -> list[AuditEvent]:
    with transaction.atomic():
        return [audit_record(actor=None, action=f"demo.step{i % 2}") for i in range(n)]


@pytest.mark.django_db
def test_staff_browse_the_audit_log_page_with_filters_and_keyset_pages(client, staff_user):
    _events(60)
    client.force_login(staff_user)
    first = client.get(reverse("staff:audit_log"))
    assert first.status_code == 200
    assert first.context["page"].next_query is not None
    assert first.context["page"].previous_query is None
    assert len(first.context["page"].items) == 50
    older = client.get(reverse("staff:audit_log") + first.context["page"].next_query)
    assert len(older.context["page"].items) == 10
    assert older.context["page"].next_query is None
    back = client.get(reverse("staff:audit_log") + older.context["page"].previous_query)
    assert [e.pk for e in back.context["page"].items] == [e.pk for e in first.context["page"].items]

    filtered = client.get(reverse("staff:audit_log"), {"action": "demo.step1"})
    assert {e.action for e in filtered.context["page"].items} == {"demo.step1"}
    assert len(filtered.context["page"].items) == 30
    prefix = client.get(reverse("staff:audit_log"), {"action": "demo."})
    assert len(prefix.context["page"].items) == 50
    empty = client.get(reverse("staff:audit_log"), {"actor": "nobody-like-this"})
    assert "No matching events" in empty.text


@pytest.mark.django_db
def test_staff_browse_the_audit_log_through_the_api(api_client, staff_user, organization, owner):
    _events(3)
    with transaction.atomic():
        audit_record(actor=owner, action="organization.touch", target=organization)
    api_client.force_authenticate(staff_user)
    body = api_client.get(reverse("api:audit-event-list"), {"page_size": 2}).json()
    assert [item["action"] for item in body["results"]] == ["organization.touch", "demo.step0"]
    assert body["next"] is not None
    rest = api_client.get(body["next"]).json()
    assert [item["action"] for item in rest["results"]] == ["demo.step1", "demo.step0"]
    by_org = api_client.get(reverse("api:audit-event-list"), {"organization": organization.pk}).json()
    assert [(item["action"], item["actor_label"]) for item in by_org["results"]] == [
        ("organization.touch", owner.email)
    ]


@pytest.mark.django_db
def test_non_staff_cannot_browse_the_audit_log(client, api_client, owner, api_key_pair):
    client.force_login(owner)
    assert client.get(reverse("staff:audit_log")).status_code == 403
    api_client.force_authenticate(owner)
    response = api_client.get(reverse("api:audit-event-list"))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only staff may do this."
    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    assert api_client.get(reverse("api:audit-event-list")).status_code == 403
