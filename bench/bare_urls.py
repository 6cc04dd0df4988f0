"""The benchmark's root URLconf: the application's URLs plus two bare views, the floor.

``/bench/bare`` is a plain Django view behind the full middleware stack; ``/bench/bare-drf`` is
an empty DRF ``APIView`` with the project's default authentication and permission classes. The
gap between them is DRF's share of a request; the gap between ``/bench/bare-drf`` and
``/predict`` is what the prediction itself costs.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine import urls as mlengine_urls
from mlengine.urls import handler400, handler403, handler404, handler500

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def bare_view(request: HttpRequest) -> JsonResponse:
    """The cheapest JSON answer Django can give."""
    return JsonResponse({"ok": True})


class BareApi(APIView):
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/bare", bare_view, name="bench-bare"),
    path("bench/bare-drf", BareApi.as_view(), name="bench-bare-drf"),
    # The application's patterns as they are, not included: ``/predict`` resolves as it does
    # in production, two patterns later.
    *mlengine_urls.urlpatterns,
]
