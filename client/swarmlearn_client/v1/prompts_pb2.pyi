from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromptCandidate(_message.Message):
    __slots__ = ("text", "prompt_tokens", "expected_response_tokens", "variant")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    text: str
    prompt_tokens: int
    expected_response_tokens: int
    variant: str
    def __init__(self, text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., expected_response_tokens: _Optional[int] = ..., variant: _Optional[str] = ...) -> None: ...

class ObjectiveWeights(_message.Message):
    __slots__ = ("quality", "success", "latency", "cost")
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    quality: float
    success: float
    latency: float
    cost: float
    def __init__(self, quality: _Optional[float] = ..., success: _Optional[float] = ..., latency: _Optional[float] = ..., cost: _Optional[float] = ...) -> None: ...

class ScorePromptsRequest(_message.Message):
    __slots__ = ("agent_id", "candidates", "weights", "select")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[PromptCandidate]
    weights: ObjectiveWeights
    select: bool
    def __init__(self, agent_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[PromptCandidate, _Mapping]]] = ..., weights: _Optional[_Union[ObjectiveWeights, _Mapping]] = ..., select: _Optional[bool] = ...) -> None: ...

class ScoredPrompt(_message.Message):
    __slots__ = ("index", "variant", "predicted_quality", "predicted_success", "predicted_latency_ms", "predicted_response_tokens", "uncertainty", "score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    variant: str
    predicted_quality: float
    predicted_success: float
    predicted_latency_ms: float
    predicted_response_tokens: float
    uncertainty: float
    score: float
    def __init__(self, index: _Optional[int] = ..., variant: _Optional[str] = ..., predicted_quality: _Optional[float] = ..., predicted_success: _Optional[float] = ..., predicted_latency_ms: _Optional[float] = ..., predicted_response_tokens: _Optional[float] = ..., uncertainty: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class ScorePromptsResponse(_message.Message):
    __slots__ = ("agent_id", "ranked", "used_global_model", "selected_variant", "as_of_sequence", "durable_sequence")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RANKED_FIELD_NUMBER: _ClassVar[int]
    USED_GLOBAL_MODEL_FIELD_NUMBER: _ClassVar[int]
    SELECTED_VARIANT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    ranked: _containers.RepeatedCompositeFieldContainer[ScoredPrompt]
    used_global_model: bool
    selected_variant: str
    as_of_sequence: int
    durable_sequence: int
    def __init__(self, agent_id: _Optional[str] = ..., ranked: _Optional[_Iterable[_Union[ScoredPrompt, _Mapping]]] = ..., used_global_model: _Optional[bool] = ..., selected_variant: _Optional[str] = ..., as_of_sequence: _Optional[int] = ..., durable_sequence: _Optional[int] = ...) -> None: ...
