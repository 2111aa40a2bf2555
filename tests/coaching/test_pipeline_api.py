"""The transcription pipeline's session API: a session's life, its usage counted once, and clear refusals."""

import datetime
import os
import subprocess
import sys
import threading
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from coaching.models import ApiUsage, CoachingSession, MonthlyUsage, UsageLog
from tests.conftest import ROOT
from tests.factories import ClientFactory

pytestmark = pytest.mark.django_db
TOKEN = "pipeline-test-token-0123456789-abcdefghijklmnop"
NOW = datetime.datetime(2026, 4, 16, 4, 0, tzinfo=datetime.UTC)  # 16 April 12:00 in Taipei
USAGE_URL = "/api/v1/usage/analytics"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def pipeline_token(settings):
    settings.PIPELINE_TOKEN = TOKEN


@pytest.fixture
def pipeline() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    return client


@pytest.fixture
def uploaded(pipeline, coach):
    """A session the pipeline created for the coach: 57.6 MB of audio, one of the coach's clients."""
    client = ClientFactory(coach=coach, name="陳美玲")
    response = pipeline.post(
        "/api/v1/sessions",
        {
            "coach_id": str(coach.pk),
            "client_id": client.pk,
            "title": "目標設定",
            "session_date": "2026-04-15",
            "audio_filename": "session-1.m4a",
            "audio_size_bytes": 57_616_000,
            "language": "cmn-Hant-TW",
            "stt_provider": "assemblyai",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def post(pipeline, session_id, step, body=None):
    return pipeline.post(f"/api/v1/sessions/{session_id}/{step}", body or {}, format="json")


def test_create_answers_the_pending_session(uploaded, coach):
    assert uploaded["status"] == "pending"
    assert uploaded["coach_id"] == str(coach.pk)
    assert (uploaded["title"], uploaded["audio_size_bytes"], uploaded["stt_provider"]) == (
        "目標設定",
        57_616_000,
        "assemblyai",
    )
    assert uploaded["replayed"] is False and uploaded["usage"] is None
    session = CoachingSession.objects.get(pk=uploaded["id"])
    assert (session.coach, session.client.name, session.created_at) == (coach, "陳美玲", NOW)


def test_a_finished_session_shows_its_minutes_in_the_ledger_the_counters_and_the_usage_api(
    pipeline, uploaded, coach, api_for
):
    sid = uploaded["id"]
    processing = post(pipeline, sid, "processing")
    assert processing.status_code == 200
    assert (processing.json()["status"], processing.json()["processing_started_at"]) == (
        "processing",
        "2026-04-16T04:00:00Z",
    )
    with time_machine.travel(NOW + datetime.timedelta(minutes=12), tick=False):
        finished = post(pipeline, sid, "finished", {"duration_seconds": 3601, "provider_cost_usd": "0.9603"})
    assert finished.status_code == 200
    body = finished.json()
    assert (body["status"], body["duration_seconds"], body["provider_cost_usd"]) == ("completed", 3601, "0.9603")
    assert body["usage"] == {
        "kind": "original",
        "seconds": 3601,
        "minutes": "60.02",
        "billable": True,
        "plan_code": "pro",
        "created_at": "2026-04-16T04:12:00Z",
    }
    log = UsageLog.objects.get(session_id=sid)
    assert (log.user, log.minutes, log.provider, log.provider_cost_usd, log.client.name) == (
        coach,
        Decimal("60.02"),
        "assemblyai",
        Decimal("0.9603"),
        "陳美玲",
    )
    counter = MonthlyUsage.objects.get(user=coach)
    assert (counter.period, counter.minutes, counter.sessions, counter.transcriptions) == (
        datetime.date(2026, 4, 1),
        Decimal("60.02"),
        1,
        1,
    )
    with time_machine.travel(NOW + datetime.timedelta(hours=1), tick=False):
        usage = api_for(coach).get(USAGE_URL, {"period": "month"}).json()
    assert (usage["minutes_used"], usage["sessions"], usage["transcriptions"]) == (60.02, 1, 1)
    assert usage["plan"]["used_minutes"] == 60.02
    assert usage["storage_used_mb"] == 54.9  # 57,616,000 bytes / 1,048,576
    # The pipeline is no coach: its three calls are not counted; the coach's one usage call is.
    assert list(ApiUsage.objects.values_list("user__email", "count")) == [("alice@example.com", 1)]


def test_finishing_twice_counts_the_usage_once(pipeline, uploaded, coach):
    sid = uploaded["id"]
    post(pipeline, sid, "processing")
    first = post(pipeline, sid, "finished", {"duration_seconds": 1800, "provider_cost_usd": "0.48"})
    again = post(pipeline, sid, "finished", {"duration_seconds": 1800, "provider_cost_usd": "0.4800"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["replayed"] is True
    assert again.json()["detail"] == (
        "Already finished at 2026-04-16T04:00:00Z: its usage was recorded once. Nothing changed."
    )
    assert again.json()["usage"]["minutes"] == "30.00"
    assert UsageLog.objects.filter(session_id=sid).count() == 1
    assert MonthlyUsage.objects.get(user=coach).minutes == Decimal("30.00")

    different = post(pipeline, sid, "finished", {"duration_seconds": 1799})
    assert different.status_code == 409
    assert different.json()["detail"] == (
        f"Session {sid} already finished at 2026-04-16T04:00:00Z with 1800 s and $0.4800; "
        "this report differs. Nothing changed."
    )
    assert MonthlyUsage.objects.get(user=coach).minutes == Decimal("30.00")


def test_a_failure_records_its_error_uses_nothing_and_is_final(pipeline, uploaded, coach):
    sid = uploaded["id"]
    post(pipeline, sid, "processing")
    failed = post(pipeline, sid, "failed", {"error": "Audio could not be decoded"})
    assert failed.status_code == 200
    assert (failed.json()["status"], failed.json()["error_message"]) == ("failed", "Audio could not be decoded")
    again = post(pipeline, sid, "failed", {"error": "Audio could not be decoded"})
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert not UsageLog.objects.filter(session_id=sid).exists()
    assert not MonthlyUsage.objects.filter(user=coach).exists()
    restart = post(pipeline, sid, "processing")
    assert restart.status_code == 409
    assert restart.json()["detail"] == f"Session {sid} is failed: only an uploaded session can start."
    finish = post(pipeline, sid, "finished", {"duration_seconds": 60})
    assert finish.status_code == 409
    assert finish.json()["detail"] == (
        f"Session {sid} is failed: a session must be processing before it can finish."
    )


def test_processing_twice_keeps_the_first_start(pipeline, uploaded):
    sid = uploaded["id"]
    post(pipeline, sid, "processing")
    with time_machine.travel(NOW + datetime.timedelta(minutes=3), tick=False):
        again = post(pipeline, sid, "processing")
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["processing_started_at"] == "2026-04-16T04:00:00Z"
    assert again.json()["detail"] == "Already processing since 2026-04-16T04:00:00Z: nothing changed."


def test_deleting_the_audio_frees_storage_and_keeps_the_usage(pipeline, uploaded, coach, api_for):
    sid = uploaded["id"]
    post(pipeline, sid, "processing")
    assert post(pipeline, sid, "deleted").json()["detail"] == (
        f"Session {sid} is processing: report it finished or failed first."
    )
    post(pipeline, sid, "finished", {"duration_seconds": 600})
    with time_machine.travel(NOW + datetime.timedelta(hours=1), tick=False):
        deleted = post(pipeline, sid, "deleted")
        again = post(pipeline, sid, "deleted")
        usage = api_for(coach).get(USAGE_URL, {"period": "month"}).json()
    assert (deleted.status_code, deleted.json()["deleted_at"]) == (200, "2026-04-16T05:00:00Z")
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert (usage["storage_used_mb"], usage["minutes_used"]) == (0.0, 10.0)
    assert post(pipeline, sid, "processing").json()["detail"] == f"Session {sid} was deleted: its audio is gone."


@pytest.mark.parametrize(
    ("step", "body", "message"),
    [
        ("finished", {"duration_seconds": -1}, "duration_seconds: Ensure this value is greater than or equal to 0."),
        ("finished", {}, "duration_seconds: This field is required."),
        ("finished", {"duration_seconds": 60, "provider_cost_usd": "-0.01"}, "provider_cost_usd: Ensure this value"),
        ("failed", {"error": ""}, "error: This field may not be blank."),
        ("failed", {"error": "bad\x00byte"}, "error: Null characters are not allowed."),
    ],
)
def test_bad_reports_are_400s_that_say_what_to_fix(pipeline, uploaded, step, body, message):
    post(pipeline, uploaded["id"], "processing")
    response = post(pipeline, uploaded["id"], step, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert CoachingSession.objects.get(pk=uploaded["id"]).status == "processing"


def test_unknown_sessions_and_early_finishes_are_refused(pipeline, uploaded):
    missing = post(pipeline, 999_999, "processing")
    assert (missing.status_code, missing.json()["detail"]) == (404, "No session has the id 999999.")
    huge = post(pipeline, 10**30, "finished", {"duration_seconds": 1})
    assert (huge.status_code, huge.json()["detail"]) == (404, f"No session has the id {10**30}.")
    early = post(pipeline, uploaded["id"], "finished", {"duration_seconds": 60})
    assert early.status_code == 409
    assert early.json()["detail"] == (
        f"Session {uploaded['id']} is pending: a session must be processing before it can finish."
    )


def test_a_session_for_another_coachs_client_or_no_coach_is_refused(pipeline, coach, other_coach):
    theirs = ClientFactory(coach=other_coach)
    base = {"coach_id": str(coach.pk), "title": "x", "session_date": "2026-04-15", "audio_size_bytes": 1}
    cases = [
        (
            {"client_id": theirs.pk},
            f"client_id: Client {theirs.pk} is another coach's client, not alice@example.com's.",
        ),
        ({"client_id": 424242}, "client_id: No client has the id 424242."),
        (
            {"coach_id": "00000000-0000-0000-0000-000000000000"},
            "coach_id: No active coach has the id 00000000-0000-0000-0000-000000000000.",
        ),
        ({"audio_size_bytes": -5}, "audio_size_bytes: Ensure this value is greater than or equal to 0."),
        ({"stt_provider": "whisper"}, 'stt_provider: "whisper" is not a valid choice.'),
        ({"fee_amount": "2000"}, "fee_currency: Required with fee_amount, e.g. TWD."),
    ]
    for change, message in cases:
        response = pipeline.post("/api/v1/sessions", {**base, **change}, format="json")
        assert (response.status_code, response.json()["detail"]) == (400, message)
    assert not CoachingSession.objects.exists()


def test_only_the_pipeline_token_is_accepted(settings, uploaded, coach):
    url = f"/api/v1/sessions/{uploaded['id']}/processing"
    anonymous = APIClient().post(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "Send the pipeline's service token: 'Authorization: Bearer <PIPELINE_TOKEN>'."
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="pipeline"'
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}x")
    assert (wrong.post(url).status_code, wrong.post(url).json()["detail"]) == (401, "Invalid pipeline token.")
    logged_in = APIClient()  # a coach's own login is no pipeline
    logged_in.force_login(coach)
    assert logged_in.post(url).status_code == 401
    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic YWxpY2VAZXhhbXBsZS5jb206cGFzc3dvcmQ=")
    assert basic.post(url).status_code == 401
    settings.PIPELINE_TOKEN = ""
    off = APIClient()
    off.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    response = off.post(url)
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "The session API is off: the server has no PIPELINE_TOKEN set.",
    )
    assert CoachingSession.objects.get(pk=uploaded["id"]).status == "pending"


def test_a_short_pipeline_token_stops_the_server_at_start_up():
    env = {**os.environ, "PIPELINE_TOKEN": "too-short"}
    result = subprocess.run(
        [sys.executable, "-c", "import coaching.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PIPELINE_TOKEN must be at least 32 characters with no surrounding spaces" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_two_finishes_racing_count_the_usage_once(coach):
    """Two workers report the same finish at the same moment: the row lock lets one write the usage."""
    from django.db import connection

    from coaching import services

    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers: PostgreSQL")
    session = services.session_create(coach=coach, title="Race", session_date=NOW.date(), audio_size_bytes=1)
    services.session_processing_start(session)
    barrier = threading.Barrier(2)
    codes = []

    def report():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        barrier.wait()
        try:
            codes.append(post(client, session.pk, "finished", {"duration_seconds": 900}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=report) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200, 200]
    assert UsageLog.objects.filter(session=session).count() == 1
    assert MonthlyUsage.objects.get(user=coach).minutes == Decimal("15.00")


def test_fuzzed_pipeline_reports_never_fail_the_server_or_the_schema(uploaded):
    """schemathesis, with the pipeline's token, on the session API's operations only."""
    import schemathesis
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from drf_spectacular.generators import SchemaGenerator
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from tests.test_schema import four_xx_has_a_message

    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = WSGIHandler()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, four_xx_has_a_message]
    checks.append(response_schema_conformance)
    tried = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not operation.path.startswith("/api/v1/sessions"):
                continue

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            def run(case):
                tried.append(case)
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    checks=checks,
                )

            run()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert len(tried) >= 5 * 5
