"""The README is code: every line of its `bash` blocks runs here, in order, as written, against a running
stack, and must do what its comment says.

    command                      exits 0 (a command may continue over lines ending in a backslash)
    command   # expect: TEXT     exits 0 and prints TEXT
    command   # refused: CODE    exits non-zero and prints CODE (the refusal the text describes)

Blocks fenced as `sh` are shown, not run: `./dev up` itself, and the review desk, which waits for a
person (tests/integration/test_terminal.py drives it on a terminal). The only changes made to a line are
the stack's addresses (the README's are ./dev up's: gateway 127.0.0.1:50051, Temporal 127.0.0.1:7233,
codec server http://127.0.0.1:8089) and where ./dev up keeps the payload key. The README's order ids get
scripted flaky_call() outcomes (every attempt succeeds), so what a line shows does not depend on chance.
"""

import asyncio
import base64
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from common import codec_server
from stack import local
from tests.integration.conftest import wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
CHECK = re.compile(r"\s+#\s*(expect|refused):\s*(.+)$")


def readme_commands() -> list[tuple[str, str, str]]:
    """(command, kind, text) for each line of the README's bash blocks; kind is "", "expect" or "refused"."""
    commands = []
    for block in BLOCK.findall((ROOT / "README.md").read_text()):
        for line in block.replace("\\\n", " ").splitlines():  # a line continued with a backslash is one command
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            check = CHECK.search(line)
            if check:
                commands.append((line[: check.start()], check.group(1), check.group(2).strip()))
            else:
                commands.append((line, "", ""))
    return commands


def test_the_readme_has_commands_to_run():
    kinds = {kind for _, kind, _ in readme_commands()}
    assert len(readme_commands()) >= 20 and kinds == {"", "expect", "refused"}


async def test_every_readme_command_runs_as_written(stack, tmp_path, monkeypatch):
    commands = readme_commands()
    for order_id in set(re.findall(r"\bo-\d+\b", "\n".join(c for c, _, _ in commands))):
        stack.flaky.script(order_id)
    key_file = tmp_path / "payload.key"
    key_file.write_text(os.environ["PAYLOAD_KEY"])
    codec = codec_server.serve(f"127.0.0.1:{local.free_port()}", base64.b64decode(os.environ["PAYLOAD_KEY"]))
    threading.Thread(target=codec.serve_forever, daemon=True).start()
    codec_url = f"http://127.0.0.1:{codec.server_address[1]}"
    temporal_address = stack.gateway_settings.temporal.address
    env = {
        **os.environ,
        "GATEWAY_ADDRESS": stack.gateway_address,
        "TEMPORAL_ADDRESS": temporal_address,
        "GATEWAY_TOKEN": "",
    }
    for command, kind, text in commands:
        run = (
            command.replace("127.0.0.1:50051", stack.gateway_address)
            .replace("127.0.0.1:7233", temporal_address)
            .replace(".stack/payload.key", str(key_file))
            .replace("http://127.0.0.1:8089", codec_url)
        )
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        shown = done.stdout + done.stderr
        if kind == "refused":
            assert done.returncode != 0 and text in shown, f"{command}\nshould be refused with {text}:\n{shown}"
        else:
            assert done.returncode == 0, f"{command}\nexited {done.returncode}:\n{shown}"
            assert text in shown, f"{command}\nshould show {text!r}:\n{shown}"
    codec.shutdown()
    # The first example, watched from a script (no terminal to ask), expires in review as the README says.
    assert (await wait_terminal(stack, "o-1")).reason.startswith("review window expired")
