"""`./dev compose`'s set-up refusals (stack/compose.py): one clear line for a machine it cannot run on, without
touching any engine (everything the checks ask of the machine is replaced here)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from stack import compose


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setattr(compose, "engine_answers", lambda: False)


def machine(monkeypatch, root: bool, installed: set[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name in installed else None)


def refusal(monkeypatch, command: str) -> str:
    monkeypatch.setattr(sys, "argv", ["stack.compose", command])
    with pytest.raises(SystemExit) as stopped:
        compose.main()
    line = str(stopped.value.code)
    assert "\n" not in line
    return line


def test_no_engine_and_no_way_to_install_one(monkeypatch, no_engine):
    machine(monkeypatch, root=False, installed={"docker"})
    line = refusal(monkeypatch, "up")
    assert line.startswith("./dev compose up: no Docker engine here, and no way to install one"), line


def test_an_engine_installed_but_not_running_needs_root_to_start(monkeypatch, no_engine):
    machine(monkeypatch, root=False, installed={"docker", "dockerd"})
    assert "installed but not running, and starting dockerd needs root" in refusal(monkeypatch, "up")


def test_a_port_already_taken(monkeypatch):
    monkeypatch.setattr(compose, "ensure_engine", lambda say=True: False)
    monkeypatch.setattr(compose, "taken_ports", lambda: ["50051 (gateway)"])
    line = refusal(monkeypatch, "up")
    assert line == "./dev compose up: ports already taken on 127.0.0.1: 50051 (gateway) (./dev down stops ./dev up's)"


def test_the_compose_binary_is_the_go_one_in_the_package():
    binary = Path(compose.compose_binary())
    assert binary.name == "docker-compose" and binary.parent.name == "compose" and binary.is_file()
