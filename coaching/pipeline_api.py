"""The transcription pipeline reports a session's life: uploaded, processing, finished or failed, deleted.

``POST /api/v1/sessions`` → 201, the session (``pending``);
``POST /api/v1/sessions/<id>/processing`` → 200, ``processing`` (started now);
``POST /api/v1/sessions/<id>/finished`` → 200, ``completed``, and its usage in the ledger and the month's counters;
``POST /api/v1/sessions/<id>/failed`` → 200, ``failed`` with the error (no usage);
``POST /api/v1/sessions/<id>/deleted`` → 200, the audio deleted from storage (usage stays).

Only the pipeline may call it: ``Authorization: Bearer <PIPELINE_TOKEN>`` (coaching.authentication).
Every write goes through ``coaching.services``. A pipeline retries a report whose answer it lost:
repeating a report already applied (same values) answers 200 with ``replayed: true`` and changes
nothing, so usage is never counted twice; a report the session's state does not allow answers 409
and says why. The contract, for the pipeline's authors, is in docs/architecture.md.
"""

from __future__ import annotations

import abc

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coaching import services
from coaching.api_errors import ErrorSerializer
from coaching.authentication import HasPipelineToken, PipelineTokenAuthentication
from coaching.models import Client, CoachingSession, UsageLog, User

MAX_DURATION_SECONDS = 24 * 60 * 60  # longer than any coaching session: a unit mistake, not a recording
COST = {"max_digits": 10, "decimal_places": 4, "min_value": 0}
SESSION_ID = OpenApiParameter(
    "session_id",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.PATH,
    description="The session's id, as the create call answered it.",
)


class UsageSerializer(serializers.Serializer):
    """The ledger row a finished session wrote."""

    kind = serializers.ChoiceField(choices=UsageLog.Kind.choices)
    seconds = serializers.IntegerField()
    minutes = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="seconds / 60, two places, half up.")
    billable = serializers.BooleanField(help_text="Counts toward the monthly quota.")
    plan_code = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PipelineUsage"


class SessionSerializer(serializers.Serializer):
    """A session as the pipeline sees it after its report."""

    id = serializers.IntegerField()
    coach_id = serializers.UUIDField()
    client_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    session_date = serializers.DateField()
    status = serializers.ChoiceField(choices=CoachingSession.Status.choices)
    audio_filename = serializers.CharField(allow_blank=True)
    audio_size_bytes = serializers.IntegerField()
    duration_seconds = serializers.IntegerField()
    language = serializers.CharField()
    stt_provider = serializers.ChoiceField(choices=CoachingSession.Provider.choices)
    provider_cost_usd = serializers.DecimalField(max_digits=10, decimal_places=4)
    processing_started_at = serializers.DateTimeField(allow_null=True)
    processing_finished_at = serializers.DateTimeField(allow_null=True)
    error_message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    usage = serializers.SerializerMethodField(help_text="The ledger row of a completed session; null otherwise.")
    replayed = serializers.SerializerMethodField(
        help_text="True when this report repeated one already applied: nothing changed."
    )
    detail = serializers.SerializerMethodField(help_text="What this report did.")

    class Meta:
        ref_name = "PipelineSession"

    @extend_schema_field(UsageSerializer(allow_null=True))
    def get_usage(self, session: CoachingSession) -> dict | None:
        if session.status != CoachingSession.Status.COMPLETED:
            return None
        log = session.usage_logs.order_by("-created_at", "-pk").first()
        return UsageSerializer(log).data if log else None

    def get_replayed(self, session: CoachingSession) -> bool:
        return self.context.get("replayed", False)

    def get_detail(self, session: CoachingSession) -> str:
        return self.context.get("detail", "")


def _when(moment) -> str:
    """A time in a message, written as the answer's own fields write it."""
    return serializers.DateTimeField().to_representation(moment)


def _answer(session: CoachingSession, detail: str, *, replayed: bool = False, code: int = status.HTTP_200_OK):
    session.refresh_from_db()
    return Response(SessionSerializer(session, context={"replayed": replayed, "detail": detail}).data, status=code)


def _session_or_404(session_id: int) -> CoachingSession:
    session = CoachingSession.objects.filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"No session has the id {session_id}.")
    return session


def _responses(ok: str, *, created: bool = False, conflict: str | None = None) -> dict:
    responses = {
        201 if created else 200: OpenApiResponse(SessionSerializer, description=ok),
        400: OpenApiResponse(ErrorSerializer, description="Bad input: the message names the field to fix."),
        401: OpenApiResponse(ErrorSerializer, description="No service token, or not the right one."),
        403: OpenApiResponse(ErrorSerializer, description="The API is off: the server has no PIPELINE_TOKEN."),
    }
    if not created:
        responses[404] = OpenApiResponse(ErrorSerializer, description="No session has this id.")
    if conflict:
        responses[409] = OpenApiResponse(ErrorSerializer, description=conflict)
    return responses


class PipelineApi(APIView):
    """The session API's common ground: the pipeline's token only, JSON bodies."""

    authentication_classes = [PipelineTokenAuthentication]
    permission_classes = [HasPipelineToken]
    parser_classes = [JSONParser]


class SessionCreateApi(PipelineApi):
    """A coach uploaded a recording: the session exists, ``pending`` until processing starts."""

    class InputSerializer(serializers.Serializer):
        coach_id = serializers.UUIDField(help_text="The coach (user) who uploaded the recording.")
        client_id = serializers.IntegerField(required=False, allow_null=True, help_text="One of the coach's clients.")
        title = serializers.CharField(max_length=200)
        session_date = serializers.DateField(help_text="The day the coaching session took place (YYYY-MM-DD).")
        audio_filename = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        audio_size_bytes = serializers.IntegerField(min_value=0)
        duration_seconds = serializers.IntegerField(
            min_value=0, max_value=MAX_DURATION_SECONDS, required=False, default=0, help_text="If known at upload."
        )
        language = serializers.CharField(max_length=16, required=False, default="cmn-Hant-TW", help_text="BCP 47.")
        stt_provider = serializers.ChoiceField(
            choices=CoachingSession.Provider.choices, required=False, default=CoachingSession.Provider.GOOGLE
        )
        fee_amount = serializers.DecimalField(
            max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True, default=None
        )
        fee_currency = serializers.RegexField(
            r"^[A-Z]{3}$",
            required=False,
            allow_blank=True,
            default="",
            error_messages={"invalid": "an ISO 4217 code in capitals, e.g. TWD"},
        )

        class Meta:
            ref_name = "PipelineSessionCreateInput"

        def validate(self, data: dict) -> dict:
            coach = User.objects.filter(pk=data["coach_id"], is_active=True).first()
            if coach is None:
                raise serializers.ValidationError({"coach_id": f"No active coach has the id {data['coach_id']}."})
            data["coach"] = coach
            client_id = data.pop("client_id", None)
            data["client"] = None
            if client_id is not None:
                client = Client.objects.filter(pk=client_id).first()
                if client is None:
                    raise serializers.ValidationError({"client_id": f"No client has the id {client_id}."})
                if client.coach_id != coach.pk:
                    raise serializers.ValidationError(
                        {"client_id": f"Client {client_id} is another coach's client, not {coach.email}'s."}
                    )
                data["client"] = client
            if data["fee_amount"] is not None and not data["fee_currency"]:
                raise serializers.ValidationError({"fee_currency": "Required with fee_amount, e.g. TWD."})
            if data["fee_amount"] is None and data["fee_currency"]:
                raise serializers.ValidationError({"fee_amount": "fee_currency was given without fee_amount."})
            return data

    @extend_schema(
        operation_id="pipeline_session_create",
        request=InputSerializer,
        responses=_responses("Created: the session, pending.", created=True),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        data.pop("coach_id")
        session = services.session_create(**data)
        return _answer(session, "Created: pending until processing starts.", code=status.HTTP_201_CREATED)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The session's state does not allow this report."


class SessionStepApi(PipelineApi, abc.ABC):
    """One report on an existing session: validate, apply through its service; a repeat is a replay.

    A subclass says what the step does (``step``), what it answers (``done``) and which repeat is
    the same report again (``replay``: the message, or None when the state refuses it: 409).
    """

    InputSerializer: type[serializers.Serializer] | None = None
    done = ""

    @abc.abstractmethod
    def step(self, session: CoachingSession, data: dict) -> None:
        """Apply the report through its service; ``SessionStateError`` when the state refuses it."""

    @abc.abstractmethod
    def replay(self, session: CoachingSession, data: dict) -> str | None:
        """The answer to a repeat of a report already applied; None when the state refuses it (409)."""

    def post(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(session_id)
        data = {}
        if self.InputSerializer is not None:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        try:
            self.step(session, data)
        except services.SessionStateError as error:
            message = self.replay(session, data)  # ``session`` was reloaded by the service
            if message is None:
                raise Conflict(str(error)) from None
            return _answer(session, message, replayed=True)
        return _answer(session, self.done)


class SessionProcessingApi(SessionStepApi):
    """Transcription started now. Reporting it again while it runs changes nothing."""

    done = "Processing."

    def step(self, session, data):
        if session.status == CoachingSession.Status.FAILED:
            # The service allows the free retry of a failed session; the pipeline does not offer it (yet):
            # a failed job is final here, and a new upload is a new session.
            raise services.SessionStateError(f"Session {session.pk} is failed: only an uploaded session can start.")
        services.session_processing_start(session)

    def replay(self, session, data):
        if session.status == CoachingSession.Status.PROCESSING:
            return f"Already processing since {_when(session.processing_started_at)}: nothing changed."
        return None

    @extend_schema(
        operation_id="pipeline_session_processing",
        parameters=[SESSION_ID],
        request=None,
        responses=_responses("Processing since now (or since the first report).", conflict="Not uploaded."),
    )
    def post(self, request: Request, session_id: int) -> Response:
        return super().post(request, session_id)


class SessionFinishedApi(SessionStepApi):
    """Transcription succeeded: the session completes and its minutes go into the ledger, once."""

    class InputSerializer(serializers.Serializer):
        duration_seconds = serializers.IntegerField(
            min_value=0, max_value=MAX_DURATION_SECONDS, help_text="The recording's length as transcribed: the usage."
        )
        provider_cost_usd = serializers.DecimalField(
            **COST, required=False, help_text="What the speech-to-text provider charged for this run."
        )

        class Meta:
            ref_name = "PipelineSessionFinishedInput"

    done = "Completed: usage recorded."

    def step(self, session, data):
        services.session_processing_finish(
            session, duration_seconds=data["duration_seconds"], provider_cost_usd=data.get("provider_cost_usd")
        )

    def replay(self, session, data):
        if session.status != CoachingSession.Status.COMPLETED:
            return None
        finished = _when(session.processing_finished_at)
        cost = data.get("provider_cost_usd")
        if session.duration_seconds != data["duration_seconds"] or cost not in (None, session.provider_cost_usd):
            raise Conflict(
                f"Session {session.pk} already finished at {finished} with {session.duration_seconds} s "
                f"and ${session.provider_cost_usd}; this report differs. Nothing changed."
            )
        return f"Already finished at {finished}: its usage was recorded once. Nothing changed."

    @extend_schema(
        operation_id="pipeline_session_finished",
        parameters=[SESSION_ID],
        request=InputSerializer,
        responses=_responses(
            "Completed; usage holds the ledger row written (on a replay: the one written the first time).",
            conflict="Not processing, or already finished with other values.",
        ),
    )
    def post(self, request: Request, session_id: int) -> Response:
        return super().post(request, session_id)


class SessionFailedApi(SessionStepApi):
    """Transcription failed: the session records when and why, and uses nothing."""

    class InputSerializer(serializers.Serializer):
        error = serializers.CharField(max_length=2000, help_text="What went wrong, as the coach may read it.")
        provider_cost_usd = serializers.DecimalField(**COST, required=False)

        class Meta:
            ref_name = "PipelineSessionFailedInput"

    done = "Failed: no usage recorded."

    def step(self, session, data):
        services.session_processing_finish(
            session, error=data["error"], provider_cost_usd=data.get("provider_cost_usd")
        )

    def replay(self, session, data):
        if session.status == CoachingSession.Status.FAILED and session.error_message == data["error"]:
            return f"Already failed at {_when(session.processing_finished_at)}: nothing changed."
        return None

    @extend_schema(
        operation_id="pipeline_session_failed",
        parameters=[SESSION_ID],
        request=InputSerializer,
        responses=_responses("Failed, with the error.", conflict="Not processing, or already ended otherwise."),
    )
    def post(self, request: Request, session_id: int) -> Response:
        return super().post(request, session_id)


class SessionDeletedApi(SessionStepApi):
    """The recording was deleted from storage: storage stops counting it; its usage stays in the ledger."""

    done = "Deleted: storage no longer counts it."

    def step(self, session, data):
        services.session_soft_delete(session)

    def replay(self, session, data):
        if session.deleted_at is not None:
            return f"Already deleted at {_when(session.deleted_at)}: nothing changed."
        return None

    @extend_schema(
        operation_id="pipeline_session_deleted",
        parameters=[SESSION_ID],
        request=None,
        responses=_responses("Deleted.", conflict="Still processing."),
    )
    def post(self, request: Request, session_id: int) -> Response:
        return super().post(request, session_id)
