from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from console.api import APIRootView
from traces import ingest_views


@login_not_required
def healthz(request):
    """For load balancers and container health checks: the database must answer."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        response = HttpResponse("database unavailable", status=503, content_type="text/plain")
        response["Retry-After"] = str(settings.OTLP_RETRY_AFTER_SECONDS)
        return response
    return HttpResponse("ok", content_type="text/plain")


# An outage raised before any view runs (loading the session, the user) is a 503 too.
handler500 = "agentops_site.outage.server_error"
# JSON under /api/, the console's page with its navigation elsewhere (console/errors.py).
handler404 = "console.errors.page_not_found"


urlpatterns = [
    # OTLP/HTTP. The documented path is /v1/...; clients built for other servers post
    # to a prefix such as /api/public/otel/v1/traces, matched by the same views.
    re_path(r"^(?:.+/)?v1/traces/?$", ingest_views.otlp_traces, name="otlp-traces"),
    re_path(r"^(?:.+/)?v1/logs/?$", ingest_views.otlp_logs, name="otlp-logs"),
    re_path(r"^(?:.+/)?v1/metrics/?$", ingest_views.otlp_metrics, name="otlp-metrics"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", APIRootView.as_view(), name="api-root"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    path("api/", include("traces.api.urls")),
    path("api/", include("budgets.api.urls")),
    path("api/", include("controls.api.urls")),
    path("", include("console.urls")),
    path("", include("rollouts.urls")),
    path("", include("traces.urls")),
    path("", include("budgets.urls")),
    path("", include("controls.urls")),
]
