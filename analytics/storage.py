"""Storage balances: what the coaches keep on disk at given instants, in one pass over the rows.

A balance, not activity: at ``cutoff`` it is the audio of sessions uploaded before ``cutoff``
and not deleted before it, plus export files written before ``cutoff`` and not deleted before
it. Several cutoffs (a period's end and its previous period's end) share one scan, which
matters for platform totals where every session ever uploaded is read.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q, QuerySet, Sum

from coaching.models import CoachingSession, ExportRecord, User

from .ledger import ONE_DP, scoped

BYTES_PER_MB = Decimal(1_048_576)


def storage_bytes(coaches: QuerySet[User], cutoffs: Sequence[datetime.datetime]) -> list[int]:
    """Bytes kept at each cutoff (audio not deleted + export files not deleted), in the order given."""
    if not cutoffs:
        return []
    latest = max(cutoffs)
    audio = scoped(CoachingSession.objects.filter(created_at__lt=latest), "coach", coaches).aggregate(
        **{
            f"b{i}": Sum(
                "audio_size_bytes",
                filter=Q(created_at__lt=cutoff) & (Q(deleted_at__isnull=True) | Q(deleted_at__gte=cutoff)),
            )
            for i, cutoff in enumerate(cutoffs)
        }
    )
    files = (
        scoped(ExportRecord.objects.filter(created_at__lt=latest), "subject", coaches)
        .exclude(file_path="")
        .aggregate(
            **{
                f"b{i}": Sum(
                    "bytes",
                    filter=Q(created_at__lt=cutoff)
                    & (Q(file_deleted_at__isnull=True) | Q(file_deleted_at__gte=cutoff)),
                )
                for i, cutoff in enumerate(cutoffs)
            }
        )
    )
    return [(audio[f"b{i}"] or 0) + (files[f"b{i}"] or 0) for i in range(len(cutoffs))]


def as_mb(size: int) -> Decimal:
    """Bytes / 1,048,576, one decimal, rounded half up."""
    return (Decimal(size) / BYTES_PER_MB).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def balance_cutoff(end: datetime.datetime, now: datetime.datetime) -> datetime.datetime:
    """The instant a period's balance is read at: its end, or just after ``now`` while it runs."""
    return min(end, now + datetime.timedelta(microseconds=1))
