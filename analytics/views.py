"""Server-rendered pages. Parse, scope, call the analytics functions, render."""

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def usage_dashboard(request):
    # Placeholder frame until the dashboard issue fills it in.
    return render(request, "analytics/usage_dashboard.html", {})


@staff_member_required
def billing_overview(request):
    return render(request, "analytics/billing_overview.html", {})
