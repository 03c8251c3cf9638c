from swarmlearn_client.v1 import agents_pb2 as _agents_pb2
from swarmlearn_client.v1 import daemon_pb2 as _daemon_pb2
from swarmlearn_client.v1 import events_pb2 as _events_pb2
from swarmlearn_client.v1 import jobs_pb2 as _jobs_pb2
from swarmlearn_client.v1 import prompts_pb2 as _prompts_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
