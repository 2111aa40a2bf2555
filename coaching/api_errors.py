"""One error shape for the API: every 4xx carries a message that says what to fix."""

from rest_framework import serializers
from rest_framework.views import exception_handler as drf_exception_handler


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx the API answers, as the endpoints declare it in the OpenAPI schema."""

    detail = serializers.CharField(help_text="What went wrong and what to fix.")
    errors = serializers.DictField(required=False, help_text="Messages by parameter or field, when there are any.")

    class Meta:
        ref_name = "ApiError"


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = _first_message(value)
            return message if field in ("detail", "non_field_errors") else f"{field}: {message}"
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        response.data = {"detail": str(data["detail"])}
    else:
        response.data = {"detail": _first_message(data), "errors": data}
    return response
