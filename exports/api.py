"""``GET /api/v1/usage-history/export``: the usage history as a CSV, PDF or XLSX download.

Parse the query, call ``exports.services.usage_export`` (permission, plan, period, render,
record), answer with the file as an attachment. Refusals are 400/403/404 with a message.
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import FileResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from analytics.api.params import PeriodQuerySerializer
from coaching.api_errors import ErrorSerializer

from .registry import FORMATS, REGISTRY
from .rows import HEADER_STYLES
from .services import (
    ExportError,
    ExportFile,
    ExportForbidden,
    ExportNotFound,
    export_rejected,
    usage_export,
)


class FilesOnlyNegotiation(BaseContentNegotiation):
    """The file type comes from ``?format=`` and errors are always JSON.

    DRF would otherwise read ``?format=csv`` as a renderer override (and 404 for lack of a
    "csv" renderer) and answer 406 to a browser's ``Accept: application/pdf``.
    """

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def content_disposition(filename: str, ascii_filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` every browser reads and an RFC 5987 ``filename*`` for the real one."""
    header = f'attachment; filename="{ascii_filename}"'
    if filename != ascii_filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def file_response(export: ExportFile) -> HttpResponseBase:
    if export.size is None:
        response = StreamingHttpResponse(export.content, content_type=export.content_type)
    else:
        response = FileResponse(export.content, content_type=export.content_type)
        response["Content-Length"] = str(export.size)
    response["Content-Disposition"] = content_disposition(export.filename, export.ascii_filename)
    response["Cache-Control"] = "private, no-store"  # someone's usage history: never in a shared cache
    response["X-Export-Record"] = str(export.record_id)
    return response


_BINARY = OpenApiTypes.BINARY
_FILE_HELP = "The file, as an attachment named usage-history_<name>_<from>_<to>.<format>."


class UsageHistoryExportApi(APIView):
    """Download the usage history (the usage ledger, with session, client, status, provider and plan)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "exports"
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FilesOnlyNegotiation

    class InputSerializer(PeriodQuerySerializer):
        period_help = "A named period ending today in the subject's time zone (default: this month). Not with from/to."
        dates_help = "A date YYYY-MM-DD in the subject's time zone, inclusive; from/to replace period."
        user_help = "Staff only: whose history (a user id). Without it, your own."

        format = serializers.ChoiceField(
            choices=FORMATS,
            default="csv",
            help_text="One of the export formats: "
            + ", ".join(f"{f.name} ({f.label}, {f.content_type})" for f in REGISTRY.values())
            + ". Which ones a user gets is their plan's export_formats.",
            error_messages={"invalid_choice": f"Unknown format {{input!r}}: use one of {', '.join(FORMATS)}."},
        )
        bom = serializers.BooleanField(
            default=True, help_text="CSV only: start with a UTF-8 byte-order mark (for Excel). bom=0 to leave it out."
        )

        headers = serializers.ChoiceField(
            choices=HEADER_STYLES,
            default="labels",
            help_text="CSV and XLSX column headers: labels in your language (zh-Hant or English, your profile's), "
            "or keys: stable English names for scripts (created_at, time_zone, kind, …).",
            error_messages={"invalid_choice": f"Unknown headers {{input!r}}: use one of {', '.join(HEADER_STYLES)}."},
        )

        class Meta:
            ref_name = "UsageHistoryExportQuery"

    @extend_schema(
        operation_id="usage_history_export",
        summary="Export usage history",
        parameters=[InputSerializer],
        responses={
            **{(200, f.media_type): OpenApiResponse(_BINARY, description=_FILE_HELP) for f in REGISTRY.values()},
            (400, "application/json"): OpenApiResponse(ErrorSerializer, description="Bad format, dates or user id."),
            (401, "application/json"): OpenApiResponse(ErrorSerializer, description="Not logged in."),
            (403, "application/json"): OpenApiResponse(
                ErrorSerializer, description="Not logged in, another coach's history, or a format the plan lacks."
            ),
            (404, "application/json"): OpenApiResponse(ErrorSerializer, description="Staff: no such user."),
            (429, "application/json"): OpenApiResponse(ErrorSerializer, description="Too many exports: wait."),
            (507, "application/json"): OpenApiResponse(
                ErrorSerializer, description="The server's disk filled up while writing the file: nothing was kept."
            ),
        },
        tags=["exports"],
    )
    def get(self, request: Request) -> HttpResponseBase:
        raw = request.query_params.dict()  # a plain dict: a QueryDict would read a missing bom as false
        params = self.InputSerializer(data=raw)
        if not params.is_valid():
            error = ValidationError(params.errors)
            export_rejected(request.user, fmt=raw.get("format", ""), error=_message(params.errors))
            raise error
        data = params.validated_data
        period_params = {key: raw[key] for key in ("period", "from", "to") if raw.get(key)}
        try:
            export = usage_export(
                request.user,
                fmt=data["format"],
                params=period_params,
                user_id=data.get("user"),
                bom=data["bom"],
                headers=data["headers"],
            )
        except ExportError as error:
            raise _api_error(error) from None
        return file_response(export)


def _message(errors: dict) -> str:
    return "; ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in errors.items())


def _api_error(error: ExportError) -> APIException:
    if isinstance(error, ExportForbidden):
        return PermissionDenied(error.message)
    if isinstance(error, ExportNotFound):
        return NotFound(error.message)
    if error.status >= 500:  # e.g. 507 ExportNoSpace: the server's trouble, not the request's
        failure = APIException(error.message)
        failure.status_code = error.status
        return failure
    return ValidationError({error.field or "non_field_errors": [error.message]})
