from __future__ import annotations

import pytest
from django.conf import settings

from crowdplatform.celery import app


def test_tasks_are_autodiscovered():
    app.loader.import_default_modules()
    assert "crowdplatform.accounts.tasks.invitation_email_send" in app.tasks


def test_beat_uses_the_database_scheduler():
    assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"
    assert "django_celery_beat" in settings.INSTALLED_APPS


@pytest.mark.django_db
def test_invitation_email_task_is_idempotent_for_closed_invitations(organization, owner):
    from django.core import mail

    from crowdplatform.accounts import services
    from crowdplatform.accounts.tasks import invitation_email_send

    invitation = services.invitation_create(
        organization=organization, email="z@lab.example", role="member", actor=owner
    )
    services.invitation_revoke(invitation=invitation, actor=owner)
    invitation_email_send(invitation.pk)
    invitation_email_send(999_999)
    assert mail.outbox == []
