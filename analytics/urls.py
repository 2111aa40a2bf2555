from django.urls import path

from . import views
from .api.billing import BillingMovementsCsvApi, BillingSummaryApi
from .api.usage import UsageAnalyticsApi

app_name = "analytics"
urlpatterns = [
    # Pages
    path("dashboard/usage", views.usage_dashboard, name="usage-dashboard"),
    path("dashboard/billing", views.billing_overview, name="billing-overview"),
    # API (usage)
    path("api/v1/usage/analytics", UsageAnalyticsApi.as_view(), name="usage-analytics"),
    # API (billing)
    path("api/v1/billing-analytics/summary", BillingSummaryApi.as_view(), name="billing-summary"),
    path("api/v1/billing-analytics/movements.csv", BillingMovementsCsvApi.as_view(), name="billing-movements-csv"),
]
