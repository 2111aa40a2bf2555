"""Billing analytics from the subscription history: one function per number.

Modules, by what they hold:

* ``history`` — the scope (who counts), the shared rules, and sums of the history's changes;
* ``at_instant`` — balances at an instant: MRR and its past-due part, paying users, subscriptions, ARPU;
* ``movements`` — what changed in a period: MRR movements, customer churn, net revenue retention;
* ``revenue`` — money paid and refunded, and sign-ups, in a period;
* ``summary`` — every number of a period for the page, the API and the CSV;
* ``charts`` — chart specs (``analytics.charts`` shape) built from the summary.

The names below are the public one-number functions, so ``billing.mrr(scope.events, at=t)`` reads
the same everywhere.
"""

from .at_instant import active_subscriptions, arpu, arpu_of, mrr, mrr_past_due, paying_users
from .history import BillingScope, billable, billing_scope, cents, default_currency, money, opening, window
from .movements import (
    churn_rate_of,
    churned_users,
    customer_churn,
    movements_series,
    mrr_movements,
    net_revenue_retention,
)
from .revenue import lifetime_revenue, net_revenue, new_signups, total_revenue

__all__ = [
    "BillingScope",
    "active_subscriptions",
    "arpu",
    "arpu_of",
    "billable",
    "billing_scope",
    "cents",
    "churn_rate_of",
    "churned_users",
    "customer_churn",
    "default_currency",
    "lifetime_revenue",
    "money",
    "movements_series",
    "mrr",
    "mrr_movements",
    "mrr_past_due",
    "net_revenue",
    "net_revenue_retention",
    "new_signups",
    "opening",
    "paying_users",
    "total_revenue",
    "window",
]
