"""Regenerate the Python code of ``proto/vigie/v1`` (run by ``make proto``).

The generated modules land in ``<out>/vigie/v1/`` so that they import each other as
``vigie.v1.*``, the proto package's own name. They are never edited by hand;
``tests/test_wire_contract.py`` fails when they are stale.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
PACKAGE_INIT = '"""Code generated from proto/vigie/v1 by `make proto`. Do not edit."""\n'


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "vigie" / "v1").glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Write the generated modules under ``out_root/vigie/v1`` and return their paths."""
    from grpc_tools import protoc  # noqa: PLC0415 - dev dependency, only when generating

    target = out_root / "vigie" / "v1"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(str(p.relative_to(PROTO_DIR)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed: see the message above")
    (target / "__init__.py").write_text(PACKAGE_INIT)
    return sorted(p for p in target.iterdir() if p.is_file())


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sidecar"
    for path in generate(out):
        print(path.relative_to(out))


if __name__ == "__main__":
    main()
