"""What a person at a terminal does: approve with one key, from `orders start --watch` and from the review
desk. The CLI runs as its own process on a pseudo-terminal (a real tty, as a person's shell gives it), keys
are typed into it and its screen is read back; the order must end COMPLETED.

A pty from the standard library rather than tmux: it needs nothing beyond Python on the machine.
"""

import asyncio
import os
import pty
import re
import subprocess
import sys
import time

import pytest

from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal

pytestmark = pytest.mark.integration
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal: type() sends keys, read_until() waits for text on its screen."""

    def __init__(self, *args: str):
        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "GATEWAY_TOKEN": ""}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        self.screen = ""

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def read_until(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            try:
                self.screen += ANSI.sub("", os.read(self.master, 65536).decode(errors="replace"))
            except (BlockingIOError, OSError):
                if self.proc.poll() is not None and text not in self.screen:
                    raise AssertionError(
                        f"exited {self.proc.returncode} before {text!r}:\n{self.screen[-3000:]}"
                    ) from None
                await asyncio.sleep(0.05)
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{self.screen[-3000:]}"
        return self.screen

    async def exit_code(self, timeout: float = 10.0) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


async def test_start_and_watch_asks_for_approval_and_one_key_approves(stack):
    order_id = new_order_id("tty")
    stack.flaky.script(order_id)
    terminal = Terminal(
        "--gateway",
        stack.gateway_address,
        "start",
        order_id,
        "--item",
        "ABC:2",
        "--name",
        "Ada",
        "--line1",
        "1 Loop Rd",
        "--city",
        "Springfield",
        "--postal-code",
        "12345",
        "--country",
        "US",
        "--watch",
        "--reviewer",
        "person",
    )
    try:
        await terminal.read_until("[a] approve")
        assert re.search(r"review closes in +\d+\.\ds", terminal.screen.rsplit("\n", 1)[-1]), terminal.screen[-500:]
        terminal.type("a")
        await terminal.read_until(f"{order_id}: approved")
        screen = await terminal.read_until("COMPLETED")
        assert await terminal.exit_code() == 0, screen
    finally:
        terminal.close()
    assert (await wait_terminal(stack, order_id)).state == pb.ORDER_STATE_COMPLETED


async def test_the_review_desk_shows_an_order_the_moment_it_waits_and_one_key_approves_it(stack):
    terminal = Terminal("--gateway", stack.gateway_address, "review", "--reviewer", "desk")
    try:
        await terminal.read_until("review desk")
        order_id = new_order_id("desk")
        stack.flaky.script(order_id)
        await stack.gateway.StartOrder(start_request(order_id))
        waiting = await wait_review(stack, order_id)
        assert waiting.state == pb.ORDER_STATE_AWAITING_REVIEW
        screen = await terminal.read_until(order_id, timeout=3)
        row = [line for line in screen.splitlines() if order_id in line][-1]
        assert "ABCx1, XYZx2" in row and "Springfield" in row and re.search(r"\d+\.\ds", row), row
        for _ in range(20):  # other tests' orders may wait too: select ours
            frame = terminal.screen.rsplit("review desk:", 1)[-1]
            if any(line.startswith(">") and order_id in line for line in frame.splitlines()):
                break
            terminal.type("j")
            await asyncio.sleep(0.3)
        terminal.type("a")
        await terminal.read_until(f"{order_id}: approved")
        assert (await wait_terminal(stack, order_id)).state == pb.ORDER_STATE_COMPLETED
        terminal.type("q")
        assert await terminal.exit_code() == 0
    finally:
        terminal.close()


async def test_the_review_desk_without_a_terminal_approves_all_as_the_benchmark_does(stack):
    order_id = new_order_id("auto")
    stack.flaky.script(order_id)
    desk = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--gateway", stack.gateway_address, "review", "--approve-all"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(0.5)
        await stack.gateway.StartOrder(start_request(order_id))
        assert (await wait_terminal(stack, order_id)).state == pb.ORDER_STATE_COMPLETED
    finally:
        desk.terminate()
        out, _ = desk.communicate(timeout=10)
    assert f"{order_id}: approved" in out
