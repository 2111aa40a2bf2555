"""Hypothesis settings shared by the property tests that write to a database (roll-ups agree with raw rows)."""

from hypothesis import HealthCheck, Phase, settings

# Moderate: the suite runs on a shared machine within CI's budget. No shrinking (slow on a database).
on_a_database = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
