"""A measurement as a report: its figures as JSON and a page of Markdown, side by side (PREFIX.json, PREFIX.md),
each saying the command that gave them, the date, the machine and the commit. docs/reports/ keeps the latest of
each; git keeps the ones before."""

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Row = list[Any]


def provenance(module: str, argv: list[str]) -> dict[str, Any]:
    """What a reader needs to trust or repeat the figures."""
    return {
        "command": shlex.join(["python", "-m", module, *argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": commit(),
    }


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(memory_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def commit() -> str:
    """The checked-out commit, with "+changes" when the tree differs from it (the figures are then not its own)."""
    try:
        head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, stderr=subprocess.DEVNULL)
        dirty = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head.strip() + ("+changes" if dirty.strip() else "")


def table(header: list[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write(prefix: Path, title: str, source: dict[str, Any], figures: Mapping[str, Any], sections: list[str]) -> None:
    """PREFIX.json (the provenance and every figure) and PREFIX.md (the provenance, then the sections)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps({**source, "figures": figures}, indent=2) + "\n")
    m = source["machine"]
    header = [
        f"# {title}",
        "",
        "Generated; do not edit. Run the command again to bring it up to date.",
        "",
        table(
            ["", ""],
            [
                ["command", f"`{source['command']}`"],
                ["date", source["date"]],
                ["machine", f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}"],
                ["python", m["python"]],
                ["commit", f"`{source['commit']}`"],
                ["figures", f"[{prefix.with_suffix('.json').name}]({prefix.with_suffix('.json').name})"],
            ],
        ),
    ]
    prefix.with_suffix(".md").write_text("\n\n".join(["\n".join(header), *sections]) + "\n")
    print(f"wrote {prefix.with_suffix('.md')} and {prefix.with_suffix('.json')}", file=sys.stderr)
