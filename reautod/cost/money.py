"""Money as integer micro-dollars (1 USD = 1,000,000 micros), never floats.

Prices are kept as `Decimal` micro-dollars per unit because they are fractional (Twilio's
$0.014/min is 14,000 micros, ElevenLabs' $0.05 per 1K characters is 50 micros a character, a local
GPU at $0.90/h is 250 micros a second, $0.0025/min is 2,500 micros, $0.0079 per SMS is 7,900).
An amount is `quantity x unit price`, rounded to a whole micro-dollar exactly once, half up
(`to_micros`). Where a running total is written in several ledger rows, each row holds the
difference of two rounded running totals, so the rows always add up to the total rounded once.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from reautod.errors import ValidationError

MICROS_PER_DOLLAR = 1_000_000
_ONE = Decimal(1)


def to_micros(value: Decimal) -> int:
    """A (fractional) micro-dollar amount rounded half up to a whole micro-dollar."""
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def dollars_to_micros(dollars: str | Decimal) -> Decimal:
    """'0.014' (USD) -> Decimal('14000') micros, exactly; refuses floats and junk."""
    if isinstance(dollars, float):
        raise ValidationError("money must be given as a decimal string, never a float")
    try:
        value = Decimal(dollars)
    except (InvalidOperation, TypeError) as err:
        raise ValidationError(f"{dollars!r} is not a decimal amount") from err
    if not value.is_finite():
        raise ValidationError(f"{dollars!r} is not a finite amount")
    return value * MICROS_PER_DOLLAR


def parse_dollars(text: str) -> int:
    """An operator's '$12.50' or '12.5' as whole micro-dollars (sub-micro amounts refused)."""
    micros = dollars_to_micros(text.strip().removeprefix("$").replace(",", ""))
    if micros != micros.to_integral_value():
        raise ValidationError(f"{text!r} has more than six decimal places")
    return int(micros)


def format_micros(micros: int, places: int = 4) -> str:
    """12_345_678 -> '$12.3457' (display only)."""
    quantum = Decimal(1).scaleb(-places)
    sign = "-" if micros < 0 else ""
    amount = (Decimal(abs(micros)) / MICROS_PER_DOLLAR).quantize(quantum, rounding=ROUND_HALF_UP)
    return f"{sign}${amount}"
