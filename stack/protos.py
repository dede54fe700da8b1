"""Regenerate the Python stubs from protos/ (the one way they are made), or check they are current."""

import filecmp
import os
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
SOURCES = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out: Path) -> None:
    # protoc finds the mypy plugins on PATH, beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *SOURCES,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.name.endswith(SUFFIXES)}


def main() -> None:
    if sys.argv[1:] == ["--check"]:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp)
            generate(fresh)
            stale = sorted(
                str(p)
                for p in generated_files(fresh) | generated_files(PROTOS)
                if not (fresh / p).exists()
                or not (PROTOS / p).exists()
                or not filecmp.cmp(fresh / p, PROTOS / p, shallow=False)
            )
        if stale:
            raise SystemExit(f"generated stubs are out of date with protos/: {stale}; run ./dev protos")
        print("generated stubs match protos/")
    else:
        generate(PROTOS)


if __name__ == "__main__":
    main()
