import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DaemonStatus(_message.Message):
    __slots__ = ("version", "started_time", "uptime_s", "listen", "tls", "client_certificates_required", "token_auth", "data_dir", "events_stored", "durable_sequence", "event_log_bytes", "agent_count", "ingest_streams", "online_sequence", "online_agents", "online_running", "online_restarts", "online_workers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATES_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_AUTH_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_STORED_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    AGENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INGEST_STREAMS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_AGENTS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    ONLINE_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    started_time: _timestamp_pb2.Timestamp
    uptime_s: float
    listen: str
    tls: bool
    client_certificates_required: bool
    token_auth: bool
    data_dir: str
    events_stored: int
    durable_sequence: int
    event_log_bytes: int
    agent_count: int
    ingest_streams: int
    online_sequence: int
    online_agents: int
    online_running: bool
    online_restarts: int
    online_workers: int
    def __init__(self, version: _Optional[str] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_s: _Optional[float] = ..., listen: _Optional[str] = ..., tls: _Optional[bool] = ..., client_certificates_required: _Optional[bool] = ..., token_auth: _Optional[bool] = ..., data_dir: _Optional[str] = ..., events_stored: _Optional[int] = ..., durable_sequence: _Optional[int] = ..., event_log_bytes: _Optional[int] = ..., agent_count: _Optional[int] = ..., ingest_streams: _Optional[int] = ..., online_sequence: _Optional[int] = ..., online_agents: _Optional[int] = ..., online_running: _Optional[bool] = ..., online_restarts: _Optional[int] = ..., online_workers: _Optional[int] = ...) -> None: ...
