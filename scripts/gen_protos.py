"""Regenerate the protobuf and gRPC modules of swarmlearn_client from protos/.

    python scripts/gen_protos.py            # writes client/swarmlearn_client/v1/
    python scripts/gen_protos.py --out DIR  # writes elsewhere (the freshness test compares)

protoc names modules after the .proto paths (``swarmlearn.v1``), which would collide with the
daemon's ``swarmlearn`` package, so imports are rewritten to ``swarmlearn_client.v1``. The
descriptors keep their ``swarmlearn/v1/*.proto`` names, which is what reflection shows.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "client" / "swarmlearn_client" / "v1"
_IMPORT = re.compile(r"^from swarmlearn\.v1 import", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    """Write the generated modules into ``out`` (replacing it) and return their paths."""
    protos = sorted((PROTO_ROOT / "swarmlearn" / "v1").glob("*.proto"))
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        written = []
        for src in sorted((Path(tmp) / "swarmlearn" / "v1").iterdir()):
            text = _IMPORT.sub("from swarmlearn_client.v1 import", src.read_text())
            if src.name.endswith("_pb2_grpc.py") and "class " not in text:
                continue  # protoc writes a gRPC module even for files without a service
            dst = out / src.name
            dst.write_text(text)
            written.append(dst)
        init = out / "__init__.py"
        init.write_text('"""Generated protobuf and gRPC modules of swarmlearn.v1 (scripts/gen_protos.py)."""\n')
        written.append(init)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path.relative_to(args.out.parent) if path.is_relative_to(args.out.parent) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
