"""The replay buffer a training job reads: the scope's latest events, a seeded sample of older runs,
and no window across the gap between two runs. A real event log (the daemon's writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swarmlearn.events import Event
from swarmlearn.store import EventStore
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import ReplayLimits, Split, StreamDataLoader, TrainingConfig, read_replay


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[Event]]:
    path = tmp_path_factory.mktemp("replay") / "events.sqlite3"
    events = list(generate_swarm(agents=3, events_per_agent=2_000, seed=5))
    store = EventStore(path)
    try:
        upto = store.submit(events).result(60).durable_sequence
    finally:
        store.close()
    return path, upto, events


def test_a_scope_shorter_than_the_buffer_is_read_whole_as_one_run(log: tuple[Path, int, list[Event]]) -> None:
    path, upto, events = log
    replay = read_replay(path, "", upto, ReplayLimits(recent=10_000))
    assert [(e.agent_id, e.event_id) for e in replay.events] == [(e.agent_id, e.event_id) for e in events]
    assert replay.runs == [] and replay.summary() == {"events": 6_000, "runs": 1, "log_events": 6_000}
    assert replay.events[0].prompt_text is None  # the text is never read for training
    unbounded = read_replay(path, "", upto, ReplayLimits(recent=0))
    assert len(unbounded.events) == 6_000 and unbounded.runs == []
    # Latest and older together hold the whole scope: one run, not a gap where there is none.
    fits = read_replay(path, "", upto, ReplayLimits(recent=4_000, older=2_000))
    assert [e.event_id for e in fits.events] == [e.event_id for e in events] and fits.runs == []


def test_the_latest_events_and_a_seeded_sample_of_older_runs(log: tuple[Path, int, list[Event]]) -> None:
    path, upto, events = log
    limits = ReplayLimits(recent=1_500, older=1_000, run=100)
    replay = read_replay(path, "", upto, limits)
    position = {(e.agent_id, e.event_id): i for i, e in enumerate(events)}  # the log's order
    read = [position[(e.agent_id, e.event_id)] for e in replay.events]
    runs = np.asarray(replay.runs)
    assert read[-1_500:] == list(range(4_500, 6_000)) and set(runs[-1_500:]) == {runs[-1]}
    older = read[:-1_500]
    assert 900 <= len(older) <= 1_100 and max(older) < 4_500  # about `older`, all before the recent part
    assert read == sorted(read) and np.all(np.diff(runs) >= 0)  # log order, runs numbered in it
    for run in set(runs[:-1_500].tolist()):  # each run is consecutive in the log
        mine = [p for p, r in zip(read, runs, strict=True) if r == run]
        assert mine == list(range(mine[0], mine[0] + len(mine)))
    assert 1 < runs[-1] <= 10  # ten runs of 100 drawn, neighbours joined
    assert [e.event_id for e in read_replay(path, "", upto, limits).events] == [e.event_id for e in replay.events]
    assert replay.summary() == {"events": len(read), "runs": int(runs[-1]) + 1, "log_events": 6_000}


def test_an_agent_scope_reads_that_agent_only(log: tuple[Path, int, list[Event]]) -> None:
    path, upto, events = log
    agent = events[1].agent_id
    history = [e.event_id for e in events if e.agent_id == agent]
    replay = read_replay(path, agent, upto, ReplayLimits(recent=600, older=400, run=100))
    ids = [e.event_id for e in replay.events]
    assert {e.agent_id for e in replay.events} == {agent} and ids[-600:] == history[-600:]
    assert 300 <= len(ids) - 600 <= 500 and replay.total == 2_000
    positions = [history.index(i) for i in ids]
    assert positions == sorted(positions)


def test_no_window_spans_two_runs(log: tuple[Path, int, list[Event]]) -> None:
    path, upto, _ = log
    replay = read_replay(path, "", upto, ReplayLimits(recent=1_500, older=1_500, run=100))
    config = TrainingConfig(window=20, horizon=2)
    gapped = StreamDataLoader(replay.events, config, runs=replay.runs)
    joined = StreamDataLoader(replay.events, config)  # the same events as if they were one history
    span = config.window + config.horizon
    for split in Split:
        starts = gapped.starts[split]
        assert np.all(gapped.row_segment[starts] == gapped.row_segment[starts + span - 1])
    assert len(gapped) < len(joined)  # the windows across a gap are gone
    assert len(set(gapped.row_segment.tolist())) > len(gapped.agents)
    assert np.array_equal(gapped.features, joined.features)  # rows in the same (time) order
    with pytest.raises(ValueError):
        StreamDataLoader(replay.events, config, runs=replay.runs[:-1])


def test_a_training_job_reads_its_replay_buffer_not_the_whole_log(
    log: tuple[Path, int, list[Event]], tmp_path: Path
) -> None:
    from multiprocessing import Pipe

    from swarmlearn.config import Settings
    from swarmlearn.jobs import JobSettings, TrainingSpec
    from swarmlearn.jobs._messages import Done
    from swarmlearn.jobs._train import run

    path, upto, _ = log
    spec = TrainingSpec(
        db=path, scope="", kind="lstm", upto=upto, horizon=1, max_epochs=1, checkpoint=tmp_path / "m.pt",
        settings=JobSettings.from_settings(Settings(replay_recent_events=2_400, replay_older_events=2_000)),
        config={"hidden_size": 8, "num_layers": 1, "training": {"window": 10, "max_steps": 5}},
    )  # fmt: skip
    ours, _ = Pipe()
    outcome = run(ours, spec)
    assert isinstance(outcome, Done), outcome
    read = outcome.result["replay"]
    assert 2_400 + 1_500 <= read["events"] <= 2_400 + 2_500 and read["runs"] >= 2 and read["log_events"] == 6_000
    assert outcome.result["comparisons"]["online"]["ratio"] > 0  # the online rival replayed the same buffer
