"""NATS-Bench size configurations: parsing with errors that name the position, and enumeration.

Dong et al., "NATS-Bench: Benchmarking NAS Algorithms for Architecture Topology and Size", TPAMI 2021. The
size space keeps one cell, the best of the topology space (NAS-Bench-201's), and searches the widths of
the network's five layers, each one of 8, 16, ..., 64 channels; a configuration is written as the benchmark
writes it, the five widths joined by ':' (e.g. "8:16:24:32:40").
"""

import itertools
from functools import lru_cache

CHANNEL_CHOICES = (8, 16, 24, 32, 40, 48, 56, 64)
LAYERS = 5
FIXED_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
"""The cell every configuration uses (NATS-Bench's choice: the best NAS-Bench-201 cell)."""
EXAMPLE_ARCH = "8:16:24:32:40"
_CHOICES_TEXT = ", ".join(map(str, CHANNEL_CHOICES))
_ECHO_LIMIT = 100


def parse(arch: object) -> tuple[int, ...]:
    """The five widths of `C1:C2:C3:C4:C5` (surrounding whitespace ignored) or of a list/tuple of five
    integers; a ValueError naming the offending position and what was expected otherwise."""
    if isinstance(arch, str):
        return _widths_from_string(arch)
    if isinstance(arch, (list, tuple)):
        return _checked_widths(arch)
    raise ValueError(
        f"cannot read a NATS-Bench size configuration from {type(arch).__name__} {_shorten(arch)}: expected "
        f"{LAYERS} channel numbers joined by ':', like {EXAMPLE_ARCH!r}"
    )


def arch_string(widths: tuple[int, ...]) -> str:
    return ":".join(map(str, widths))


def all_archs() -> list[str]:
    """Every configuration, in `itertools.product(CHANNEL_CHOICES, repeat=5)` order (the first layer varies
    slowest): "8:8:8:8:8" first, "64:64:64:64:64" last."""
    return list(_all_arch_strings())


@lru_cache(maxsize=1)
def _all_arch_strings() -> tuple[str, ...]:
    return tuple(arch_string(widths) for widths in itertools.product(CHANNEL_CHOICES, repeat=LAYERS))


def _widths_from_string(text: str) -> tuple[int, ...]:
    start = len(text) - len(text.lstrip())
    tokens = text.strip().split(":")
    if len(tokens) != LAYERS:
        raise _string_error(
            text, f"{len(tokens)} channel number(s); expected {LAYERS} joined by ':', like {EXAMPLE_ARCH!r}"
        )
    widths = []
    column = start + 1
    for layer, token in enumerate(tokens, start=1):
        where = f"width {layer} of {LAYERS} ({_shorten(token)} at column {column})"
        if not token.isascii() or not token.isdigit():
            raise _string_error(text, f"{where} is not a number; expected one of {_CHOICES_TEXT}")
        if int(token) not in CHANNEL_CHOICES:
            raise _string_error(text, f"{where} is not a candidate width; expected one of {_CHOICES_TEXT}")
        widths.append(int(token))
        column += len(token) + 1
    return tuple(widths)


def _checked_widths(widths: list[object] | tuple[object, ...]) -> tuple[int, ...]:
    prefix = f"invalid NATS-Bench size configuration {_shorten(widths)}"
    if len(widths) != LAYERS:
        raise ValueError(f"{prefix}: {len(widths)} item(s); expected {LAYERS} channel numbers, one per layer")
    checked = []
    for layer, width in enumerate(widths):
        if isinstance(width, bool) or not isinstance(width, int) or width not in CHANNEL_CHOICES:
            raise ValueError(f"{prefix}: item {layer} ({_shorten(width)}) is not one of {_CHOICES_TEXT}")
        checked.append(width)
    return tuple(checked)


def _string_error(text: str, problem: str) -> ValueError:
    return ValueError(f"invalid NATS-Bench size configuration {_shorten(text)}: {problem}")


def _shorten(value: object) -> str:
    """`repr(value)`, cut short so a huge input cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."
