"""Bulk operations API (admins only): start a usage reset, poll an operation, undo it.

``POST /api/v1/admin/bulk/reset-usage`` → 202 and the operation to poll;
``GET /api/v1/admin/bulk/operations/<id>`` → status, progress, totals and paginated results;
``POST /api/v1/admin/bulk/operations/<id>/undo`` → 202, the undo queued as a task; poll until reverted.

Re-sending a request: with the same ``Idempotency-Key`` header (same admin, same body) the
first operation is returned (200) and nothing new runs; without a key a new operation is
created that finds nothing left to do (every user skipped: "counters are already zero").
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from coaching import bulk
from coaching.api_errors import ErrorSerializer
from coaching.models import BulkOperation, BulkOperationResult

IDEMPOTENCY_KEY_MAX = 255
# What a poll shows; not the selection (megabytes of JSON at 100,000 ids).
PROGRESS_FIELDS = ["status", "processed", "succeeded", "skipped", "failed", "summary", "error"]
PROGRESS_FIELDS += ["started_at", "finished_at"]
# JSON bytes one id may take ("…36 characters…", plus separators and some whitespace).
BYTES_PER_ID = 48
# Seconds a client should wait before re-sending a request the broker could not take (503).
RETRY_AFTER = 30


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


def read_body_up_to_the_id_limit(request: Request) -> None:
    """Read the body of an admin's bulk request, allowing room for ``BULK_MAX_USERS`` ids.

    100,000 ids are about 4 MB of JSON, more than Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB),
    which stays in force for every other request. Called after the permission check, so only
    admins get the larger allowance. Reading the body here leaves it where DRF's parser finds it.
    """
    raw = request._request
    default = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if default is None or hasattr(raw, "_body") or raw._read_started:
        return
    limit = max(default, bulk.max_users() * BYTES_PER_ID + 4096)
    try:  # as Django reads it: a missing, malformed or negative length is an empty body
        length = max(0, int(raw.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        length = 0
    if length > limit:
        raise RequestTooLarge(f"The request body is {length:,} bytes; at most {limit:,} ({bulk.max_users():,} ids).")
    raw._body = raw.read(length)


class IsBulkOperator(BasePermission):
    """Superusers, or users given the "Can run bulk operations on users" permission."""

    message = "Only admins may run bulk operations (a superuser or the 'Can run bulk operations on users' permission)."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.has_perm(bulk.BULK_PERMISSION))


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "minItems": 1,
        "description": "Users' ids (UUIDs), at most BULK_MAX_USERS (100,000 by default). Duplicates count once.",
    }
)
class UserIdsField(serializers.Field):
    """User ids checked for shape here (a non-empty list of UUIDs within the limit); the use case checks they exist."""

    def to_internal_value(self, data):
        try:
            return bulk.parse_user_ids(data)
        except bulk.BulkInputError as error:
            raise ValidationError(error.errors["user_ids"]) from None

    def to_representation(self, value):
        return [str(v) for v in value]


class OperationSerializer(serializers.Serializer):
    """An operation as clients poll it. ``summary`` holds the dry run, what was done, and the undo."""

    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=BulkOperation.Kind.choices)
    status = serializers.ChoiceField(choices=BulkOperation.Status.choices)
    dry_run = serializers.BooleanField()
    parameters = serializers.DictField(help_text='e.g. {"reset_type": "monthly"}')
    total = serializers.IntegerField(min_value=0, help_text="Distinct users selected.")
    processed = serializers.IntegerField(min_value=0)
    succeeded = serializers.IntegerField(min_value=0)
    skipped = serializers.IntegerField(min_value=0)
    failed = serializers.IntegerField(min_value=0)
    progress_percent = serializers.IntegerField(min_value=0, max_value=100)
    summary = serializers.DictField(help_text="dry_run: the figures; done: what changed; undo: what was restored.")
    error = serializers.CharField(allow_blank=True)
    requested_by = serializers.EmailField(source="requested_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    reverted_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.SerializerMethodField()
    undo_url = serializers.SerializerMethodField(help_text="Null unless this is a finished reset that can be undone.")

    class Meta:
        ref_name = "BulkOperation"

    def get_status_url(self, op: BulkOperation) -> str:
        return self.context["request"].build_absolute_uri(reverse("coaching:bulk-operation", args=[op.pk]))

    def get_undo_url(self, op: BulkOperation) -> str | None:
        if op.kind != BulkOperation.Kind.RESET_USAGE or op.dry_run or op.status not in bulk.operations.UNDOABLE:
            return None
        return self.context["request"].build_absolute_uri(reverse("coaching:bulk-operation-undo", args=[op.pk]))


def _operation_or_404(queryset, operation_id) -> BulkOperation:
    op = queryset.filter(pk=operation_id).first()
    if op is None:
        raise NotFound(f"No bulk operation has the id {operation_id}.")
    return op


def _operation_data(request: Request, op: BulkOperation) -> dict:
    return OperationSerializer(bulk.live(op), context={"request": request}).data


class BulkResetUsageApi(APIView):
    """Reset the usage counters of the given users (archived first), in the background; or only count (dry run)."""

    parser_classes = [JSONParser]
    permission_classes = [IsBulkOperator]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "bulk"

    class InputSerializer(serializers.Serializer):
        user_ids = UserIdsField()
        reset_type = serializers.ChoiceField(
            choices=bulk.RESET_TYPES,
            help_text="monthly: this month's counters (in each user's time zone); all: counters of any month.",
            error_messages={"invalid_choice": "unknown reset type {input!r}: use 'monthly' or 'all'"},
        )
        dry_run = serializers.BooleanField(default=False, help_text="Only count users and minutes; change nothing.")

        class Meta:
            ref_name = "BulkResetUsageInput"

    @extend_schema(
        operation_id="bulk_reset_usage",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="Re-sending the same request with the same key returns the first operation.",
            )
        ],
        responses={
            202: OpenApiResponse(OperationSerializer, description="Started: poll status_url."),
            200: OpenApiResponse(OperationSerializer, description="A dry run, or a replay of an Idempotency-Key."),
            400: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "Bad input; nothing was created or changed. errors.unknown_user_ids lists ids that match no user."
                ),
            ),
            403: OpenApiResponse(ErrorSerializer, description="Not an admin."),
            409: OpenApiResponse(ErrorSerializer, description="Idempotency-Key reused for a different request."),
            413: OpenApiResponse(ErrorSerializer, description="More bytes than BULK_MAX_USERS ids can take."),
            429: OpenApiResponse(ErrorSerializer, description="Too many bulk requests."),
            503: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "The task queue (broker) is down: nothing changed; the operation is recorded failed "
                    "(summary.not_queued). Re-send after Retry-After seconds; the same Idempotency-Key runs it."
                ),
            ),
        },
    )
    def post(self, request: Request) -> Response:
        read_body_up_to_the_id_limit(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise ValidationError({"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]})
        if "\x00" in key:  # PostgreSQL text cannot hold it: a lookup would be a DataError (a 500)
            raise ValidationError({"Idempotency-Key": ["contains a NUL character: use printable characters only"]})
        try:
            op, created = bulk.operation_create(
                kind=BulkOperation.Kind.RESET_USAGE,
                user_ids=data["user_ids"],
                parameters={"reset_type": data["reset_type"]},
                requested_by=request.user,
                dry_run=data["dry_run"],
                idempotency_key=key,
            )
        except bulk.BulkInputError as error:
            raise ValidationError(error.errors) from None
        except bulk.BulkStateError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        op.refresh_from_db(fields=[*PROGRESS_FIELDS, "summary"])  # eager (embedded) runs have finished by now
        if bulk.not_queued(op):
            return _broker_unavailable(request, op, key)
        code = status.HTTP_202_ACCEPTED if created and not op.dry_run else status.HTTP_200_OK
        return Response(_operation_data(request, op), status=code)


def _broker_unavailable(request: Request, op: BulkOperation, key: str) -> Response:
    """503: the task queue is down, so the operation was recorded failed without changing anything."""
    again = "with the same Idempotency-Key to run this operation" if key else "to run it"
    detail = (
        "The task queue is unavailable right now, so the reset was not started and nothing was changed. "
        f"Send the same request again in a minute {again}."
    )
    body = {"detail": detail, "operation": _operation_data(request, op)}
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER)})


class ResultSerializer(serializers.Serializer):
    user_id = serializers.UUIDField()
    email = serializers.EmailField(source="user.email")
    status = serializers.ChoiceField(choices=BulkOperationResult.Status.choices)
    reason = serializers.CharField(allow_blank=True, help_text="Why skipped, or the error when failed.")
    before = serializers.DictField(help_text="The values before the change.")

    class Meta:
        ref_name = "BulkOperationResult"


class ResultsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=0)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ResultSerializer(many=True)

    class Meta:
        ref_name = "BulkOperationResultsPage"


class ResultsPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class BulkOperationDetailApi(APIView):
    """An operation's status, progress and totals, with its per-user results a page at a time."""

    permission_classes = [IsBulkOperator]

    class InputSerializer(serializers.Serializer):
        page = serializers.IntegerField(min_value=1, required=False, help_text="Page of results (50 a page).")
        page_size = serializers.IntegerField(min_value=1, max_value=500, required=False)
        status = serializers.ChoiceField(
            choices=BulkOperationResult.Status.choices, required=False, help_text="Only results with this status."
        )

        class Meta:
            ref_name = "BulkOperationQuery"

    class OutputSerializer(OperationSerializer):
        results = ResultsPageSerializer(help_text="Per-user results, in the order they were recorded.")

        class Meta:
            ref_name = "BulkOperationDetail"

    @extend_schema(
        operation_id="bulk_operation_detail",
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Bad query parameter."),
            403: OpenApiResponse(ErrorSerializer, description="Not an admin."),
            404: OpenApiResponse(ErrorSerializer, description="No such operation, or no such page."),
        },
    )
    def get(self, request: Request, operation_id) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        op = _operation_or_404(BulkOperation.objects.select_related("requested_by").defer("user_ids"), operation_id)
        results = op.results.select_related("user").order_by("id")
        if "status" in query.validated_data:
            results = results.filter(status=query.validated_data["status"])
        paginator = ResultsPagination()
        page = paginator.paginate_queryset(results, request, view=self)
        data = _operation_data(request, op)
        data["results"] = {
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": ResultSerializer(page, many=True).data,
        }
        return Response(data)


class BulkOperationUndoApi(APIView):
    """Undo a finished usage reset from its archives, in the background (as the admin's undo does):
    202 and the operation to poll until it reads ``reverted``. Undoing twice is refused (409)."""

    permission_classes = [IsBulkOperator]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "bulk"

    @extend_schema(
        operation_id="bulk_operation_undo",
        request=None,
        responses={
            202: OpenApiResponse(
                OperationSerializer,
                description="Queued (summary.undo.status): poll status_url until the status is reverted; "
                "summary.undo then says how many users were restored.",
            ),
            400: OpenApiResponse(ErrorSerializer, description="A NUL character in the URL (coaching.nul_bytes)."),
            403: OpenApiResponse(ErrorSerializer, description="Not an admin."),
            404: OpenApiResponse(ErrorSerializer, description="No such operation."),
            409: OpenApiResponse(ErrorSerializer, description="Cannot be undone (already undone, running, …)."),
            429: OpenApiResponse(ErrorSerializer, description="Too many bulk requests."),
        },
    )
    def post(self, request: Request, operation_id) -> Response:
        op = _operation_or_404(BulkOperation.objects.defer("user_ids"), operation_id)
        try:
            op = bulk.undo_request(op, by=request.user)
        except bulk.BulkStateError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(_operation_data(request, op), status=status.HTTP_202_ACCEPTED)
