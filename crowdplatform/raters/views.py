from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crowdplatform.accounts.access import RATER_AREA, area_required
from crowdplatform.raters.models import RaterProfile


@area_required(RATER_AREA)
def rater_home(request: HttpRequest) -> HttpResponse:
    profile = RaterProfile.objects.filter(user=request.user).first()
    return render(request, "raters/home.html", {"profile": profile})
