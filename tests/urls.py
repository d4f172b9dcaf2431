"""The real URLs plus endpoints that fail on purpose, for error-shape tests."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.core.errors import ConflictError
from crowdplatform.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


class CrashApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("boom")


class ConflictApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise ConflictError("The study is live; pause it first.", code="study_live")

    def post(self, request):
        return Response({"received": request.data})


def crash_page(request):
    raise RuntimeError("boom")


urlpatterns = [
    *urlpatterns,
    path("api/v1/test-crash/", CrashApi.as_view()),
    path("api/v1/test-conflict/", ConflictApi.as_view()),
    path("test-crash/", crash_page),
]
