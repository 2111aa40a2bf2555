from django.urls import path

from . import views

app_name = "analytics"
urlpatterns = [
    # Pages
    path("dashboard/usage", views.usage_dashboard, name="usage-dashboard"),
    path("dashboard/billing", views.billing_overview, name="billing-overview"),
    # API (usage)
    # API (billing)
]
