"""GET /api/v1/studies/{id}/leaderboard/: the study's ratings, as the leaderboard page shows them.

The path, the query parameters and the payload's fields are a public contract (README "Studies
API"). Each system entry starts with exactly `compute_ratings`'s JSON fields, in its order, so a
script can compare the two. Anyone may read a public study's leaderboard, signed in or not;
otherwise the study's own clients (members, API keys) and staff, as every study endpoint.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.core.errors import ApplicationError
from evaluations.leaderboard import (
    MAX_BOOTSTRAP,
    QUALITY_INCLUDED,
    QUALITY_OPTIONS,
    Leaderboard,
    leaderboard_study_for,
    public_study,
    study_leaderboard,
)
from evaluations.models import Study
from evaluations.ratings import DEFAULT_BOOTSTRAP, anchor_parse

MAX_SEED = 2**32 - 1


class LeaderboardQuery(serializers.Serializer):
    criterion = serializers.CharField(required=False, help_text="One of the study's criteria; overall if absent.")
    quality = serializers.ChoiceField(
        choices=QUALITY_OPTIONS,
        default=QUALITY_INCLUDED,
        help_text="`included` leaves out votes the quality checks excluded; `all` counts them too.",
    )
    anchor = serializers.CharField(
        required=False, help_text="SYSTEM=RATING: shift the scale so SYSTEM has RATING (split on the last '=')."
    )
    bootstrap = serializers.IntegerField(
        min_value=0, max_value=MAX_BOOTSTRAP, default=DEFAULT_BOOTSTRAP, help_text="Bootstrap rounds (0 to 10000)."
    )
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0, help_text="The bootstrap's seed.")

    def validate_anchor(self, value: str) -> tuple[str, float]:
        return anchor_parsed(value)


def anchor_parsed(value: str) -> tuple[str, float]:
    """Parse SYSTEM=RATING into (system, rating), as `compute_ratings --anchor` does."""
    try:
        return anchor_parse(value)
    except ValueError as error:
        raise serializers.ValidationError(str(error)) from error


SYSTEM_ENTRY_FIELDS = {
    "system": serializers.CharField(),
    "rating": serializers.FloatField(allow_null=True),
    "ci_low": serializers.FloatField(allow_null=True),
    "ci_high": serializers.FloatField(allow_null=True),
    "rank": serializers.IntegerField(allow_null=True),
    "votes": serializers.IntegerField(),
    "provisional": serializers.BooleanField(),
    "elo": serializers.FloatField(allow_null=True),
}
LEADERBOARD = inline_serializer(
    "Leaderboard",
    {
        "study": serializers.IntegerField(),
        "criterion": serializers.CharField(allow_null=True),
        "quality": serializers.CharField(),
        "bootstrap": serializers.IntegerField(),
        "seed": serializers.IntegerField(),
        "anchor": inline_serializer(
            "LeaderboardAnchor",
            {"system": serializers.CharField(), "rating": serializers.FloatField()},
            allow_null=True,
        ),
        "votes_counted": serializers.IntegerField(),
        "votes_excluded": serializers.IntegerField(),
        "systems": inline_serializer("LeaderboardSystem", SYSTEM_ENTRY_FIELDS, many=True),
        "win_rate": inline_serializer(
            "LeaderboardWinRate",
            {
                "systems": serializers.ListField(child=serializers.CharField()),
                "matrix": serializers.ListField(
                    child=serializers.ListField(child=serializers.FloatField(allow_null=True))
                ),
            },
        ),
        "criteria": serializers.ListField(child=serializers.CharField()),
        "error": serializers.CharField(
            required=False, help_text="Present only when no ratings could be computed, and why."
        ),
    },
)


def leaderboard_payload(board: Leaderboard) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "study": board.study_id,
        "criterion": board.criterion,
        "quality": board.quality,
        "bootstrap": board.bootstrap,
        "seed": board.seed,
        "anchor": None if board.anchor is None else {"system": board.anchor[0], "rating": board.anchor[1]},
        "votes_counted": board.votes_counted,
        "votes_excluded": board.votes_excluded,
        "systems": [row.as_dict() for row in board.rows],
        "win_rate": {"systems": list(board.matrix_systems), "matrix": [list(row) for row in board.win_rate]},
        "criteria": list(board.criteria),
    }
    if board.error is not None:
        payload["error"] = board.error
    return payload


def _study(request: Request, study_id: int) -> Study:
    if not request.user or not request.user.is_authenticated:
        try:
            return public_study(study_id)
        except Http404:  # private or missing: the same answer as any endpoint gives a stranger
            raise NotAuthenticated() from None
    return leaderboard_study_for(request.user, study_id)


def _query_problem(errors: dict[str, Any]) -> ApplicationError:
    fields = {name: [str(message) for message in messages] for name, messages in errors.items()}
    summary = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
    return ApplicationError(f"Bad query parameters: {summary}", code="invalid_query", fields=fields)


class StudyLeaderboardApi(APIView):
    # Public studies' leaderboards are for everyone; `_study` applies the rule for the others.
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("criterion", str, description="One of the study's criteria; overall if absent."),
            OpenApiParameter("quality", str, enum=list(QUALITY_OPTIONS), description="included (default) or all."),
            OpenApiParameter("anchor", str, description="SYSTEM=RATING, split on the last '='."),
            OpenApiParameter("bootstrap", int, description=f"Bootstrap rounds, 0 to {MAX_BOOTSTRAP} (default 1000)."),
            OpenApiParameter("seed", int, description="The bootstrap's seed (default 0)."),
        ],
        responses={
            200: LEADERBOARD,
            400: OpenApiResponse(description="A bad parameter: unknown criterion or anchor system, out of range."),
            401: OpenApiResponse(description="Not signed in, and the study is not public (or does not exist)."),
            404: OpenApiResponse(description="No such study among those you may see."),
        },
    )
    def get(self, request: Request, study_id: int) -> Response:
        """Bradley-Terry ratings (ties count half) on the arena scale with bootstrap 95% intervals, rank
        (1 + systems whose interval lies wholly above), votes, a provisional flag, online Elo, and the
        win-rate matrix. Every registered system is listed: those without votes last, with nulls."""
        study = _study(request, study_id)
        query = LeaderboardQuery(data=request.query_params)
        if not query.is_valid():
            raise _query_problem(query.errors)
        options = query.validated_data
        board = study_leaderboard(
            study=study,
            criterion=options.get("criterion"),
            quality=options["quality"],
            bootstrap=options["bootstrap"],
            seed=options["seed"],
            anchor=options.get("anchor"),
        )
        return Response(leaderboard_payload(board))
