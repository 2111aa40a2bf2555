"""API routes owned by the coaching app (bulk operations)."""

from django.urls import path

from .api import BulkOperationDetailApi, BulkOperationUndoApi, BulkResetUsageApi

app_name = "coaching"
urlpatterns = [
    path("api/v1/admin/bulk/reset-usage", BulkResetUsageApi.as_view(), name="bulk-reset-usage"),
    path("api/v1/admin/bulk/operations/<uuid:operation_id>", BulkOperationDetailApi.as_view(), name="bulk-operation"),
    path(
        "api/v1/admin/bulk/operations/<uuid:operation_id>/undo",
        BulkOperationUndoApi.as_view(),
        name="bulk-operation-undo",
    ),
]
