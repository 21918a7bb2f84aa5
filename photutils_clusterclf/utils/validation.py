"""Parameter validators shared by the package: one message per kind of mistake.

Each raises `ValueError` naming the parameter, what it was given and what
is accepted, and returns the value in its canonical type.
"""

import math
import numbers

__all__ = ["check_choice", "check_fraction", "check_integer", "check_positive"]


def check_integer(name, value, *, minimum=1, maximum=None, allow_none=False):
    """Return ``value`` as an `int`, or raise `ValueError` if it is not an integer in range.

    Booleans are refused (``True`` is an `int` to Python, not a count);
    integral floats such as ``3.0`` are accepted.
    """
    if value is None and allow_none:
        return None
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and float(value).is_integer()
    )
    if ok:
        ok = value >= minimum and (maximum is None or value <= maximum)
    if not ok:
        span = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer {span}{none}, got {value!r}")
    return int(value)


def check_fraction(name, value, *, closed=False):
    """Return ``value`` as a `float` in [0, 1) (or [0, 1] with ``closed``), else `ValueError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = 0 <= value <= 1 if closed else 0 <= value < 1
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value!r}")
    return float(value)


def check_positive(name, value):
    """Return ``value`` as a `float` if it is a finite number > 0, else `ValueError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else `ValueError` listing them."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not one of {accepted}")
    return value
