from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render


@staff_member_required
def billing_overview(request):
    return render(request, "analytics/billing_overview.html", {})
