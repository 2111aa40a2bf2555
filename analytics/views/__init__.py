"""Server-rendered pages: parse, scope, call the analytics functions, render."""

from .billing import billing_overview
from .usage import usage_dashboard

__all__ = ["billing_overview", "usage_dashboard"]
