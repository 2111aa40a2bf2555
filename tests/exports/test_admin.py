"""The admin's exports: import-export on ledgers, sessions, payments and users; the usage-report action."""

import csv
import io
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from django.test import Client as DjangoClient

from coaching.models import ExportRecord, UsageLog
from exports.resources import CoachingSessionResource, PaymentResource, UsageLogResource, UserResource
from tests.exports.conftest import HOSTILE_CLIENT, set_plan
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user):
    client = DjangoClient()
    client.force_login(admin_user)
    return client


def export_post(resource, fmt_index: int) -> dict:
    prefix = resource.__name__.lower()
    return {"format": str(fmt_index), "resource": "0"} | {
        f"{prefix}_{name}": "on" for name in resource().get_export_order()
    }


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.content[:300]
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_usage_log_export_honours_the_changelist_filter_and_neutralises_text(admin_client, coach, history):
    url = "/admin/coaching/usagelog/export/?kind__exact=adjustment"
    assert admin_client.get(url).status_code == 200

    rows = csv_rows(admin_client.post(url, export_post(UsageLogResource, 0)))

    assert len(rows) == 1 == UsageLog.objects.filter(kind="adjustment").count()
    row = rows[0]
    assert row["client__name"] == "'" + HOSTILE_CLIENT
    assert row["session__title"] == "'@SUM(1+1)"
    assert row["seconds"] == "-120" and row["minutes"] == "-2.00"  # numbers untouched
    assert row["user__email"] == "alice@example.com"


def test_usage_log_export_as_xlsx_keeps_numbers_typed(admin_client, coach, history):
    url = "/admin/coaching/usagelog/export/?kind__exact=adjustment"
    response = admin_client.post(url, export_post(UsageLogResource, 1))

    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header, row = list(sheet.iter_rows(values_only=True))
    values = dict(zip(header, row, strict=True))
    assert values["seconds"] == -120 and Decimal(str(values["minutes"])) == Decimal("-2")
    # The text as typed, a string cell marked quotePrefix: Excel shows it and never runs it.
    assert values["client__name"] == HOSTILE_CLIENT
    cells = dict(zip(header, next(sheet.iter_rows(min_row=2)), strict=True))
    assert cells["client__name"].data_type == "s" and cells["client__name"].quotePrefix is True
    assert cells["user__email"].quotePrefix is False
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_session_export_follows_search(admin_client, coach, history):
    url = "/admin/coaching/coachingsession/export/?q=目標"
    rows = csv_rows(admin_client.post(url, export_post(CoachingSessionResource, 0)))
    assert [r["title"] for r in rows] == ["目標設定"]
    assert rows[0]["client__name"] == "王小明" and rows[0]["fee_amount"] == "2000.00"


def test_payment_and_user_exports(admin_client, coach):
    PaymentFactory(user=coach, amount=Decimal("899.00"), failure_reason="-card declined", provider_reference="TX1")
    payments = csv_rows(admin_client.post("/admin/coaching/payment/export/", export_post(PaymentResource, 0)))
    assert payments[0]["provider_reference"] == "TX1" and payments[0]["amount"] == "899.00"
    assert payments[0]["failure_reason"] == "'-card declined"

    UserFactory(email="eve@example.com", name="+Eve")
    users = csv_rows(admin_client.post("/admin/coaching/user/export/?q=eve", export_post(UserResource, 0)))
    assert [(u["email"], u["name"]) for u in users] == [("eve@example.com", "'+Eve")]
    assert "password" not in users[0]


def test_export_needs_view_permission(coach, history):
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    client = DjangoClient()
    client.force_login(clerk)
    assert client.get("/admin/coaching/usagelog/export/").status_code == 403


def action_post(users, **form) -> dict:
    return {"action": "export_usage_report", "_selected_action": [str(u.pk) for u in users]} | form


def test_usage_report_action_asks_for_a_period_then_downloads_one_users_file(admin_client, coach, history):
    page = admin_client.post("/admin/coaching/user/", action_post([coach]))
    assert page.status_code == 200
    assert b'name="start"' in page.content and b'name="format"' in page.content
    assert ExportRecord.objects.count() == 0  # nothing exported until the form is sent

    response = admin_client.post(
        "/admin/coaching/user/",
        action_post([coach], apply="1", start="2026-04-01", end="2026-04-30", format="csv"),
    )

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(
        'attachment; filename="usage-history_alice_2026-04-01_2026-04-30.csv"'
    )
    body = b"".join(response.streaming_content)
    assert len(list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))) == 5
    record = ExportRecord.objects.get()
    assert (record.status, record.requested_by.email, record.subject) == ("succeeded", "dana@example.com", coach)


def test_usage_report_action_zips_several_users_and_lists_those_their_plan_excludes(
    admin_client, coach, other_coach, history
):
    set_plan(other_coach, "free")
    response = admin_client.post(
        "/admin/coaching/user/",
        action_post([coach, other_coach], apply="1", start="2026-04-01", end="2026-04-30", format="xlsx"),
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert sorted(zf.namelist()) == ["SKIPPED.txt", "usage-history_alice-王_2026-04-01_2026-04-30.xlsx"]
        assert (
            zf.read("SKIPPED.txt")
            .decode()
            .startswith("bob@example.com: This user's plan, Free (free), does not include XLSX exports")
        )
        sheet = openpyxl.load_workbook(io.BytesIO(zf.read("usage-history_alice-王_2026-04-01_2026-04-30.xlsx"))).active
        assert sheet.max_row == 5
    statuses = sorted(ExportRecord.objects.values_list("subject__email", "status"))
    assert statuses == [("alice@example.com", "succeeded"), ("bob@example.com", "failed")]


def test_usage_report_action_rejects_a_backwards_period(admin_client, coach):
    response = admin_client.post(
        "/admin/coaching/user/",
        action_post([coach], apply="1", start="2026-04-30", end="2026-04-01", format="csv"),
    )
    assert response.status_code == 200
    assert b"&#x27;To&#x27; must be on or after &#x27;From&#x27;." in response.content
    assert ExportRecord.objects.count() == 0


def test_usage_report_action_that_fails_midway_leaves_no_export_running(
    admin_client, coach, other_coach, history, monkeypatch
):
    from exports import admin_actions

    real = admin_actions.usage_export

    def export_then_fail(requester, **kwargs):
        if kwargs["user_id"] == other_coach.pk:
            raise RuntimeError("renderer crashed")
        return real(requester, **kwargs)

    monkeypatch.setattr(admin_actions, "usage_export", export_then_fail)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        admin_client.post(
            "/admin/coaching/user/",
            action_post([coach, other_coach], apply="1", start="2026-04-01", end="2026-04-30", format="csv"),
        )

    record = ExportRecord.objects.get()  # alice's CSV, produced before bob's failed
    assert (record.subject, record.status, record.rows, record.bytes) == (coach, "failed", 0, 0)
    assert record.error.startswith("Interrupted: the download stopped after 0 bytes")


def test_usage_report_action_that_fails_while_zipping_finishes_every_record(
    admin_client, coach, other_coach, history, monkeypatch
):
    from exports import csv_export
    from exports.csv_export import CsvChunks

    real = csv_export.usage_history_csv

    def failing_rows():
        yield from ()
        raise RuntimeError("database went away")

    def csv_for(subject, period, **kwargs):
        return CsvChunks(failing_rows()) if subject == coach else real(subject, period, **kwargs)

    monkeypatch.setattr(csv_export, "usage_history_csv", csv_for)
    with pytest.raises(RuntimeError, match="database went away"):
        admin_client.post(
            "/admin/coaching/user/",
            action_post([coach, other_coach], apply="1", start="2026-04-01", end="2026-04-30", format="csv"),
        )

    records = {r.subject: r for r in ExportRecord.objects.all()}
    assert (records[coach].status, records[coach].error) == ("failed", "RuntimeError: database went away")
    assert records[other_coach].status == "failed"  # never written into the ZIP: closed, not left running
    assert records[other_coach].error.startswith("Interrupted: the download stopped after 0 bytes (0 rows)")
