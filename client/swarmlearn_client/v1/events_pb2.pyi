import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_TASK_STARTED: _ClassVar[EventType]
    EVENT_TYPE_TASK_COMPLETED: _ClassVar[EventType]
    EVENT_TYPE_PROMPT_GENERATED: _ClassVar[EventType]
    EVENT_TYPE_RESPONSE_RECEIVED: _ClassVar[EventType]
    EVENT_TYPE_PERFORMANCE_UPDATE: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_TASK_STARTED: EventType
EVENT_TYPE_TASK_COMPLETED: EventType
EVENT_TYPE_PROMPT_GENERATED: EventType
EVENT_TYPE_RESPONSE_RECEIVED: EventType
EVENT_TYPE_PERFORMANCE_UPDATE: EventType

class PerformanceMetrics(_message.Message):
    __slots__ = ("latency_ms", "tokens_per_second", "memory_usage_mb", "cpu_usage_percent", "success_rate")
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_MB_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    latency_ms: float
    tokens_per_second: float
    memory_usage_mb: float
    cpu_usage_percent: float
    success_rate: float
    def __init__(self, latency_ms: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., memory_usage_mb: _Optional[float] = ..., cpu_usage_percent: _Optional[float] = ..., success_rate: _Optional[float] = ...) -> None: ...

class PromptData(_message.Message):
    __slots__ = ("prompt_text", "prompt_tokens", "response_tokens", "quality_score")
    PROMPT_TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    prompt_text: str
    prompt_tokens: int
    response_tokens: int
    quality_score: float
    def __init__(self, prompt_text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., response_tokens: _Optional[int] = ..., quality_score: _Optional[float] = ...) -> None: ...

class StreamEvent(_message.Message):
    __slots__ = ("event_id", "timestamp", "agent_id", "event_type", "performance_metrics", "prompt_data", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_DATA_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    timestamp: _timestamp_pb2.Timestamp
    agent_id: str
    event_type: EventType
    performance_metrics: PerformanceMetrics
    prompt_data: PromptData
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., performance_metrics: _Optional[_Union[PerformanceMetrics, _Mapping]] = ..., prompt_data: _Optional[_Union[PromptData, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[StreamEvent]
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[StreamEvent, _Mapping]]] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("index", "event_id", "field", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    field: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestAck(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicates", "rejected", "durable_sequence")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    durable_sequence: int
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ..., durable_sequence: _Optional[int] = ...) -> None: ...
