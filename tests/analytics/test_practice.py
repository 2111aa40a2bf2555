"""The coach's practice metrics (``analytics.practice``): sessions, hours and income per currency."""

import ast
import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.periods import parse_period
from analytics.practice import practice_by_client, practice_by_month, practice_totals
from tests.factories import ClientFactory, CoachingSessionFactory

ANALYTICS = Path(__file__).resolve().parents[2] / "analytics"


@pytest.mark.django_db
def test_practice_counts_sessions_by_session_date_and_sums_income_per_currency(coach, other_coach):
    wang, lee = ClientFactory(coach=coach, name="王小明"), ClientFactory(coach=coach, name="李")
    for day, client, seconds, fee, currency in [
        (datetime.date(2026, 3, 31), wang, 3600, "2000", "TWD"),
        (datetime.date(2026, 4, 1), wang, 5400, "2000", "TWD"),
        (datetime.date(2026, 4, 30), lee, 1800, "50", "USD"),
        (datetime.date(2026, 5, 1), lee, 1800, "50", "USD"),  # after the period
    ]:
        CoachingSessionFactory(
            coach=coach,
            client=client,
            session_date=day,
            duration_seconds=seconds,
            fee_amount=Decimal(fee),
            fee_currency=currency,
        )
    CoachingSessionFactory(
        coach=other_coach, session_date=datetime.date(2026, 4, 2), fee_amount=Decimal("9"), fee_currency="TWD"
    )
    period = parse_period({"from": "2026-03-01", "to": "2026-04-30"}, tz=coach.tzinfo)

    totals = practice_totals(coach, period)
    assert (totals.sessions, totals.hours) == (3, Decimal("3.0"))
    assert totals.income == {"TWD": Decimal("4000.00"), "USD": Decimal("50.00")}
    assert [(m.label, m.sessions, m.hours, m.income) for m in practice_by_month(coach, period)] == [
        ("2026-03", 1, Decimal("1.0"), {"TWD": Decimal("2000.00")}),
        ("2026-04", 2, Decimal("2.0"), {"TWD": Decimal("2000.00"), "USD": Decimal("50.00")}),
    ]
    lines, total = practice_by_client(coach, period, limit=1)
    assert total == 2 and [(c.label, c.sessions) for c in lines] == [("王小明", 2)]


def test_analytics_never_imports_exports():
    for path in ANALYTICS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(name.split(".")[0] == "exports" for name in names), path
