"""Numbers and money as the PDF report prints them, in the reader's locale.

``{% load report_format %}`` then ``{{ value|number }}`` (as many decimals as the value has),
``{{ value|number:2 }}``, ``{{ amount|money:"TWD" }}``. The template is rendered inside
``translation.override(<reader's language>)``; the separators are CLDR's for that language
(Django's own zh-Hant data groups by four with no separator, which is not how Taiwan writes
numbers: 1,234,567.50).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils import numberformat, translation
from django.utils.formats import get_format

register = template.Library()

# Language -> (thousands separator, decimal separator), grouping by three (CLDR).
SEPARATORS = {"en": (",", "."), "zh-hant": (",", "."), "de": (".", ","), "fr": ("\u202f", ",")}
# Digits after the decimal point a currency is written with. TWD: whole dollars, or two places
# when an amount has cents; everything else not listed: two (never the ledger's four).
CURRENCY_DECIMALS = {"USD": 2, "EUR": 2, "TWD": 0, "JPY": 0, "KRW": 0}
EMPTY = "—"


def _separators() -> tuple[str, str]:
    language = (translation.get_language() or "en").lower()
    if language in SEPARATORS:
        return SEPARATORS[language]
    return get_format("THOUSAND_SEPARATOR"), get_format("DECIMAL_SEPARATOR")


@register.filter
def number(value, places=None) -> str:
    """``value`` with thousands grouped in the reader's locale; ``places`` decimals (rounded half up) if given."""
    if value is None or value == "":
        return EMPTY
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if places is not None:
        amount = amount.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)
    thousands, decimal = _separators()
    return numberformat.format(
        amount,
        decimal,
        decimal_pos=None if places is None else int(places),
        grouping=3,
        thousand_sep=thousands,
        force_grouping=True,
    )


def currency_places(amount: Decimal, currency: str) -> int:
    places = CURRENCY_DECIMALS.get(currency.upper(), 2)
    if places == 0 and currency.upper() == "TWD" and amount != amount.to_integral_value():
        return 2
    return places


@register.filter
def money(amount, currency: str) -> str:
    """``TWD 2,500`` / ``USD 1.15``: the currency's own decimals, grouped in the reader's locale."""
    if amount is None or amount == "":
        return EMPTY
    value = Decimal(str(amount))
    return f"{currency} {number(value, currency_places(value, currency))}"


@register.filter
def amount(value, currency: str) -> str:
    """Like ``money`` without the currency code (for a column headed with it)."""
    if value is None or value == "":
        return EMPTY
    value = Decimal(str(value))
    return number(value, currency_places(value, currency))


@register.filter
def css_string(value) -> str:
    """``value`` as the inside of a double-quoted CSS string (for ``@page`` margin boxes): every
    character that could end the string or the style sheet is written as a CSS hex escape."""
    out = []
    for char in str(value):
        if char.isalnum() or char in " .,:;-_()/@·–+#":
            out.append(char)
        else:
            out.append(f"\\{ord(char):06x}")
    return "".join(out)
