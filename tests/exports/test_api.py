"""Who may export what: permissions, plans, formats and dates, each refusal a 4xx with a message and a record."""

import csv
import io
import uuid

import pytest
from rest_framework.throttling import ScopedRateThrottle

from coaching.models import ExportRecord
from tests.exports.conftest import APRIL, set_plan

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage-history/export"


def rows_of(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def last_record() -> ExportRecord:
    return ExportRecord.objects.order_by("-id").first()


def test_anonymous_gets_403_and_nothing_is_recorded(api_for, history):
    response = api_for(None).get(URL, {"format": "csv"})
    assert response.status_code == 403
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert ExportRecord.objects.count() == 0


def test_a_coach_may_name_themselves(api_for, coach, history):
    response = api_for(coach).get(URL, {"format": "csv", "user": str(coach.pk), **APRIL})
    assert response.status_code == 200
    assert len(rows_of(response)) == 5


def test_a_coach_cannot_export_another_coachs_history(api_for, coach, other_coach, history):
    response = api_for(other_coach).get(URL, {"format": "csv", "user": str(coach.pk), **APRIL})

    assert response.status_code == 403
    assert response.json() == {
        "detail": "You can export only your own usage history: only staff can export another user's."
    }
    record = last_record()
    assert (record.status, record.requested_by, record.subject) == ("failed", other_coach, other_coach)
    assert record.error.startswith("You can export only your own usage history")
    assert (record.rows, record.bytes) == (0, 0)


def test_staff_export_anyones_history_and_the_record_says_who_asked(api_for, staff, coach, history):
    response = api_for(staff).get(URL, {"format": "csv", "user": str(coach.pk), **APRIL})

    assert response.status_code == 200
    rows = rows_of(response)
    assert len(rows) == 5 and rows[1][4] == "王小明"
    record = ExportRecord.objects.get(pk=response["X-Export-Record"])
    assert (record.requested_by, record.subject, record.status) == (staff, coach, "succeeded")


def test_staff_naming_an_unknown_user_get_404(api_for, staff):
    missing = uuid.uuid4()
    response = api_for(staff).get(URL, {"format": "csv", "user": str(missing)})
    assert response.status_code == 404
    assert response.json()["detail"] == f"No user with id {missing}."
    assert last_record().error == f"No user with id {missing}."


def test_a_user_that_is_not_a_uuid_is_a_400(api_for, staff):
    response = api_for(staff).get(URL, {"format": "csv", "user": "42"})
    assert response.status_code == 400
    assert response.json()["detail"] == "user: 'user' must be a user id (a UUID); '42' is not one."


def test_unknown_format_is_a_400_naming_the_allowed_ones(api_for, coach):
    response = api_for(coach).get(URL, {"format": "docx"})

    assert response.status_code == 400
    assert response.json()["detail"] == "format: Unknown format 'docx': use one of csv, pdf, xlsx."
    record = last_record()
    assert (record.format, record.status, record.subject) == ("docx", "failed", coach)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "from: Date has wrong format."),
        ({"from": "2026-04-10", "to": "2026-04-01"}, "period: 'to' (2026-04-01) is before 'from' (2026-04-10)"),
        ({"period": "fortnight"}, "period: Unknown period 'fortnight'"),
        ({"period": "7d", "from": "2026-04-01"}, "period: Give either 'period' or 'from'/'to', not both."),
    ],
)
def test_bad_dates_are_a_400_with_what_to_fix(api_for, coach, history, params, message):
    response = api_for(coach).get(URL, {"format": "csv", **params})

    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    record = last_record()
    assert record.status == "failed" and record.error


@pytest.mark.parametrize(
    ("plan", "fmt", "allowed"),
    [
        ("free", "pdf", "CSV. PDF is included in Student, Pro, Coaching School."),
        ("free", "xlsx", "CSV. XLSX is included in Pro, Coaching School."),
        ("student", "xlsx", "CSV, PDF. XLSX is included in Pro, Coaching School."),
    ],
)
def test_the_plan_decides_the_formats(api_for, coach, history, plan, fmt, allowed):
    set_plan(coach, plan)
    name = {"free": "Free", "student": "Student"}[plan]

    response = api_for(coach).get(URL, {"format": fmt, **APRIL})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"Your plan, {name} ({plan}), does not include {fmt.upper()} exports: it allows {allowed}"
    )
    record = last_record()
    assert (record.format, record.status, record.subject) == (fmt, "failed", coach)
    assert (str(record.period_start), record.period_end) == ("None", None)


CONTENT_TYPES = {
    "csv": "text/csv",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAGIC = {"csv": "\ufeff".encode(), "pdf": b"%PDF-", "xlsx": b"PK\x03\x04"}


@pytest.mark.parametrize(("plan", "fmt"), [("free", "csv"), ("student", "pdf"), ("coaching_school", "xlsx")])
def test_formats_each_plan_includes_download(api_for, coach, history, plan, fmt):
    set_plan(coach, plan)
    response = api_for(coach).get(URL, {"format": fmt, **APRIL})
    assert response.status_code == 200
    assert response["Content-Type"].startswith(CONTENT_TYPES[fmt])
    body = b"".join(response.streaming_content)
    assert body.startswith(MAGIC[fmt])  # the file is really that format, not just a 200
    assert last_record().status == "succeeded"


def test_for_staff_the_subjects_plan_decides(api_for, staff, coach, history):
    set_plan(coach, "free")
    response = api_for(staff).get(URL, {"format": "pdf", "user": str(coach.pk)})
    assert response.status_code == 403
    assert response.json()["detail"].startswith("This user's plan, Free (free), does not include PDF exports")
    assert (last_record().requested_by, last_record().subject) == (staff, coach)


def test_exports_are_throttled_by_the_exports_scope(api_for, coach, history, monkeypatch):
    from django.core.cache import cache

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"exports": "2/hour"})
    client = api_for(coach)
    for _ in range(2):
        assert client.get(URL, {"format": "csv"}).status_code == 200
    response = client.get(URL, {"format": "csv"})
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"].lower()
    cache.clear()


def test_the_endpoint_is_in_the_openapi_schema_with_its_file_types():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/usage-history/export"]["get"]

    assert operation["operationId"] == "usage_history_export"
    names = {p["name"] for p in operation["parameters"]}
    assert {"format", "from", "to", "period", "user", "bom"} <= names
    fmt = next(p for p in operation["parameters"] if p["name"] == "format")
    assert fmt["schema"]["enum"] == ["csv", "pdf", "xlsx"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {
        "text/csv",
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    assert all(c["schema"] == {"type": "string", "format": "binary"} for c in content.values())
    assert {"400", "403", "404", "429"} <= set(operation["responses"])
