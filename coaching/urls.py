from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAdminUser

from coaching import health
from coaching.language import language_set

urlpatterns = [
    # Liveness and readiness for load balancers (coaching/health.py, docs/deploy.md).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", RedirectView.as_view(pattern_name="analytics:usage-dashboard", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/language", language_set, name="language-set"),
    path("admin/", admin.site.urls),
    # The OpenAPI schema and its Swagger UI, for staff.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAdminUser]), name="schema"),
    path(
        "api/schema/swagger-ui/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[IsAdminUser]),
        name="swagger-ui",
    ),
    path("", include("analytics.urls")),
    path("", include("exports.urls")),
    path("", include("coaching.api_urls")),
]
