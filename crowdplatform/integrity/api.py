"""`GET /api/v1/transparency/`: the public transparency report as JSON (no key needed)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.integrity.report import report_as_dict, transparency_reports


class TransparencyApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: OpenApiResponse(
                description=(
                    '{"leaderboards": [{"name", "slug", "study_id", "sampling", "parameters", "policy": [{"number", '
                    '"text", "parameters", "effective_at"}], "providers": [{"name", "slug", "systems": [{"name", '
                    '"license_class", "prerelease", "registered_at", "window_ends_at", "status", "result", "results", '
                    '"retired_at", "retirement_rule", "battles", "votes", "mean_probability", '
                    '"days": [{"date", "battles", "share", "mean_probability"}]}], '
                    '"prerelease_tested", "battles", "votes", '
                    '"battle_share", "days": [{"date", "share", "battles"}], "released_battles_with_its_systems", '
                    '"released_battles_given"}], "releases": [{"period_start", "period_end", "battles", "size_bytes", '
                    '"file_sha256", "previous_chain_sha256", "chain_sha256", "published_at"}], "battles", "votes", '
                    '"days"}]}'
                )
            )
        }
    )
    def get(self, request: Request) -> Response:
        """Every public leaderboard: per provider its systems (pre-release variants included) with their
        published scores, battles and sampling share per day, retirements with the rule applied, and the
        data released to everyone; the policy and its history; the digest chain of released battles."""
        return Response({"leaderboards": [report_as_dict(report) for report in transparency_reports()]})
