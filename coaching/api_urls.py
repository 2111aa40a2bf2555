"""API routes owned by the coaching app (bulk operations; the transcription pipeline's session reports)."""

from django.urls import path

from . import pipeline_api
from .api import BulkOperationDetailApi, BulkOperationUndoApi, BulkResetUsageApi

app_name = "coaching"
SESSION = "api/v1/sessions/<int:session_id>/"
urlpatterns = [
    path("api/v1/admin/bulk/reset-usage", BulkResetUsageApi.as_view(), name="bulk-reset-usage"),
    path("api/v1/admin/bulk/operations/<uuid:operation_id>", BulkOperationDetailApi.as_view(), name="bulk-operation"),
    path(
        "api/v1/admin/bulk/operations/<uuid:operation_id>/undo",
        BulkOperationUndoApi.as_view(),
        name="bulk-operation-undo",
    ),
    path("api/v1/sessions", pipeline_api.SessionCreateApi.as_view(), name="session-create"),
    path(SESSION + "processing", pipeline_api.SessionProcessingApi.as_view(), name="session-processing"),
    path(SESSION + "finished", pipeline_api.SessionFinishedApi.as_view(), name="session-finished"),
    path(SESSION + "failed", pipeline_api.SessionFailedApi.as_view(), name="session-failed"),
    path(SESSION + "deleted", pipeline_api.SessionDeletedApi.as_view(), name="session-deleted"),
]
