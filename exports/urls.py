from django.urls import path

from .api import UsageHistoryExportApi

app_name = "exports"
urlpatterns = [
    path("api/v1/usage-history/export", UsageHistoryExportApi.as_view(), name="usage-history-export"),
]
