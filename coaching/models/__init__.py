"""The domain records (see shared DOMAIN.md). One module per area."""

from .billing import BillingBucket, Payment, Subscription, SubscriptionEvent
from .bulk import BulkOperation, BulkOperationResult
from .exports import ExportRecord
from .plans import Plan
from .rollups import CoachUsageDay, PlatformUsageBucket
from .sessions import Client, CoachingSession
from .usage import ApiUsage, MonthlyUsage, MonthlyUsageArchive, UsageLog, minutes_from_seconds
from .users import User

__all__ = [
    "ApiUsage",
    "BillingBucket",
    "BulkOperation",
    "BulkOperationResult",
    "Client",
    "CoachUsageDay",
    "CoachingSession",
    "ExportRecord",
    "MonthlyUsage",
    "MonthlyUsageArchive",
    "Payment",
    "Plan",
    "PlatformUsageBucket",
    "Subscription",
    "SubscriptionEvent",
    "UsageLog",
    "User",
    "minutes_from_seconds",
]
