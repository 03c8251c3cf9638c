import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from swarmlearn_client.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("agent_id", "horizon", "targets", "coverage")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    horizon: int
    targets: _containers.RepeatedScalarFieldContainer[str]
    coverage: float
    def __init__(self, agent_id: _Optional[str] = ..., horizon: _Optional[int] = ..., targets: _Optional[_Iterable[str]] = ..., coverage: _Optional[float] = ...) -> None: ...

class ForecastPoint(_message.Message):
    __slots__ = ("step", "value", "lower", "upper")
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    step: int
    value: float
    lower: float
    upper: float
    def __init__(self, step: _Optional[int] = ..., value: _Optional[float] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class TargetForecast(_message.Message):
    __slots__ = ("target", "points", "model_kind", "model_version", "running_mae")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNNING_MAE_FIELD_NUMBER: _ClassVar[int]
    target: str
    points: _containers.RepeatedCompositeFieldContainer[ForecastPoint]
    model_kind: str
    model_version: str
    running_mae: float
    def __init__(self, target: _Optional[str] = ..., points: _Optional[_Iterable[_Union[ForecastPoint, _Mapping]]] = ..., model_kind: _Optional[str] = ..., model_version: _Optional[str] = ..., running_mae: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("agent_id", "forecasts", "as_of_sequence", "durable_sequence")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    forecasts: _containers.RepeatedCompositeFieldContainer[TargetForecast]
    as_of_sequence: int
    durable_sequence: int
    def __init__(self, agent_id: _Optional[str] = ..., forecasts: _Optional[_Iterable[_Union[TargetForecast, _Mapping]]] = ..., as_of_sequence: _Optional[int] = ..., durable_sequence: _Optional[int] = ...) -> None: ...

class GetAgentStatsRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class BaselineStats(_message.Message):
    __slots__ = ("target", "model_kind", "running_mae", "scored", "best", "weight")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_KIND_FIELD_NUMBER: _ClassVar[int]
    RUNNING_MAE_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    target: str
    model_kind: str
    running_mae: float
    scored: int
    best: bool
    weight: float
    def __init__(self, target: _Optional[str] = ..., model_kind: _Optional[str] = ..., running_mae: _Optional[float] = ..., scored: _Optional[int] = ..., best: _Optional[bool] = ..., weight: _Optional[float] = ...) -> None: ...

class DriftState(_message.Message):
    __slots__ = ("target", "drift_count", "last_drift_time")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DRIFT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_DRIFT_TIME_FIELD_NUMBER: _ClassVar[int]
    target: str
    drift_count: int
    last_drift_time: _timestamp_pb2.Timestamp
    def __init__(self, target: _Optional[str] = ..., drift_count: _Optional[int] = ..., last_drift_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgentStats(_message.Message):
    __slots__ = ("agent_id", "event_count", "first_event_time", "last_event_time", "mean_metrics", "prompt_event_count", "features", "baselines", "drift", "online_sequence", "answered_mae", "interval_coverage")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class AnsweredMaeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class IntervalCoverageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    MEAN_METRICS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    BASELINES_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    ONLINE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_MAE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    event_count: int
    first_event_time: _timestamp_pb2.Timestamp
    last_event_time: _timestamp_pb2.Timestamp
    mean_metrics: _events_pb2.PerformanceMetrics
    prompt_event_count: int
    features: _containers.ScalarMap[str, float]
    baselines: _containers.RepeatedCompositeFieldContainer[BaselineStats]
    drift: _containers.RepeatedCompositeFieldContainer[DriftState]
    online_sequence: int
    answered_mae: _containers.ScalarMap[str, float]
    interval_coverage: _containers.ScalarMap[str, float]
    def __init__(self, agent_id: _Optional[str] = ..., event_count: _Optional[int] = ..., first_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mean_metrics: _Optional[_Union[_events_pb2.PerformanceMetrics, _Mapping]] = ..., prompt_event_count: _Optional[int] = ..., features: _Optional[_Mapping[str, float]] = ..., baselines: _Optional[_Iterable[_Union[BaselineStats, _Mapping]]] = ..., drift: _Optional[_Iterable[_Union[DriftState, _Mapping]]] = ..., online_sequence: _Optional[int] = ..., answered_mae: _Optional[_Mapping[str, float]] = ..., interval_coverage: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "next_page_token")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentStats]
    next_page_token: str
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentStats, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
