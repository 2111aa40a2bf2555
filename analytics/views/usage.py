from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def usage_dashboard(request):
    return render(request, "analytics/usage_dashboard.html", {})
