from django.apps import AppConfig


class CoachingConfig(AppConfig):
    name = "coaching"
    verbose_name = "Coaching"

    def ready(self) -> None:
        # Register the Celery tasks in every process, not only in workers: the bulk use case
        # queues its start task by name (coaching.bulk.operations.START_TASK) without importing it.
        from . import billing_signals, tasks  # noqa: F401
