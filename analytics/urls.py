from django.urls import path

from . import views
from .api.billing import BillingMovementsCsvApi, BillingSummaryApi
from .api.usage import UsageAnalyticsApi
from .views import live

app_name = "analytics"
urlpatterns = [
    # Pages
    path("dashboard/usage", views.usage_dashboard, name="usage-dashboard"),
    path("dashboard/billing", views.billing_overview, name="billing-overview"),
    # Live updates (Server-Sent Events, under ASGI)
    path("dashboard/usage/stream", live.usage_stream, name="usage-stream"),
    path("dashboard/billing/stream", live.billing_stream, name="billing-stream"),
    # API (usage)
    path("api/v1/usage/analytics", UsageAnalyticsApi.as_view(), name="usage-analytics"),
    # API (billing)
    path("api/v1/billing-analytics/summary", BillingSummaryApi.as_view(), name="billing-summary"),
    path("api/v1/billing-analytics/movements.csv", BillingMovementsCsvApi.as_view(), name="billing-movements-csv"),
]
