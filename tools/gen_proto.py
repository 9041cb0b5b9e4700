"""Regenerate analyzer/frontends/caffe_pb2.py from proto/caffe.proto.

Usage (from anywhere; paths are resolved against the repository root):

    python tools/gen_proto.py           # rewrite analyzer/frontends/caffe_pb2.py
    python tools/gen_proto.py --check   # exit 1 if the committed file is stale

Both run grpc_tools.protoc (PyPI package grpcio-tools) as

    python -m grpc_tools.protoc -Iproto --python_out=<dir> proto/caffe.proto

from the repository root. The generated code depends on the protoc bundled
with grpcio-tools, so --check only passes with the grpcio-tools version the
committed file was generated with.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_REL = Path("proto") / "caffe.proto"
OUT_REL = Path("analyzer/frontends")
GENERATED = REPO_ROOT / OUT_REL / "caffe_pb2.py"


def protoc_command(out_dir: Path | str) -> list[str]:
    """The protoc invocation, to be run with the repository root as cwd."""
    return [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_REL.parent}",
        f"--python_out={out_dir}",
        str(PROTO_REL),
    ]


def generate(out_dir: Path | str) -> Path:
    """Generate caffe_pb2.py into out_dir and return its path."""
    # A relative out_dir is taken relative to the repository root, as in the
    # documented command; an absolute one (e.g. a temp dir) is used as is.
    out_dir = Path(out_dir)
    target = out_dir if out_dir.is_absolute() else REPO_ROOT / out_dir
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        protoc_command(out_dir),
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"protoc failed (exit {result.returncode}):\n{result.stderr.strip()}"
        )
    return target / "caffe_pb2.py"


def check() -> int:
    """0 if the committed caffe_pb2.py equals a fresh generation, else 1."""
    with tempfile.TemporaryDirectory(prefix="cnnstat-proto-") as tmp:
        fresh = generate(Path(tmp)).read_bytes()
    if not GENERATED.exists():
        print(
            f"{GENERATED.relative_to(REPO_ROOT)} is missing; "
            "run: python tools/gen_proto.py",
            file=sys.stderr,
        )
        return 1
    if GENERATED.read_bytes() != fresh:
        print(
            f"{GENERATED.relative_to(REPO_ROOT)} is out of date with "
            f"{PROTO_REL}; run: python tools/gen_proto.py",
            file=sys.stderr,
        )
        return 1
    print(f"{GENERATED.relative_to(REPO_ROOT)} is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temp dir and fail if analyzer/frontends/caffe_pb2.py differs",
    )
    args = parser.parse_args(argv)
    try:
        import grpc_tools.protoc  # noqa: F401
    except ImportError:
        print("grpc_tools not importable; install grpcio-tools", file=sys.stderr)
        return 2
    try:
        if args.check:
            return check()
        path = generate(OUT_REL)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
