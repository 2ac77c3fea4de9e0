"""How the pages show things: durations, sizes, money, metadata values, a bar chart of time saved
per day and a sparkline of a metadata series.

Pure code: the templates call these as filters, and the charts are geometry the template draws as SVG.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_valohai_reuse.cache.aggregates import Day

#: what a missing figure shows (an en dash)
NONE = "\u2013"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(count: int | None) -> str:
    if count is None:
        return NONE
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns first


def count(n: int) -> str:
    """A count with its thousands apart, as the cost is: 49,500."""
    return f"{n:,}"


def percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def money(amount: float | None) -> str:
    if amount is None:
        return NONE
    return f"{amount:,.2f}" if amount >= 1 or amount == 0 else f"{amount:.4f}"


def moment(when: datetime | None) -> str:
    if when is None:
        return NONE
    if when.tzinfo is None:  # SQLite keeps no zone; the cache writes UTC
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def short(text: str | None, length: int = 12) -> str:
    return "" if not text else text[:length]


#: a run id Airflow makes: its kind, then its logical date or start time
_RUN_ID = re.compile(r"\b([a-z_]+?)__\d{4}-(\d\d-\d\dT\d\d:\d\d:\d\d)[.\d]*(\+00:00)?")


def runs_short(text: str | None) -> str:
    """``text`` with each run id Airflow makes written short (``manual__2026-12-03T07:22:31.742793+00:00``
    as ``manual 12-03 07:22:31``, whole minutes without their seconds), for a graph's box, where the
    full id would be cut off at its date."""

    def words(m: re.Match[str]) -> str:
        when = m.group(2).replace("T", " ")
        return f"{m.group(1)} {when.removesuffix(':00')}"

    return _RUN_ID.sub(words, text or "")


def saved_cost(
    seconds_by_slug: Mapping[str | None, float], prices: Mapping[str, float]
) -> tuple[float, float]:
    """The money the saved seconds would have cost, and the seconds no price covers."""
    cost = unpriced = 0.0
    for slug, seconds in seconds_by_slug.items():
        price = prices.get(slug or "*", prices.get("*"))
        if price is None:
            unpriced += seconds
        else:
            cost += seconds / 3600 * price
    return cost, unpriced


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    saved_s: float
    reused: int
    ran: int


@dataclass(frozen=True)
class Chart:
    """Time saved per day as bars, in a ``width`` x ``height`` SVG with room for the axes."""

    bars: list[Bar]
    ticks: list[tuple[float, str]]  # y position, label
    labels: list[tuple[float, str]]  # x position, label
    width: int
    height: int
    unit: str


LEFT, BOTTOM, TOP = 56, 22, 10


def chart(days: list[Day], first: date, last: date, width: int = 760, height: int = 180) -> Chart:
    """Every day from ``first`` to ``last`` gets a bar (zero where ``days`` has none)."""
    by_day = {d.day: d for d in days}
    count = (last - first).days + 1
    peak = max((d.saved_s for d in days), default=0.0)
    scale, unit = (3600.0, "h") if peak >= 3 * 3600 else (60.0, "min") if peak >= 180 else (1.0, "s")
    top = _nice(peak / scale)
    plot_w, plot_h = width - LEFT - 8, height - BOTTOM - TOP
    step = plot_w / count
    bars = []
    for i in range(count):
        day = first + timedelta(days=i)
        found = by_day.get(day) or Day(day, 0.0, 0, 0)
        h = plot_h * (found.saved_s / scale) / top if top else 0.0
        bars.append(
            Bar(LEFT + i * step + step * 0.15, TOP + plot_h - h, step * 0.7, h, day, *_figures(found))
        )
    ticks = [(TOP + plot_h - plot_h * k / 4, f"{top * k / 4:g}") for k in range(5)]
    every = max(1, count // 8)
    labels = [(b.x + b.width / 2, b.day.strftime("%m-%d")) for i, b in enumerate(bars) if i % every == 0]
    return Chart(bars, ticks, labels, width, height, unit)


def _figures(day: Day) -> tuple[float, int, int]:
    return day.saved_s, day.reused, day.ran


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value:
            return float(factor * magnitude)
    return float(10 * magnitude)  # pragma: no cover - 10 x magnitude always covers it


def metric(value: Any, length: int = 80) -> str:
    """A metadata value or property in a few characters: numbers to 4 significant digits, text as it
    is, anything else as compact JSON; cut at ``length``."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int):
        text = f"{value:,}" if abs(value) >= 10_000 else str(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Spark:
    """A series as one SVG polyline in a ``width`` x ``height`` box; ``count`` points, ``low`` to ``high``."""

    points: str
    width: int
    height: int
    count: int
    low: float
    high: float
    last_x: float
    last_y: float


def sparkline(values: list[Any] | None, width: int = 140, height: int = 30) -> Spark | None:
    """The numeric values of a series as a line (None for fewer than two numbers); others are skipped."""
    numbers = [n for n in map(_number, values or []) if n is not None]
    if len(numbers) < 2:
        return None
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1.0
    pad = 2.0
    step = (width - 2 * pad) / (len(numbers) - 1)
    xy = [(pad + i * step, pad + (height - 2 * pad) * (1 - (n - low) / span)) for i, n in enumerate(numbers)]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return Spark(points, width, height, len(numbers), low, high, *xy[-1])


@dataclass(frozen=True)
class Metric:
    key: str
    value: Any
    spark: Spark | None


def metrics(last: Mapping[str, Any] | None, series: Mapping[str, list[Any]] | None) -> list[Metric]:
    """One row per metadata key, in key order: its last value and, where it has a series, its chart."""
    series = series or {}
    return [Metric(key, value, sparkline(series.get(key))) for key, value in sorted((last or {}).items())]


def summary(last: Mapping[str, Any] | None, keys: int = 4) -> str:
    """A node's metadata in one line (a run's table): its first keys with their last values."""
    items = sorted((last or {}).items())
    text = " \u00b7 ".join(f"{key} {metric(value, 24)}" for key, value in items[:keys])
    return text + (f" \u00b7 +{len(items) - keys} more" if len(items) > keys else "")


FILTERS = {
    "metric": metric,
    "summary": summary,
    "duration": duration,
    "size": size,
    "count": count,
    "percent": percent,
    "money": money,
    "moment": moment,
    "short": short,
    "runs_short": runs_short,
}
