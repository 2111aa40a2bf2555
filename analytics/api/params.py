"""The query parameters every analytics and export endpoint shares (a period and a user), and the error body."""

from django.core.validators import MaxValueValidator, MinValueValidator
from rest_framework import serializers

from analytics.periods import FIRST_DATE, LAST_DATE, PERIOD_CHOICES
from coaching.api_errors import ErrorSerializer

__all__ = ["ErrorSerializer", "PeriodQuerySerializer"]


class PeriodQuerySerializer(serializers.Serializer):
    """``period`` (a named period) or ``from``/``to`` (local dates, inclusive), and an optional ``user`` id.

    Subclasses set the help texts to say whose time zone cuts the days and what ``user`` does.
    """

    period_help = "A named period ending today (default 30d). Not with from/to."
    dates_help = "A local date YYYY-MM-DD, inclusive; from/to replace period."
    user_help = "A user's id (a UUID)."

    period = serializers.ChoiceField(
        choices=PERIOD_CHOICES,
        required=False,
        error_messages={"invalid_choice": f"Unknown period {{input!r}}: use one of {', '.join(PERIOD_CHOICES)}."},
    )
    user = serializers.UUIDField(
        required=False,
        error_messages={"invalid": "'user' must be a user id (a UUID); {value!r} is not one."},
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["period"].help_text = self.period_help
        fields["user"].help_text = self.user_help
        # "from" is a Python keyword, so the dates are added here rather than declared above.
        for name in ("from", "to"):
            fields[name] = serializers.DateField(
                required=False,
                help_text=f"{self.dates_help} Between {FIRST_DATE} and {LAST_DATE}.",
                validators=[
                    MinValueValidator(FIRST_DATE, f"'{name}' must be on or after {FIRST_DATE}."),
                    MaxValueValidator(LAST_DATE, f"'{name}' must be on or before {LAST_DATE}."),
                ],
            )
        return fields
