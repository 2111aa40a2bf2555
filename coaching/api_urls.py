"""API routes owned by the coaching app (bulk operations)."""

app_name = "coaching"
urlpatterns: list = []
