"""The ASGI entry point: what ``make run`` serves with uvicorn, so the pages' event streams stay open
without holding a worker thread each (``analytics.views.live``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coaching.settings")
application = get_asgi_application()
