"""Carrying a campaign's invite link through sign-up, in the session."""

from __future__ import annotations

from django.http import HttpRequest

from crowdplatform.raters.models import RecruitmentCampaign

CAMPAIGN_SESSION_KEY = "campaign_token"


def campaign_remember(request: HttpRequest, token: str) -> None:
    request.session[CAMPAIGN_SESSION_KEY] = token


def campaign_from_session(request: HttpRequest) -> RecruitmentCampaign | None:
    """The open campaign the visitor arrived through, once (it is forgotten when read)."""
    token = request.session.pop(CAMPAIGN_SESSION_KEY, None)
    return RecruitmentCampaign.objects.filter(token=token, is_open=True).first() if token else None
