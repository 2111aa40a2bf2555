"""GET /api/v1/billing-analytics/summary: permissions, parameters, shape, and the hand-made history."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pytest
import time_machine
from drf_spectacular.generators import SchemaGenerator

from tests.analytics import billing_world as world
from tests.analytics.billing_world import NOW

URL = "/api/v1/billing-analytics/summary"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return world.build()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_anonymous_is_refused(api_for):
    response = api_for(None).get(URL)
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_a_coach_gets_403(api_for, coach):
    response = api_for(coach).get(URL)
    assert response.status_code == 403
    assert response.json()["detail"]


@pytest.mark.parametrize("who", ["staff", "admin_user"])
def test_staff_and_admins_get_the_summary(api_for, request, who):
    response = api_for(request.getfixturevalue(who)).get(URL)
    assert response.status_code == 200
    assert response.json()["period"]["key"] == "30d"


def test_march_in_taipei(api_for, staff, people, frozen):
    body = api_for(staff).get(URL, MARCH).json()
    assert body["new_signups"] == 2
    assert body["churned_users"] == 2
    assert body["churn_rate"] == 0.4
    assert (body["total_revenue"], body["currency"], body["revenue_by_currency"]) == (
        "1798.00",
        "TWD",
        {"TWD": "1798.00"},
    )
    assert (body["mrr"], body["mrr_past_due"], body["arpu"]) == ("2733.79", "899.00", "683.45")
    assert (body["paying_users_at_start"], body["paying_users"], body["active_subscriptions"]) == (5, 4, 4)
    assert body["period"] == {
        "key": "custom",
        "start": "2026-03-01T00:00:00+08:00",
        "end": "2026-04-01T00:00:00+08:00",
        "first_day": "2026-03-01",
        "last_day": "2026-03-31",
        "timezone": "Asia/Taipei",
        "close": "2026-04-01T00:00:00+08:00",
    }
    assert body["series"] == [
        {
            "label": "2026-03",
            "start": "2026-03-01T00:00:00+08:00",
            "end": "2026-04-01T00:00:00+08:00",
            "new_signups": 2,
            "churned_users": 2,
            "revenue": "1798.00",
            "mrr": "2733.79",
        }
    ]
    assert [(row["plan"], row["paying_users"], row["mrr"]) for row in body["by_plan"]] == [
        ("student", 1, "299.00"),
        ("pro", 3, "2434.79"),
        ("coaching_school", 0, "0.00"),
    ]
    assert [row["country"] for row in body["by_country"]] == ["TW", "HK", "JP"]
    assert body["user_profile"] is None
    for metric in ("new_signups", "churned_users", "churn_rate", "total_revenue", "mrr", "arpu", "paying_users"):
        assert body["definitions"][metric]


def test_the_viewers_time_zone_cuts_the_period(api_for, people, frozen):
    # The same dates seen from Los Angeles (UTC-7 in March): a different slice of time.
    viewer = world.user(
        "la-staff@example.com", joined=world.tpe(2024, 1, 1), is_staff=True, timezone="America/Los_Angeles"
    )
    body = api_for(viewer).get(URL, MARCH).json()
    assert body["period"]["start"] == "2026-03-01T00:00:00-08:00"
    assert body["period"]["timezone"] == "America/Los_Angeles"
    # C's end (1 Mar 00:00 Taipei) is 28 Feb in Los Angeles, H's (1 Apr 00:00 Taipei) is 31 Mar there:
    # C is no longer in March's opening base, and H is March churn and no longer paying at its close.
    assert (body["paying_users_at_start"], body["paying_users"], body["mrr"]) == (4, 3, "2434.79")
    assert body["churned_users"] == 2  # A and H (in Taipei: A and C)


def test_user_profile(api_for, staff, people, frozen):
    body = api_for(staff).get(URL, {**MARCH, "user": str(people["e"].pk)}).json()
    assert body["user_profile"] == {
        "id": str(people["e"].pk),
        "timezone": "Asia/Hong_Kong",
        "country": "HK",
        "plan": "pro",
        "subscription_status": "past_due",
        "paying": True,
        "lifetime_revenue": {"TWD": "899.00"},
    }
    assert body["new_signups"] == 2  # the platform numbers are unchanged by ?user


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"period": "fortnight"}, "period", "Unknown period 'fortnight'"),
        ({"from": "2026-13-01"}, "from", "Date has wrong format"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "period", "is before 'from'"),
        ({"period": "30d", "from": "2026-03-01"}, "period", "not both"),
        ({"from": "0001-01-01"}, "from", "'from' must be on or after 2000-01-01"),
        ({"to": "9999-12-31"}, "to", "'to' must be on or before 2100-12-31"),
        ({"user": "not-a-uuid"}, "user", "must be a user id"),
    ],
)
def test_bad_parameters_are_400_with_a_message(api_for, staff, query, field, message):
    response = api_for(staff).get(URL, query)
    assert response.status_code == 400
    body = response.json()
    assert message in body["detail"]
    assert field in body["errors"]


def test_an_unknown_user_is_400(api_for, staff):
    missing = uuid.uuid4()
    response = api_for(staff).get(URL, {"user": str(missing)})
    assert response.status_code == 400
    assert response.json()["detail"] == f"user: No user has the id {missing}: check it, or leave it out."


def test_the_openapi_schema_describes_the_endpoint():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/billing-analytics/summary"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"period", "from", "to", "user"}
    assert {"200", "400", "403"} <= set(operation["responses"])
    body = schema["components"]["schemas"]["BillingSummary"]
    assert {"new_signups", "churned_users", "total_revenue", "user_profile", "definitions", "series"} <= set(
        body["properties"]
    )


def test_march_movements_churn_retention_and_the_previous_period(api_for, staff, people, frozen):
    body = api_for(staff).get(URL, MARCH).json()
    assert body["mrr_movements"] == {
        "label": "custom",
        "start": "2026-03-01T00:00:00+08:00",
        "end": "2026-04-01T00:00:00+08:00",
        "mrr_start": "3331.79",
        "new": "899.00",
        "expansion": "0.00",
        "contraction": "-299.00",
        "churned": "-1198.00",
        "reactivation": "0.00",
        "mrr_end": "2733.79",
    }
    assert [row["label"] for row in body["mrr_movements_series"]] == ["2026-03"]
    assert body["mrr_movements_series"][0]["mrr_end"] == body["mrr"]
    assert body["churn"] == {"lost": 2, "base": 5, "rate": 0.4, "small_base": True}
    # The customers of 1 March paid 3331.79; at the close B 899, D 636.79…, E 899, H 299 = 2733.79.
    assert body["net_revenue_retention"] == {"mrr_start": "3331.79", "mrr_retained": "2733.79", "rate": 0.8205}
    assert body["previous_period"]["first_day"] == "2026-01-29"
    assert body["previous"]["mrr"] == "3331.79" and body["previous"]["new_signups"] == 2
    assert body["changes"]["mrr"] == "-598.00"
    assert body["changes"]["churned_users"] == 2
    assert body["definitions"]["mrr_movements"]


def test_the_movements_csv_parses_back_and_adds_up(api_for, staff, people, frozen):
    response = api_for(staff).get("/api/v1/billing-analytics/movements.csv", {"from": "2026-02-01", "to": "2026-04-15"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="mrr-movements-2026-02-01-2026-04-15.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["month"] for row in rows] == ["2026-02", "2026-03", "2026-04"]
    for row in rows:
        parts = sum(Decimal(row[part]) for part in ("new", "expansion", "contraction", "churned", "reactivation"))
        assert Decimal(row["mrr_start"]) + parts == Decimal(row["mrr_end"])
    assert rows[1]["start"] == "2026-03-01T00:00:00+08:00"
    assert (rows[1]["mrr_start"], rows[1]["churned"], rows[1]["mrr_end"]) == ("3331.79", "-1198.00", "2733.79")
    assert (rows[2]["churned"], rows[2]["mrr_end"]) == ("-299.00", "2434.79")  # H left at 1 Apr 00:00
    summary = api_for(staff).get(URL, {"from": "2026-02-01", "to": "2026-04-15"}).json()
    assert [r["mrr_end"] for r in summary["mrr_movements_series"]] == [row["mrr_end"] for row in rows]


def test_the_movements_csv_is_for_staff_and_checks_its_period(api_for, coach, staff):
    assert api_for(coach).get("/api/v1/billing-analytics/movements.csv").status_code == 403
    response = api_for(staff).get("/api/v1/billing-analytics/movements.csv", {"period": "fortnight"})
    assert response.status_code == 400
    assert "Unknown period 'fortnight'" in response.json()["detail"]
