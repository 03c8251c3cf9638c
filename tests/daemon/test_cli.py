"""The command line against a real daemon: health, ingest (seed and protobuf JSON), agents, stats, demo."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from swarmlearn.cli import _jsonable, main
from swarmlearn.config import Settings
from swarmlearn.server import Daemon
from swarmlearn_client import ForecastPoint
from tests.daemon.pbevents import events


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data")) as running:
        yield running


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def seed_line(i: int, **extra: object) -> str:
    event = {
        "timestamp": 1_767_225_600 + i,
        "agent_id": "seed-agent",
        "event_type": ["TaskStarted", "TaskCompleted", "PerformanceUpdate"][i % 3],
        "performance_metrics": {
            "latency_ms": 100.0 + i,
            "tokens_per_second": 30.0,
            "memory_usage_mb": 256.0,
            "cpu_usage_percent": 20.0,
            "success_rate": 0.9,
        },
        "prompt_data": {"prompt_text": f"prompt {i}", "prompt_tokens": 2, "response_tokens": 9, "quality_score": 0.8},
    }
    event.update(extra)
    return json.dumps(event)


def test_ingest_seed_form_twice_stores_each_event_once(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "seed.jsonl"
    bad = [seed_line(0, event_type="Exploded"), "{not json", seed_line(1, agent_id="")]
    odd = [seed_line(2, timestamp=1e999), seed_line(3, attributes=["not", "a", "map"])]
    text = "\n".join([seed_line(i) for i in range(300)] + bad + odd + [""]) + "\n"
    path.write_bytes(text.encode() + b'{"timestamp": 1, "agent_id": "\xff\xfe"}\n')

    first = run_json(capsys, "ingest", str(path), "--target", daemon.address, "--json", "--batch-size", "64")
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (300, 0, 6)
    assert {e["line"] for e in first["unparsable_lines"]} == {301, 302, 304, 305, 307}
    assert first["rejections"][0]["field"] == "agent_id"

    second = run_json(capsys, "ingest", str(path), "--target", daemon.address, "--json")
    assert (second["accepted"], second["duplicates"]) == (0, 300)

    stats = run_json(capsys, "stats", "seed-agent", "--target", daemon.address, "--json")
    assert stats["event_count"] == 300
    assert stats["prompt_event_count"] == 300
    assert stats["mean_metrics"]["latency_ms"] == pytest.approx(100.0 + 299 / 2)


def test_ingest_protobuf_json_form(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pb.jsonl"
    lines = [json_format.MessageToJson(e, indent=None) for e in events(50, agent="pb-agent")]
    no_id = json.loads(lines[0])
    del no_id["eventId"]
    path.write_text("\n".join([*lines, json.dumps(no_id)]) + "\n")
    report = run_json(capsys, "ingest", str(path), "--target", daemon.address, "--json")
    assert (report["accepted"], report["rejected"]) == (51, 0)
    agents = run_json(capsys, "agents", "--target", daemon.address, "--json")
    assert [a["agent_id"] for a in agents["agents"]] == ["pb-agent"]


def test_human_output_and_errors(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(seed_line(0) + "\n")
    assert main(["ingest", str(path), "--target", daemon.address]) == 0
    assert "accepted 1, duplicates 0, rejected 0" in capsys.readouterr().out
    assert main(["agents", "--target", daemon.address]) == 0
    assert "seed-agent" in capsys.readouterr().out
    assert main(["stats", "nobody", "--target", daemon.address]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "missing.jsonl"), "--target", daemon.address]) == 1


def test_demo_streams_a_swarm_into_its_own_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "demo", "--agents", "4", "--events", "200", "--json")
    assert report["ingest"]["accepted"] == 800
    agents = {a["agent_id"]: a for a in report["agents"]}
    assert set(agents) == {"planner", "coder", "reviewer", "retriever"}
    assert all(a["event_count"] == 200 for a in agents.values())
    # Profiles differ: the coder is slower than the retriever, and only some agents send prompts.
    assert agents["coder"]["mean_metrics"]["latency_ms"] > 5 * agents["retriever"]["mean_metrics"]["latency_ms"]
    assert agents["retriever"]["prompt_event_count"] == 0 < agents["coder"]["prompt_event_count"]
    # The demo waits for the online learner, so every agent shows its baselines and what they answered.
    assert report["learned"] is True
    for agent in agents.values():
        assert agent["online_sequence"] == 800
        assert {b["target"] for b in agent["baselines"] if b["best"]} == {
            "latency_ms",
            "tokens_per_second",
            "success_rate",
        }
        assert set(agent["answered_mae"]) == {"latency_ms", "tokens_per_second", "success_rate"}


def test_prompts_command_ranks_a_file_of_candidates(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_json(capsys, "demo", "--agents", "2", "--events", "400", "--target", daemon.address, "--json")
    checkpoints = report["prompt_learning"]
    assert len(checkpoints) == 4 and checkpoints[-1]["events"] == 800
    # What the demo shows: the gap between a good and a bad prompt widens as events arrive.
    gaps = [c["good_quality"] - c["bad_quality"] for c in checkpoints]
    assert gaps[-1] > gaps[0] and checkpoints[-1]["good_ranked_first"]
    candidates = tmp_path / "candidates.txt"
    candidates.write_text(
        'whatever asap maybe etc\n\n{"text": "verify the code step-by-step with examples", "variant": "careful"}\n'
    )
    ask = ["prompts", "coder", "--candidates", str(candidates), "--target", daemon.address]
    ranking = run_json(capsys, *ask, "--weight", "latency=0", "--json")
    assert [r["index"] for r in ranking["ranked"]] == [1, 0]
    assert ranking["ranked"][0]["variant"] == "careful"
    assert main(["prompts", "coder", "--candidates", str(candidates), "--target", daemon.address]) == 0
    assert "answered by" in capsys.readouterr().out
    assert main(["prompts", "coder", "--candidates", str(candidates), "--weight", "vibes=1"]) == 2
    assert (
        main(["prompts", "coder", "--candidates", str(candidates), "--weight", "cost=-1", "--target", daemon.address])
        == 1
    )
    assert "INVALID_ARGUMENT: weights.cost" in capsys.readouterr().err


def test_stats_and_predict_commands(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "demo", "--agents", "2", "--events", "150", "--target", daemon.address, "--json")
    forecast = run_json(
        capsys, "predict", "planner", "--horizon", "12", "--coverage", "0.9", "--target", daemon.address, "--json"
    )
    assert [f["target"] for f in forecast["forecasts"]] == ["latency_ms", "tokens_per_second", "success_rate"]
    latency = forecast["forecasts"][0]
    assert [p["step"] for p in latency["points"]] == list(range(1, 13))
    assert all(p["lower"] <= p["value"] <= p["upper"] for p in latency["points"])
    assert latency["model_kind"].startswith("online:")
    assert main(["stats", "planner", "--target", daemon.address]) == 0
    shown = capsys.readouterr().out
    for expected in ("naive", "weight", "latency_ms.p99", "error_rate", "online:holt"):
        assert expected in shown, expected
    assert main(["predict", "planner", "--horizon", "49", "--target", daemon.address]) == 1
    assert "INVALID_ARGUMENT: horizon" in capsys.readouterr().err


def strict_json(text: str) -> Any:
    """Parse as strict JSON parsers do: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_has_no_nan_or_infinity(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    # A training job has no best objective: NaN on the wire, which --json printed as NaN.
    capsys.readouterr()
    assert main(["train", "--detach", "--epochs", "1", "--target", daemon.address, "--json"]) == 0
    job = strict_json(capsys.readouterr().out)
    assert job["progress"]["best_objective"] is None
    assert main(["jobs", "--target", daemon.address, "--json"]) == 0
    (listed,) = strict_json(capsys.readouterr().out)["jobs"]
    assert listed["progress"]["best_objective"] is None
    # Every non-finite float, wherever it sits, and nothing else.
    value = {"points": [ForecastPoint(step=1, value=math.nan, lower=-math.inf, upper=math.inf)], "mae": 0.5}
    assert strict_json(json.dumps(_jsonable(value), allow_nan=False)) == {
        "points": [{"step": 1, "value": None, "lower": None, "upper": None}],
        "mae": 0.5,
    }


def test_demo_against_a_running_daemon(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "demo", "--agents", "2", "--events", "50", "--target", daemon.address, "--json")
    assert report["ingest"]["accepted"] == 100
    again = run_json(capsys, "demo", "--agents", "2", "--events", "50", "--target", daemon.address, "--json")
    assert again["ingest"]["duplicates"] == 100


def test_health_command_exit_codes(daemon: Daemon, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "swarmlearn", "health", "--timeout", "2"]
    up = subprocess.run([*command, "--target", daemon.address], capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    assert "SERVING" in up.stdout
    down = subprocess.run(
        [*command, "--target", f"unix:{tmp_path}/nothing.sock", "--json"], capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 1
    assert json.loads(down.stdout)["status"].startswith("UNREACHABLE")


def test_bad_settings_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMLEARN_MAX_BATCH_EVENTS", "lots")
    assert main(["agents", "--json"]) == 2


def test_status_backup_and_restore(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "demo", "--agents", "3", "--events", "100", "--target", daemon.address, "--json")
    status = run_json(capsys, "status", "--target", daemon.address, "--json")
    assert (status["events_stored"], status["agent_count"], status["durable_sequence"]) == (300, 3, 300)
    assert status["event_log_bytes"] > 0 and not status["tls"] and not status["token_auth"]
    assert main(["status", "--target", daemon.address]) == 0
    assert "events stored" in capsys.readouterr().out

    data_dir = daemon.settings.data_dir
    manifest = run_json(capsys, "backup", str(tmp_path / "bk"), "--data-dir", str(data_dir), "--json")
    assert manifest["event_count"] == 300
    # Restoring over the running daemon's directory is refused; into a fresh one it works.
    assert main(["restore", str(tmp_path / "bk"), "--data-dir", str(data_dir)]) == 1
    assert "error" in capsys.readouterr().err
    restored = run_json(capsys, "restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "new"), "--json")
    assert restored["event_count"] == 300
    with Daemon(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "new")) as second:
        agents = run_json(capsys, "agents", "--target", second.address, "--json")
    assert sum(a["event_count"] for a in agents["agents"]) == 300


def test_the_cli_uses_the_daemons_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tokens = tmp_path / "tokens"
    tokens.write_text("# agents first, the operator's token after them\nagent agent-token-0123456789abcdef\n")
    tokens.chmod(0o600)
    settings = Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "d", auth_token_file=tokens)
    with Daemon(settings) as daemon:
        assert main(["agents", "--target", daemon.address]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        assert run_json(capsys, "agents", "--target", daemon.address, "--json", "--token-file", str(tokens)) == {
            "agents": []
        }
        assert main(["models", "--target", daemon.address, "--token-file", str(tokens)]) == 1
        assert "PERMISSION_DENIED: ListModels needs the admin role" in capsys.readouterr().err
    # The CLI sends the file's first admin token (a bare token is one), wherever it is listed.
    with tokens.open("a") as more:
        more.write("cli-token-0123456789abcdef\n")
    with Daemon(settings) as daemon:
        monkeypatch.setenv("SWARMLEARN_AUTH_TOKEN_FILE", str(tokens))
        assert run_json(capsys, "agents", "--target", daemon.address, "--json") == {"agents": []}
        assert run_json(capsys, "models", "--target", daemon.address, "--json") == {"models": []}


def test_train_jobs_and_models_commands(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "demo", "--agents", "2", "--events", "300", "--target", daemon.address, "--json")
    small = json.dumps({"num_channels": [8, 8], "training": {"window": 20}})
    job = run_json(
        capsys,
        "train",
        "--model",
        "tcn",
        "--epochs",
        "2",
        "--model-config",
        small,
        "--target",
        daemon.address,
        "--json",
    )
    assert job["state"] == "succeeded" and job["model_version"] == "tcn-v1" and job["progress"]["epoch"] == 2
    assert job["note"].startswith(("promoted", "kept as a challenger"))
    jobs = run_json(capsys, "jobs", "--target", daemon.address, "--json")["jobs"]
    assert [j["job_id"] for j in jobs] == [job["job_id"]]
    models = run_json(capsys, "models", "--promote", "tcn:1", "--target", daemon.address, "--json")["models"]
    assert [(m["model_kind"], m["version"], m["champion"]) for m in models] == [("tcn", 1, True)]
    assert main(["models", "--promote", "tcn", "--target", daemon.address]) == 2
    assert main(["train", "--model", "tcn", "--model-config", "{nope", "--target", daemon.address]) == 1
    assert "INVALID_ARGUMENT: config_json" in capsys.readouterr().err
