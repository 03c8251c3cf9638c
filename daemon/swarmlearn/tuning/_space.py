"""Search spaces: the parameters a search varies, derived from the config dataclasses, and their grid.

A parameter is named after a field of the model kind's config (``hidden_size``, ``dropout``, ...) or
of ``TrainingConfig`` (``learning_rate``, ``window``, ...); its type (int or float) is the field's.
The default space of a kind is every field declared ``searched`` (``swarmlearn.models.SearchRange``):

- LSTM: ``hidden_size`` {64, 128, 256, 512}, ``num_layers`` 1..3, ``dropout`` [0.1, 0.5];
- TCN: ``channels`` {32, 64, 128} (every block's width), ``levels`` 2..7, ``kernel_size`` 2..5, ``dropout``;
- N-BEATS: ``num_blocks`` 1..4, ``layer_width`` {64, 128, 256, 512};
- ensemble: none of its own (its members' sizes come from its config);
- every kind: ``learning_rate`` [1e-4, 1e-2] on a log scale and ``window`` {25, 50, 100}.

A user's space is a JSON list of ``{"name", "type": "range", "bounds": [low, high], "log": false}``
or ``{"name", "type": "choice", "values": [...]}``; every mistake (unknown name, min > max, an empty
choice, a value of the wrong type) is an ``InvalidArgument`` naming the parameter. A trial's
parameters become a training job's ``config_json`` (``config_for``): model fields at the top level,
training fields under ``"training"``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swarmlearn.errors import InvalidArgument
from swarmlearn.models import MODEL_KINDS, SearchRange

TRAINING_FIELDS = ("window", "learning_rate", "weight_decay", "batch_size")
"""``TrainingConfig`` fields a search may vary (the others describe the data or the run, not the model)."""

_FIELD = "search_space_json"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Literal["int", "float"]
    """The config field's type."""
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    values: tuple[Any, ...] = ()
    """A choice's values; empty for a range."""

    @property
    def is_choice(self) -> bool:
        return bool(self.values)

    def grid(self, points: int) -> tuple[Any, ...]:
        """The values a grid takes: a choice's values; a range's ``points`` evenly spaced values
        (geometrically on a log scale), or every integer where there are no more than ``points``."""
        if self.is_choice:
            return self.values
        if self.type == "int" and self.high - self.low + 1 <= points:
            return tuple(range(int(self.low), int(self.high) + 1))
        if points == 1:
            return (self._cast(math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2),)
        fractions = [i / (points - 1) for i in range(points)]
        if self.log:
            values = [self.low * (self.high / self.low) ** f for f in fractions]
        else:
            values = [self.low + (self.high - self.low) * f for f in fractions]
        values[-1] = self.high  # exactly, whatever the rounding
        return tuple(dict.fromkeys(self._cast(v) for v in values))

    def _cast(self, value: float) -> int | float:
        return round(value) if self.type == "int" else float(value)

    def to_json(self) -> dict[str, Any]:
        if self.is_choice:
            return {"name": self.name, "type": "choice", "values": list(self.values)}
        return {"name": self.name, "type": "range", "bounds": [self.low, self.high], "log": self.log}


@dataclass(frozen=True)
class SearchSpace:
    kind: str
    """The model kind whose config the parameters belong to."""
    parameters: tuple[Parameter, ...]

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def grid(self, points: int) -> list[dict[str, Any]]:
        """Every combination of the parameters' grid values, in a fixed order."""
        names = [p.name for p in self.parameters]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(p.grid(points) for p in self))]

    def grid_size(self, points: int) -> int:
        return math.prod(len(p.grid(points)) for p in self.parameters)

    def to_json(self) -> str:
        return json.dumps([p.to_json() for p in self.parameters])


def config_for(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters as a training job's config: model fields, and training ones under ``training``."""
    model_fields = {f.name: f for f in dataclasses.fields(MODEL_KINDS[kind][0])}
    config: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for name, value in params.items():
        if name in model_fields:
            default = model_fields[name].default
            config[name] = [value] * len(default) if isinstance(default, tuple) else value
        else:
            training[name] = value
    if training:
        config["training"] = training
    return config


def _fields(kind: str) -> dict[str, dataclasses.Field[Any]]:
    """The searchable fields of ``kind``'s config and of ``TrainingConfig``, by name."""
    from swarmlearn.training import TrainingConfig

    fields = {f.name: f for f in dataclasses.fields(MODEL_KINDS[kind][0])}
    training = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    fields.update({name: training[name] for name in TRAINING_FIELDS})
    return fields


def _field_type(field: dataclasses.Field[Any]) -> Literal["int", "float"]:
    annotation = str(field.type)
    if annotation in ("int", "tuple[int, ...]"):
        return "int"
    if annotation == "float":
        return "float"
    raise InvalidArgument(_FIELD, f"{field.name} is not a number and cannot be searched")


def default_space(kind: str) -> SearchSpace:
    """Every field of ``kind``'s config and of the training settings declared ``searched``."""
    if kind not in MODEL_KINDS:
        raise InvalidArgument("model_kind", f"one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    parameters = []
    for name, field in _fields(kind).items():
        search: SearchRange | None = field.metadata.get("search")
        if search is not None:
            parameters.append(
                _checked(Parameter(name, _field_type(field), search.low, search.high, search.log, tuple(search.values)))
            )
    return SearchSpace(kind, tuple(parameters))


def parse_space(kind: str, text: str) -> SearchSpace:
    """A user's space from JSON (see the module's docstring); empty text means the default space."""
    if not text.strip():
        return default_space(kind)
    default_space(kind)  # checks the kind
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(_FIELD, f"not JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(_FIELD, "must be a non-empty JSON list of parameters")
    fields = _fields(kind)
    parameters: list[Parameter] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidArgument(_FIELD, f"each parameter is an object with a name, got {json.dumps(item)[:100]}")
        name = item["name"]
        if name not in fields:
            raise InvalidArgument(
                _FIELD, f"unknown parameter {name[:64]!r} for {kind}; known: {', '.join(sorted(fields))}"
            )
        if any(p.name == name for p in parameters):
            raise InvalidArgument(_FIELD, f"parameter {name!r} given twice")
        parameters.append(_checked(_parse_one(item, _field_type(fields[name]))))
    space = SearchSpace(kind, tuple(parameters))
    _check_values(space)
    return space


def _check_values(space: SearchSpace) -> None:
    """Build the configs at every parameter's extremes, so a value the config refuses (a dropout of 1,
    a window of 1) is refused now rather than failing trials later."""
    from swarmlearn.models import config_from_dict
    from swarmlearn.training import TrainingConfig

    for p in space:
        for value in p.values or (p._cast(p.low), p._cast(p.high)):
            config = config_for(space.kind, {p.name: value})
            try:
                TrainingConfig(**config.pop("training", {}))
                config_from_dict(space.kind, config)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(_FIELD, f"parameter {p.name!r}: {value} is not allowed: {exc}") from None


def _parse_one(item: Mapping[str, Any], kind: Literal["int", "float"]) -> Parameter:
    name, type_ = item["name"], item.get("type", "choice" if "values" in item else "range")
    unknown = set(item) - {"name", "type", "bounds", "log", "values"}
    if unknown:
        raise InvalidArgument(_FIELD, f"parameter {name!r}: unknown key(s) {sorted(unknown)}")
    if type_ == "choice":
        values = item.get("values")
        if not isinstance(values, list) or not values:
            raise InvalidArgument(_FIELD, f"parameter {name!r}: a choice needs a non-empty list of values")
        return Parameter(name, kind, values=tuple(values))
    if type_ != "range":
        raise InvalidArgument(_FIELD, f"parameter {name!r}: type must be range or choice, got {type_!r}")
    bounds = item.get("bounds")
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)):
        raise InvalidArgument(_FIELD, f"parameter {name!r}: bounds must be [low, high] numbers")
    log = item.get("log", False)
    if not isinstance(log, bool):
        raise InvalidArgument(_FIELD, f"parameter {name!r}: log must be true or false")
    return Parameter(name, kind, float(bounds[0]), float(bounds[1]), log)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checked(parameter: Parameter) -> Parameter:
    name = parameter.name
    if parameter.is_choice:
        if any(not _is_number(v) or (parameter.type == "int" and v != int(v)) for v in parameter.values):
            raise InvalidArgument(_FIELD, f"parameter {name!r}: every value must be a {parameter.type}")
        if len(set(parameter.values)) != len(parameter.values):
            raise InvalidArgument(_FIELD, f"parameter {name!r}: values repeat")
        cast = int if parameter.type == "int" else float
        return dataclasses.replace(parameter, values=tuple(cast(v) for v in parameter.values))
    if parameter.low > parameter.high:
        raise InvalidArgument(_FIELD, f"parameter {name!r}: min {parameter.low:g} > max {parameter.high:g}")
    if parameter.low == parameter.high:
        raise InvalidArgument(_FIELD, f"parameter {name!r}: min = max; fix it in the config instead")
    if parameter.log and parameter.low <= 0:
        raise InvalidArgument(_FIELD, f"parameter {name!r}: a log scale needs a positive min")
    if parameter.type == "int" and (parameter.low != int(parameter.low) or parameter.high != int(parameter.high)):
        raise InvalidArgument(_FIELD, f"parameter {name!r}: integer bounds expected")
    return parameter


def ax_parameters(space: SearchSpace) -> Sequence[Any]:
    """The space as Ax ``RangeParameterConfig`` / ``ChoiceParameterConfig``s."""
    from ax import ChoiceParameterConfig, RangeParameterConfig

    out: list[Any] = []
    for p in space:
        if p.is_choice:
            values: Any = list(p.values)
            ordered = len(p.values) > 1
            out.append(ChoiceParameterConfig(name=p.name, values=values, parameter_type=p.type, is_ordered=ordered))
        else:
            bounds = (int(p.low), int(p.high)) if p.type == "int" else (p.low, p.high)
            out.append(
                RangeParameterConfig(
                    name=p.name, bounds=bounds, parameter_type=p.type, scaling="log" if p.log else "linear"
                )
            )
    return out
