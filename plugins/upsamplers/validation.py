"""Parameter checks shared by the standard upsamplers and architectures.

Every factory checks its arguments before building anything and raises a ValueError
naming the upsampler, the parameter and what is valid: segbench builds every model
before training, so these become clean bad-input messages instead of shape errors later.
"""

from __future__ import annotations


def check_scale_factor(upsampler: str, scale_factor) -> None:
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
        raise ValueError(f"{upsampler}: scale_factor must be a positive integer, got {scale_factor!r}")


def check_int(upsampler: str, param: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{upsampler}: {param} must be {kind}, got {value!r}")


def check_odd(upsampler: str, param: str, value) -> None:
    """An odd positive kernel size: the only sizes a 'same' convolution can centre."""
    check_int(upsampler, param, value)
    if value % 2 == 0:
        raise ValueError(f"{upsampler}: {param} must be odd (1, 3, 5, ...), got {value!r}")


def check_bool(upsampler: str, param: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{upsampler}: {param} must be true or false, got {value!r}")


def check_choice(upsampler: str, param: str, value, choices) -> None:
    if isinstance(value, bool) or value not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{upsampler}: {param} must be one of {valid}, got {value!r}")
