"""Hyperband's brackets (Li et al. 2018, "Hyperband: a novel bandit-based approach to hyperparameter
optimization", algorithm 1): the only search logic written here, since Ax has no Hyperband strategy.

With a largest budget ``R`` (epochs per configuration) and a halving rate ``eta``, ``s_max =
floor(log_eta R)``. Bracket ``s`` (from ``s_max`` down to 0) starts ``n = ceil((s_max + 1) / (s + 1) ·
eta^s)`` configurations at ``r = R · eta^-s`` epochs; each rung ``i`` evaluates ``floor(n · eta^-i)``
of them at ``r · eta^i`` epochs and keeps the best ``1/eta`` for the next. Every bracket's last rung is
at ``R``, so results there compare across brackets. Bracket ``s_max`` explores most, bracket 0 is
plain random search at the full budget.

``plan`` caps the configurations at ``max_configs``: brackets are taken in order until the cap, and
the last one taken is shrunk to what is left (its rungs in proportion).
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Rung(NamedTuple):
    configs: int
    """Configurations evaluated at this rung."""
    epochs: int
    """Each one's budget after this rung: total epochs trained, counting earlier rungs."""


def plan(max_epochs: int, eta: int = 3, max_configs: int | None = None) -> list[list[Rung]]:
    """The brackets, each a list of rungs, for a largest budget of ``max_epochs`` epochs."""
    if max_epochs < 1 or eta < 2:
        raise ValueError("max_epochs must be at least 1 and eta at least 2")
    s_max = _floor_log(max_epochs, eta)
    left = math.inf if max_configs is None else max_configs
    brackets = []
    for s in range(s_max, -1, -1):
        n = min(math.ceil((s_max + 1) / (s + 1) * eta**s), left)
        if n < 1:
            break
        left -= n
        brackets.append(
            [Rung(max(1, math.floor(n * eta**-i)), max(1, round(max_epochs * eta ** (i - s)))) for i in range(s + 1)]
        )
    return brackets


def _floor_log(value: int, base: int) -> int:
    """``floor(log_base value)`` in integers (floating logs misround exact powers)."""
    power = 0
    while base ** (power + 1) <= value:
        power += 1
    return power


def total_epochs(brackets: list[list[Rung]]) -> int:
    """Epochs the plan trains, when a survivor continues from its weights at the previous rung."""
    total = 0
    for rungs in brackets:
        previous = 0
        for rung in rungs:
            total += rung.configs * (rung.epochs - previous)
            previous = rung.epochs
    return total
