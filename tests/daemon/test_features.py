"""Per-event features, checked against values computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from swarmlearn.events import Event, EventType
from swarmlearn.features import FEATURE_NAMES, event_features


def at(when: datetime, **fields: object) -> Event:
    base = Event("a", "e", when.timestamp(), EventType.TASK_COMPLETED, 120.0, 40.0, 512.0, 35.0, 0.9)
    return base._replace(**fields)


def named(event: Event) -> dict[str, float]:
    values = event_features(event)
    assert len(values) == len(FEATURE_NAMES) == 13
    return dict(zip(FEATURE_NAMES, values, strict=True))


def test_hour_22_on_a_sunday() -> None:
    features = named(at(datetime(2026, 11, 29, 22, 41, 5, tzinfo=UTC)))  # a Sunday: weekday 6
    assert features["hour_sin"] == pytest.approx(math.sin(2 * math.pi * 22 / 24))
    assert features["hour_cos"] == pytest.approx(math.cos(2 * math.pi * 22 / 24))
    assert features["weekday_sin"] == pytest.approx(math.sin(2 * math.pi * 6 / 7))
    assert features["weekday_cos"] == pytest.approx(math.cos(2 * math.pi * 6 / 7))
    # Not the seed's sin(hour) * 2π / 24.
    assert features["hour_sin"] != pytest.approx(math.sin(22) * 2 * math.pi / 24)


def test_midnight_monday_and_the_circle_closes() -> None:
    midnight = named(at(datetime(2026, 11, 30, 0, 0, tzinfo=UTC)))  # a Monday
    assert (midnight["hour_sin"], midnight["hour_cos"]) == pytest.approx((0.0, 1.0))
    assert (midnight["weekday_sin"], midnight["weekday_cos"]) == pytest.approx((0.0, 1.0))
    late = named(at(datetime(2026, 11, 29, 23, 0, tzinfo=UTC)))
    # 23:00 is one hour from 00:00 on the circle, as 01:00 is.
    early = named(at(datetime(2026, 11, 30, 1, 0, tzinfo=UTC)))
    assert math.dist((late["hour_sin"], late["hour_cos"]), (0.0, 1.0)) == pytest.approx(
        math.dist((early["hour_sin"], early["hour_cos"]), (0.0, 1.0))
    )


def test_performance_and_prompt_features() -> None:
    when = datetime(2026, 1, 1, 12, tzinfo=UTC)
    plain = named(at(when))
    assert [plain[n] for n in FEATURE_NAMES[:5]] == [120.0, 40.0, 512.0, 35.0, 0.9]
    assert [plain[n] for n in FEATURE_NAMES[5:9]] == [0.0, 0.0, 0.0, 0.0]
    prompt = named(at(when, prompt_text="hi", prompt_tokens=40, response_tokens=100, quality_score=0.75))
    assert [prompt[n] for n in FEATURE_NAMES[5:9]] == [40.0, 100.0, 0.75, 2.5]
    empty_prompt = named(at(when, prompt_text="", prompt_tokens=0, response_tokens=7, quality_score=0.5))
    assert empty_prompt["response_prompt_ratio"] == 0.0
