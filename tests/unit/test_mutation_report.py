"""The mutation report (docs/reports/mutation.md, written by ./dev mutants) judges the rule modules as they are, and
they pass it: at least 90 % of the mutants killed, and every survivor explained."""

import json

from tests.support import mutation


def test_the_mutation_report_is_of_the_rule_modules_as_they_are_and_they_pass_it():
    written = json.loads(mutation.PREFIX.with_suffix(".json").read_text())
    figures = written["figures"]
    stale = [
        path for path in mutation.modules() if figures["modules"].get(path, {}).get("sha256") != mutation.digest(path)
    ]
    assert not stale, f"{stale} changed since the mutation report: run ./dev mutants"
    assert figures["killed_share"] >= mutation.TARGET, figures["killed_share"]
    assert figures["unexplained"] == [], figures["unexplained"]
