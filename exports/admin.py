"""Exports add their admin pieces to the coaching admins: layers import downwards only.

``coaching/admin.py`` knows nothing of exports. Django imports this module (admin autodiscovery)
after ``coaching.admin`` (``exports`` comes later in ``INSTALLED_APPS``), so each admin below is
already registered: it is re-registered as a subclass with the export button (import-export, CSV and
XLSX, honouring the changelist's filters) and, on the user list, "Export selected users' usage report".
"""

from __future__ import annotations

from django.contrib import admin

from coaching.models import CoachingSession, Payment, UsageLog, User

from .admin_actions import SafeExportAdminMixin, export_usage_report
from .resources import CoachingSessionResource, PaymentResource, UsageLogResource, UserResource


def with_exports(model, resource, *, actions: tuple = (), site: admin.AdminSite = admin.site) -> None:
    """Re-register ``model``'s admin with the export mixin and ``resource``; ``actions`` come first."""
    base = type(site.get_model_admin(model))
    attrs = {"resource_classes": [resource], "__module__": __name__}
    if actions:
        attrs["actions"] = [*actions, *(base.actions or [])]
    extended = type(base.__name__, (SafeExportAdminMixin, base), attrs)
    site.unregister(model)
    site.register(model, extended)


with_exports(User, UserResource, actions=(export_usage_report,))
with_exports(CoachingSession, CoachingSessionResource)
with_exports(UsageLog, UsageLogResource)
with_exports(Payment, PaymentResource)
