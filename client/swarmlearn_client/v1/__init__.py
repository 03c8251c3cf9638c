"""Generated protobuf and gRPC modules of swarmlearn.v1 (scripts/gen_protos.py)."""
