"""Aggregates PostgreSQL computes for the read pages, so their cost does not grow with the rows in Python."""

from __future__ import annotations

from typing import Any

from django.db.models import Aggregate, F, FloatField, Func


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: linear interpolation between closest ranks (numpy's default; p50 = median)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def seconds_between(start: str, end: str) -> Func:
    """end - start in seconds, as a float expression."""
    return Func(F(end) - F(start), template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField())
