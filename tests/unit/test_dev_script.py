"""./dev picks a Python it supports (3.11 to 3.13) and says so in one line when it finds none: never a pip traceback."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNSUPPORTED = "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.10.13'\nexit 1\n"
# Reports itself supported, and records what ./dev asked of it after that (the venv it was to make).
SUPPORTED = '#!/bin/sh\ncase "$2" in import*) exit 0;; esac\necho "$0 $*" >> "$(dirname "$0")/calls"\nexit 3\n'


def run_dev(tmp_path: Path, pythons: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """./dev with a PATH holding only the given fake interpreters and the tools the script uses."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", "rm", "sed"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    for name, script in pythons.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["/bin/bash", str(ROOT / "dev"), *args],
        env={"PATH": str(bin_dir), "VENV": str(tmp_path / "venv"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_with_no_supported_python_it_stops_with_one_line_naming_the_versions(tmp_path):
    done = run_dev(tmp_path, {"python3": UNSUPPORTED}, "quick")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "./dev needs Python 3.11, 3.12, 3.13 (python3 here is Python 3.10.13); install one, or set PYTHON=/path/to/it"
    ]


def test_an_unsupported_python3_gives_way_to_a_supported_python3_x(tmp_path):
    done = run_dev(tmp_path, {"python3": UNSUPPORTED, "python3.12": SUPPORTED}, "quick")
    assert done.returncode == 3  # the fake stops there
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls == [f"{tmp_path}/bin/python3.12 -m venv {tmp_path}/venv"]


def test_python_set_by_the_user_comes_first(tmp_path):
    done = run_dev(tmp_path, {"python3": SUPPORTED, "mine": SUPPORTED}, "quick", PYTHON="mine")
    assert done.returncode == 3
    assert (tmp_path / "bin" / "calls").read_text().split()[0] == f"{tmp_path}/bin/mine"


def test_a_venv_made_by_an_unsupported_python_is_made_again(tmp_path):
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(UNSUPPORTED)
    venv_python.chmod(0o755)
    done = run_dev(tmp_path, {"python3.13": SUPPORTED}, "quick")
    assert f"{tmp_path}/venv was made by an unsupported or missing Python: making it again" in done.stderr
    assert not venv_python.exists()
    assert (tmp_path / "bin" / "calls").read_text().split()[0] == f"{tmp_path}/bin/python3.13"


def test_every_locked_package_installs_on_each_supported_python():
    """The lock is universal (uv --universal): no pin is limited to one Python version by a marker."""
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        assert "python_version" not in text and "python_full_version" not in text
