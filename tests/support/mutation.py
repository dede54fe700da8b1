"""The mutation report of the rule modules: `./dev mutants` runs mutmut (configured in pyproject.toml: the modules,
and the unit tests of their rules), then `python -m tests.support.mutation` writes docs/reports/mutation.md and
mutation.json: killed, surviving and timed-out mutants per module; every survivor with the reason it is harmless
(HARMLESS, by the line it changes), or listed as unexplained; and the hash of each mutated module, so
tests/unit/test_mutation_report.py can tell when the report is older than the rules it judges.
"""

import hashlib
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from lab import report

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / "docs" / "reports" / "mutation"
TARGET = 0.90

# Why a surviving mutant is harmless: (a pattern of the mutant's name, a pattern of the line it changes, why).
HARMLESS: list[tuple[str, str, str]] = [
    (r"", r"required=None", "equivalent: None and False are both false, the same rule"),
    (r"failures\.x_rejects", r'cause\.type or "', "equivalent: an error with no type matches no entry either way"),
    (r"problems__mutmut", r"required=False, \)", "equivalent: the limit left out is the default, the same figure"),
    (r"", r'float\("-INF"\)', "equivalent: the same float"),
    (r"problems__mutmut", r'field: str = "', "equivalent: a default every caller overrides (the field's name)"),
    (
        r"admission",
        r"\b(now|age)\b.*[<>]|[<>].*\bnow\b",
        "equivalent: two readings of the monotonic clock are never equal, so < and <= decide alike",
    ),
    (
        r"admission.*_place_in_line",
        r"longest = |place > longest",
        "equivalent: where the count of places stops early, the hint is clamped to the longest wait anyway",
    ),
    (
        r"admission.*_place_in_line",
        r"pruned_at > 2\.0|\), 4\)$",
        "a figure that only tunes cost or display: how often the line is pruned, the hint's rounding",
    ),
    (
        r"admission.*admit",
        r"age > STALE_SECONDS or self\.counting",
        "only speed: awaiting a count already done returns at once, and the first start always has one",
    ),
    (
        r"step_runner.*(attempt_options|compensation_options)",
        r"backoff_coefficient=|seconds=\d|milliseconds=\d",
        "a figure that only tunes speed (a timeout or a retry interval), not a rule",
    ),
]


# Functions of these modules that the rule tests do not reach ("no tests" to mutmut), and why that is right.
NOT_REACHED: list[tuple[str, str]] = [
    (
        r"contract\.x_(order_memo|status_from_memo)",
        "no rule: the memo the gateway writes at start and a read's first status (held by the integration suite)",
    ),
    (
        r"contract\.x_listed_state",
        "the listed state an order passes through, held by tests/unit/test_order_workflow.py (the visibility test), "
        "which the mutation lane leaves out for its time",
    ),
    (r"contract\.xǁOrderInputǁsummary", "no rule: the order's one-line summary the Web UI shows"),
    (
        r"step_runner\.x_(compensate|compensation_options)",
        "compensation, held by tests/unit/test_compensation.py, which the mutation lane leaves out for its time",
    ),
]


def modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def digest(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def results() -> dict[str, str]:
    """Each mutant's name and status, from mutmut's own record of the last run."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(re.findall(r"^\s*(\S+): (\w[\w ]*)$", out, re.M))


def changed_line(mutant: str) -> str:
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "show", mutant], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return next(
        (line[1:].strip() for line in shown.splitlines() if line.startswith("+") and not line.startswith("++")), ""
    )


def module_of(mutant: str) -> str:
    return mutant.split(".x")[0].replace(".", "/") + ".py"


def build() -> dict[str, Any]:
    statuses = results()
    by_module: dict[str, Counter[str]] = {path: Counter() for path in modules()}
    survivors = []
    not_reached: Counter[str] = Counter()
    for mutant, status in sorted(statuses.items()):
        if status == "no tests":
            not_reached[mutant.split("__mutmut_")[0]] += 1
        by_module.setdefault(module_of(mutant), Counter())[status] += 1
        if status == "survived":
            line = changed_line(mutant)
            reason = next(
                (why for name, pattern, why in HARMLESS if re.search(name, mutant) and re.search(pattern, line)), ""
            )
            survivors.append({"mutant": mutant, "line": line, "reason": reason})
    counted = Counter(status for status in statuses.values())
    judged = counted["killed"] + counted["survived"] + counted["timeout"]
    return {
        "modules": {path: {"sha256": digest(path), **by_module.get(path, {})} for path in modules()},
        "killed": counted["killed"],
        "survived": counted["survived"],
        "timeout": counted["timeout"],
        "other": {k: v for k, v in counted.items() if k not in ("killed", "survived", "timeout")},
        # A mutant that made the tests time out was caught too: it changed what they see.
        "killed_share": round((counted["killed"] + counted["timeout"]) / judged, 4) if judged else 0.0,
        "survivors": survivors,
        "not_reached": {
            function: {
                "mutants": n,
                "reason": next((why for pattern, why in NOT_REACHED if re.search(pattern, function)), ""),
            }
            for function, n in sorted(not_reached.items())
        },
        "unexplained": [s["mutant"] for s in survivors if not s["reason"]]
        + [function for function in not_reached if not any(re.search(p, function) for p, _ in NOT_REACHED)],
    }


def sections(figures: dict[str, Any]) -> list[str]:
    rows = [[f"`{path}`", m.get("killed", 0), m.get("timeout", 0), m.get("survived", 0)]
            for path, m in figures["modules"].items()]  # fmt: skip
    share = figures["killed_share"]
    return [
        "## Against the target\n\n"
        + report.table(
            ["target", "figure", ""],
            [
                ["at least 90 % of the mutants killed", f"{share:.1%}", report.met(share >= TARGET)],
                [
                    "every survivor explained",
                    f"{len(figures['unexplained'])} unexplained",
                    report.met(not figures["unexplained"]),
                ],
            ],
        ),  # fmt: skip
        "## By module\n\n" + report.table(["module", "killed", "timed out (killed)", "survived"], rows),
        "## Not reached by the rule tests\n\n"
        + report.table(
            ["function", "mutants", "why"],
            [[f"`{f}`", m["mutants"], m["reason"] or "**unexplained**"] for f, m in figures["not_reached"].items()],
        ),
        "## Survivors\n\n"
        + report.table(
            ["mutant", "the line it changes", "why it is harmless"],
            [[f"`{s['mutant']}`", f"`{s['line']}`", s["reason"] or "**unexplained**"] for s in figures["survivors"]],
        ),
    ]


def main() -> None:
    figures = build()
    source = report.provenance("tests.support.mutation", sys.argv[1:])
    source["command"] = "./dev mutants"
    report.write(PREFIX, "Mutation testing of the rule modules", source, figures, sections(figures))
    print(f"killed {figures['killed_share']:.1%}; unexplained survivors: {len(figures['unexplained'])}")


if __name__ == "__main__":
    main()
