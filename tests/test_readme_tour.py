"""The README's tour of the command line, followed exactly as written: every command of the ``sh``
blocks from "A tour of the command line" through "How an auditor verifies a reading and an
epoch", in order, in one shell's state, from an empty working directory. It must end with
``verify`` VALID and ``audit`` PASSED (issues 14 and 16: a newcomer following the tour must get
there).

How the commands run, and the only liberties taken with their text:

- The working directory is a fresh temporary folder holding a ``.venv`` link to this checkout's
  virtual environment, so ``.venv/bin/assetproof`` and every relative ``var/`` path resolve as
  they do at the root of a fresh clone (nothing else of the clone is used by the tour).
- Ports are replaced, so that runs in parallel never collide: :data:`README_PORTS` names each
  port the tour uses, and each gets a free one (in the text, wherever the number appears). The
  tour relies on one default, ``ASSETPROOF_RPC`` (``http://127.0.0.1:8545``): it is set to the
  new anvil port. Every other ``ASSETPROOF_*`` variable of the test's environment is removed.
- Assignments (``A=...``, ``export ...``) carry over to every later command, as in one shell.
- A command ending in ``&`` is started as its own process (``exec``, so its pid is the
  service's), and the test waits for the condition :data:`READY` names for it (anvil answers,
  the broker listens, the gateway holds its subscription, ...). Any other command runs to its end
  and must exit 0; before some, the test waits for what a person reading the tour would have
  waited for (:data:`BEFORE`: the reading a bundle is asked for is anchored, the epochs an export
  asks for are anchored). No sleeps: every wait polls a condition.
- At the end every background service must still be running; each is stopped with SIGTERM (the
  way ``kill %1`` stops it) and must exit by itself within 30 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from chain.rpc import connect_reader
from devstack.mosquitto import free_port
from store.db import make_engine
from store.tables import READING
from tests.support.processes import REPO, wait_for

TOUR_START = "## A tour of the command line"
TOUR_END = "## Cash-flow tokens"  # the tour ends with the auditor; tokens are their own section
"""The tour: every ``sh`` block from the first heading up to the second."""

README_PORTS = {
    8545: "anvil's JSON-RPC (`chain node --port`, `--rpc`, and ASSETPROOF_RPC's default)",
    1884: "Mosquitto's plaintext loopback listener",
    8884: "Mosquitto's TLS listener (ASSETPROOF_BROKER)",
    8000: "the API (`api --port`)",
}

DEADLINE_S = 170
"""The whole tour, set-up and teardown included, stays under 3 minutes."""


# --- reading the tour -------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` outside quotes, after a blank)."""
    quote = None
    for i, char in enumerate(line):
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def split_commands(block: str) -> list[str]:
    """The commands of one ``sh`` block: continuation lines joined, a here-document kept whole
    with its command, comments and blank lines dropped."""
    commands: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = _strip_comment(lines[i])
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1].rstrip() + " " + _strip_comment(lines[i]).lstrip()
            i += 1
        if not line.strip():
            continue
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc is not None:
            body = []
            while lines[i] != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            line = "\n".join([line, *body, heredoc.group(1)])
        commands.append(line.strip())
    return commands


def tour_commands(readme: str) -> list[str]:
    section = readme[readme.index(TOUR_START) : readme.index(TOUR_END)]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    return [command for block in blocks for command in split_commands(block)]


def with_ports(command: str, ports: dict[int, int]) -> str:
    for readme_port, port in ports.items():
        command = re.sub(rf"(?<!\d){readme_port}(?!\d)", str(port), command)
    return command


def test_the_tour_is_read_as_a_person_would_type_it() -> None:
    block = """A=x
# a comment
$A one --flag "a # not a comment" # a comment
$A two \\
  --x '#y' &
cat > f <<EOF
line $PWD # kept
EOF

$A three   # trailing
"""
    assert split_commands(block) == [
        "A=x",
        '$A one --flag "a # not a comment"',
        "$A two --x '#y' &",
        "cat > f <<EOF\nline $PWD # kept\nEOF",
        "$A three",
    ]
    assert with_ports("a 8545 b :8545/ c 18545 d", {8545: 4242}) == "a 4242 b :4242/ c 18545 d"


# --- running it -------------------------------------------------------------------------------


@dataclass
class Tour:
    cwd: Path
    ports: dict[int, int]
    env: dict[str, str]
    logs: Path
    deadline: float
    preamble: list[str] = field(default_factory=list)
    services: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    count: int = 0

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.ports[8545]}"

    def _log(self, command: str) -> Path:
        self.count += 1
        name = re.sub(r"\W+", "-", command.split("\n")[0].replace("$A", ""))[:40].strip("-")
        return self.logs / f"{self.count:02d}-{name}.log"

    def _script(self, command: str) -> str:
        return "\n".join(["set -eo pipefail", *self.preamble, command])

    def run(self, command: str) -> None:
        if re.fullmatch(r"(export\s+)?[A-Za-z_]\w*=\S*", command):
            self.preamble.append(command)
            return
        if command.endswith("&"):
            self.start(command[:-1].strip())
            return
        for pattern, wait in BEFORE:
            if re.search(pattern, command):
                wait(self, command)
        log = self._log(command)
        out = subprocess.run(
            ["bash", "-c", self._script(command)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=max(5.0, self.remaining()),
            check=False,
        )
        log.write_text(f"$ {command}\n{out.stdout}\n--- stderr\n{out.stderr}")
        self.outputs[command] = out.stdout
        assert out.returncode == 0, f"`{command}` exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"

    def start(self, command: str) -> None:
        readiness = next((wait for pattern, wait in READY if re.search(pattern, command)), None)
        assert readiness is not None, f"the test does not know what `{command}` is ready on: add it to READY"
        log = self._log(command)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", self._script("exec " + command)],
                cwd=self.cwd,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C in the test run must not reach it
            )
        self.services.append((command, process, log))
        readiness(self, command)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        def alive_and(condition: Callable[[], bool]) -> Callable[[], bool]:
            def check() -> bool:
                for command, process, log in self.services:
                    assert process.poll() is None, f"`{command}` exited {process.returncode}:\n{_tail(log)}"
                return condition()

            return check

        wait_for(alive_and(condition), timeout_s=max(1.0, self.remaining()), what=what)

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for command, process, _ in reversed(self.services):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: only what it started
                    process.wait()
                    codes[command] = None
                    continue
            codes[command] = process.returncode
        return codes


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --- what each service is ready on, and what a command waits for -----------------------------


def _rpc_answers(tour: Tour, _command: str) -> None:
    def answers() -> bool:
        request = urllib.request.Request(
            tour.rpc,
            data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return "result" in json.loads(response.read())
        except (urllib.error.URLError, OSError):
            return False

    tour.wait(answers, "anvil's JSON-RPC")


def _listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return check


def _broker_listens(tour: Tour, _command: str) -> None:
    tour.wait(lambda: _listening(tour.ports[1884])() and _listening(tour.ports[8884])(), "Mosquitto's listeners")


def _logged(text: str) -> Callable[[Tour, str], None]:
    def ready(tour: Tour, command: str) -> None:
        log = tour.services[-1][2]
        tour.wait(lambda: text in log.read_text(errors="replace"), f"{text!r} from `{command}`")

    return ready


def _api_answers(tour: Tour, _command: str) -> None:
    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{tour.ports[8000]}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    tour.wait(answers, "the API's /healthz")


def _anchor_count(tour: Tour) -> Callable[[], int]:
    """How many epochs the tour's AnchorRegistry holds (the deployment and anvil are up by then)."""
    return connect_reader(tour.rpc, deployment=tour.cwd / "var" / "deployment.json").epoch_count


def _reading_anchored(tour: Tour, command: str) -> None:
    device = re.search(r"--device\s+(\S+)", command)
    seq = re.search(r"--seq\s+(\d+)", command)
    assert device is not None, f"`{command}`: the test expects --device"
    assert seq is not None, f"`{command}`: the test expects --seq"
    device_id, number = device.group(1), int(seq.group(1))
    engine = make_engine(f"sqlite:///{tour.cwd / 'var' / 'assetproof.db'}", writer=False)

    def epoch_of_reading() -> int | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(READING.c.epoch).where(READING.c.device_id == device_id, READING.c.seq == number)
            ).first()
        return None if row is None else row.epoch

    try:
        anchored = _anchor_count(tour)
        tour.wait(lambda: (e := epoch_of_reading()) is not None and anchored() > e, f"{command}: the reading anchored")
    finally:
        engine.dispose()


def _epochs_anchored(tour: Tour, command: str) -> None:
    match = re.search(r"--epochs\s+(\d+)(?:\.\.(\d+))?", command)
    assert match is not None, f"`{command}`: the test expects --epochs A..B"
    last = int(match.group(2) or match.group(1))
    anchored = _anchor_count(tour)
    tour.wait(lambda: anchored() > last, f"epochs up to {last} anchored, for `{command}`")


READY: list[tuple[str, Callable[[Tour, str], None]]] = [
    (r"\bchain node\b", _rpc_answers),
    (r"^mosquitto\b", _broker_listens),
    (r"\bgateway\b", _logged("subscribed to $share/")),
    (r"\battestor\b", _logged("leading")),
    (r"\bapi\b", _api_answers),
]
"""What each background service of the tour is ready on, by its command."""

BEFORE: list[tuple[str, Callable[[Tour, str], None]]] = [
    (r"\bbundle\b.*--device", _reading_anchored),
    (r"\bexport\b.*--epochs", _epochs_anchored),
]
"""What a foreground command needs to have happened first (the services work in the background)."""


@pytest.fixture
def tour(tmp_path: Path) -> Tour:
    venv = Path(sys.prefix)
    assert (venv / "bin" / "assetproof").exists(), f"{venv} has no assetproof: run scripts/bootstrap"
    cwd = tmp_path / "clone"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(venv, target_is_directory=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = {readme_port: free_port() for readme_port in README_PORTS}
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASSETPROOF_")}
    env |= {"ASSETPROOF_RPC": f"http://127.0.0.1:{ports[8545]}", "PYTHONUNBUFFERED": "1"}
    return Tour(cwd=cwd, ports=ports, env=env, logs=logs, deadline=time.monotonic() + DEADLINE_S)


REGISTER = "$A chain register-devices"
"""What the tour tells a reader who provisioned devices before ``chain deploy`` to run after it."""


def provisioned_before_deploy(commands: list[str]) -> list[str]:
    """The tour as the other order the README mentions: devices provisioned (with the exports
    they read) before the contracts exist, then ``chain register-devices`` right after
    ``chain deploy``; every command otherwise as written but the simulator's, cut to 20 s of
    wall time (still more than the 10 epochs the export asks for: the as-written run checks
    the full minute, this one only the registration path, and the suite runs serially)."""
    moved = [c for c in commands if c.startswith("export ASSETPROOF_BROKER") or " devices provision " in c]
    rest = [re.sub(r"(\$A simulate .*--seconds )60\b", r"\g<1>20", c) for c in commands if c not in moved]
    assert rest != [c for c in commands if c not in moved], "the tour's simulator no longer runs --seconds 60"
    deploy = rest.index("$A chain deploy")
    return [*rest[:deploy], *moved, rest[deploy], REGISTER, *rest[deploy + 1 :]]


@pytest.mark.parametrize("order", ["as_written", "devices_before_deploy"])
def test_following_the_readme_tour_ends_valid_and_passed(tour: Tour, order: str) -> None:
    readme = (REPO / "README.md").read_text()
    commands = tour_commands(readme)
    assert any(c.startswith("$A verify") for c in commands), "the tour verifies no bundle"
    assert any(c.startswith("$A audit") for c in commands), "the tour audits no epoch"
    if order == "devices_before_deploy":
        tour_text = " ".join(readme[readme.index(TOUR_START) : readme.index(TOUR_END)].split())
        assert f"`{REGISTER}` right after `chain deploy`" in tour_text, "the tour no longer says so"
        commands = provisioned_before_deploy(commands)
    try:
        for command in commands:
            tour.run(with_ports(command, tour.ports))
        for command, process, log in tour.services:
            assert process.poll() is None, f"`{command}` stopped during the tour:\n{_tail(log)}"
    except BaseException:
        for log in sorted(tour.logs.iterdir()):
            print(f"===== {log.name}\n{_tail(log)}")
        raise
    finally:
        stopped = tour.stop()
    # uvicorn (the API) shuts down, then re-raises the SIGTERM it handled: -15 after a clean stop.
    assert all(code in (0, -signal.SIGTERM) for code in stopped.values()), f"not stopped by SIGTERM: {stopped}"

    # Every command exited 0 (Tour.run); the verdicts themselves, as the reader sees them:
    verified = [out for command, out in tour.outputs.items() if re.match(r"\$A verify \S+ --rpc", command)]
    assert verified, "the tour never verifies a bundle against the chain"
    assert verified[0].startswith("VALID: "), verified[0]
    audited = [out for command, out in tour.outputs.items() if command.startswith("$A audit")]
    assert audited, "the tour never audits"
    assert audited[0].splitlines()[0].endswith(": PASSED"), audited[0]
    if order == "devices_before_deploy":
        provisioned = sum(int(n) for c in commands for n in re.findall(r"devices provision .*--count\s+(\d+)", c))
        assert tour.outputs[REGISTER].startswith(f"registered {provisioned} device(s) on chain"), tour.outputs[REGISTER]
