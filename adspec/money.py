"""Money: USD amounts as stored (rounded to a millionth) and as shown."""

from __future__ import annotations


def usd(x: float) -> float:
    """Money as stored: rounded to a millionth of a dollar."""
    return round(float(x) + 0.0, 6)


def fmt_usd(x: float) -> str:
    x = float(x)
    if x == 0:
        return "$0.00"
    if abs(x) < 0.01:
        return f"${x:.4f}"
    return f"${x:.2f}" if abs(x) >= 1 else f"${x:.3f}"
