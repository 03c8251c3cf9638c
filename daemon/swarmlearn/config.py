"""Settings of the daemon: one frozen dataclass, loaded from TOML, environment and flags.

Precedence, lowest first: the defaults below, a TOML file (``--config`` or ``SWARMLEARN_CONFIG``),
``SWARMLEARN_<FIELD>`` environment variables, then command-line flags. Every field is documented
here once; a test checks that README's configuration table lists each with its default.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from swarmlearn.layout import DataDir
from swarmlearn.names import (
    MODEL_KINDS,
    REPLAY_OLDER_EVENTS,
    REPLAY_RECENT_EVENTS,
    TUNING_GRID_POINTS,
    TUNING_MAX_EPOCHS,
    TUNING_MAX_GRID,
)

ENV_PREFIX = "SWARMLEARN_"
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("plain", "json")
_OPTIONAL_PATHS = ("tls_cert", "tls_key", "tls_client_ca", "auth_token_file")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon can be told. Units are in the names."""

    listen: str = "127.0.0.1:50051"
    """gRPC address: ``host:port`` or ``unix:PATH``."""
    data_dir: Path = field(default_factory=lambda: Path("var/swarmlearn"))
    """Directory holding the SQLite event log and everything else the daemon writes."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    grace_period_s: float = 5.0
    """On SIGTERM/SIGINT: how long in-flight RPCs get to finish before they are cancelled."""
    max_batch_events: int = 10_000
    """Events per EventBatch; a larger batch is refused whole, with one rejection (field ``events``)."""
    max_message_bytes: int = 32 * 1024 * 1024
    """Largest gRPC message the daemon receives or sends."""
    max_stream_inflight_events: int = 20_000
    """Events of one Ingest stream read ahead of their acks (server-side backpressure); one
    batch is always admitted, however large."""
    sqlite_synchronous: str = "FULL"
    """SQLite ``synchronous`` pragma: FULL survives power loss; NORMAL only process crashes."""
    group_commit_max_events: int = 50_000
    """Most events written in one transaction when several streams commit together."""
    max_agents: int = 20_000
    """Agents the event log may hold; an event of one more is rejected (field ``agent_id``, in the
    ack) while the agents already held go on. The learners keep at most ``online_resident_agents``
    (each baselines process) and ``prompt_resident_agents`` (the prompt learner) agents in memory, the
    rest on disk. 0: no limit."""
    max_concurrent_streams: int = 64
    """Ingest streams served at once; one more is refused with RESOURCE_EXHAUSTED and a retry hint."""
    max_streams_per_connection: int = 16
    """Ingest streams one TCP connection may hold at once (a process's channels to one address share
    one); one more is refused with RESOURCE_EXHAUSTED. Unix-socket peers are not told apart."""
    ingest_idle_timeout_s: float = 300.0
    """An Ingest stream that sends nothing for this long, with every batch acknowledged, is closed
    with UNAVAILABLE (the client reopens it when it next sends); 0: never."""
    retention_max_age_s: float = 0.0
    """Delete events stored longer ago than this (by when the daemon stored them, not their
    timestamps); 0: keep them forever. Events the online learners still need are kept (see
    docs/operations.md, Retention)."""
    retention_max_events: int = 0
    """Keep at most this many of the newest events (deleting the oldest); 0: no limit."""
    retention_interval_s: float = 60.0
    """How often the retention limits are applied (when one is set), in slices of 10,000 events
    between commits."""
    log_format: str = "plain"
    """plain (for people) or json (one object per line, for log shippers)."""
    metrics_listen: str = "127.0.0.1:9464"
    """Prometheus endpoint ``host:port`` (``/metrics``); empty disables it."""
    tls_cert: Path | None = None
    """PEM certificate chain of the server; with ``tls_key`` turns on TLS."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    auth_token_file: Path | None = None
    """File of bearer tokens, one per line, ``TOKEN`` or ``ROLE TOKEN`` (``agent`` or ``admin``; a
    bare token is ``admin``; ``#`` comments); when set every RPC but health needs a token whose
    role may call it."""
    allow_insecure: bool = False
    """Allow a non-loopback ``listen`` without client authentication (a token file or mutual TLS):
    not recommended, anyone who reaches the port may then train and promote models."""
    socket_group: str = ""
    """For ``unix:`` listen addresses: group that may connect (socket mode 0660 instead of 0600)."""
    online_workers: int = 2
    """Learner processes; agents are split among them by a hash of their id. Each learns about
    20,000 events/s on one core. 0 turns online learning off (Predict answers FAILED_PRECONDITION)."""
    online_snapshot_interval_s: float = 60.0
    """How often the online learner snapshots its state (when it changed); a restart replays the log
    since the last snapshot, at roughly 25,000 events/s."""
    online_max_lag_events: int = 100_000
    """How far behind the log the online state may be when it answers Predict: further behind (a
    restart replaying the log, or a sustained ingest faster than the learners) Predict answers
    UNAVAILABLE, saying how far, rather than a forecast from old state. Within it the answer's
    ``as_of_sequence`` and ``durable_sequence`` tell the lag. 0: no limit."""
    online_resident_agents: int = 5_000
    """Agents whose baselines learner each learner process keeps in memory (about 45 KiB each for a
    long-lived agent, so about 220 MiB at the default); the least recently used others wait in its
    store (``online-<i>-of-<N>.agents.sqlite3`` in the data directory) and are read back on their next
    event or query."""
    prompt_resident_agents: int = 10_000
    """Agents whose prompt state (models, bandit, levels) the prompt learner process keeps in memory
    (about 15 KiB each: about 150 MiB at the default; 1.1 KiB for each agent beyond it); the least recently
    used others wait in its store (``prompts.agents.sqlite3`` in the data directory) and are read back on
    their next event or ScorePrompts."""
    online_max_wait_s: float = 2.0
    """How long Predict and GetAgentStats wait for the online learner to reach an agent it has not
    met yet but whose events are committed; past it Predict answers UNAVAILABLE."""
    predict_answer_within_s: float = 0.025
    """How long Predict waits for the learner when the agent has a recent forecast (the same horizon
    and coverage, answered in the last 60 s): past it, while the learner is busy catching up or
    writing a snapshot, that forecast is answered again, with its own ``as_of_sequence`` (so the lag
    shows), unless it is more than ``online_max_lag_events`` behind the log (then the learner is
    awaited). 0: always wait for the learner."""
    online_stop_timeout_s: float = 30.0
    """On stop, how long each online learner gets to write its snapshot and exit before it is killed
    (its previous snapshot then stands, and the next start replays more of the log)."""
    retrain_every_events: int = 0
    """Retrain the swarm's model after this many new events (0: not on a count)."""
    retrain_every_s: float = 0.0
    """Retrain the swarm's model this often, if new events arrived (0: not on a timer)."""
    retrain_on_drift: bool = False
    """Retrain the swarm's model when the online learners find a drift."""
    retrain_model_kind: str = "lstm"
    """What scheduled retraining trains: lstm, tcn, nbeats or ensemble (warm-started from a compatible champion)."""
    training_threads: int = 1
    """CPU threads a training job's process may use (torch); the rest stay with ingest and Predict."""
    replay_recent_events: int = REPLAY_RECENT_EVENTS
    """A training job or tuning trial reads at most this many of its scope's latest events (0: all of
    the scope's log, however long)..."""
    replay_older_events: int = REPLAY_OLDER_EVENTS
    """... plus about this many older ones (rounded up to whole runs), a uniform sample in runs of
    1,000 consecutive log positions (0: none), so its time and memory stop growing with the log."""
    promotion_margin: float = 0.02
    """A trained model is promoted only if its error is below 1 - this share of every rival's (the
    geometric mean over targets of the ratios, on the same test windows)."""
    promotion_alpha: float = 0.05
    """... and if a paired test of its per-window losses against each rival's (Diebold-Mariano,
    small-sample corrected) is significant at this level."""
    tuning_concurrency: int = 1
    """Trials a tuning job runs at once when its request leaves ``concurrency`` at 0; they share
    ``training_threads``."""
    tuning_max_epochs: int = TUNING_MAX_EPOCHS
    """Each tuning trial's budget of epochs (hyperband's largest, R)."""
    tuning_grid_points: int = TUNING_GRID_POINTS
    """Values a grid search takes from each continuous range."""
    tuning_max_grid: int = TUNING_MAX_GRID
    """The largest grid a tuning job accepts when its request leaves ``max_trials`` at 0."""
    predict_coverage: float = 0.8
    """Nominal coverage of Predict's intervals when the request leaves ``coverage`` at 0."""
    ray_address: str = ""
    """A Ray cluster for training jobs and tuning trials (needs ``swarmlearn[ray]``): ``auto`` (the
    cluster this machine joined with ``ray start``), ``host:port`` (its GCS) or ``ray://host:port``
    (Ray Client); empty: they run in local processes."""
    ray_num_cpus_per_trial: float = 1.0
    """CPUs each Ray task (a trial, or a training job) asks for; torch uses as many threads, at least 1."""
    ray_num_gpus_per_trial: float = 0.0
    """GPUs each Ray task asks for (fractions share a GPU); a task given one trains on CUDA."""

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, Path):  # accept str from embedding code
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in _OPTIONAL_PATHS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value) if str(value) else None)
        _check(self.listen.strip() != "", "listen", "must not be empty")
        _check(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {', '.join(_LOG_LEVELS)}")
        _check(self.grace_period_s >= 0, "grace_period_s", "must be >= 0")
        _check(1 <= self.max_batch_events <= 1_000_000, "max_batch_events", "must be in [1, 1000000]")
        _check(self.max_message_bytes >= 1024 * 1024, "max_message_bytes", "must be >= 1 MiB")
        _check(self.max_stream_inflight_events >= 1, "max_stream_inflight_events", "must be >= 1")
        _check(
            self.sqlite_synchronous in _SYNCHRONOUS, "sqlite_synchronous", f"must be one of {', '.join(_SYNCHRONOUS)}"
        )
        _check(self.group_commit_max_events >= 1, "group_commit_max_events", "must be >= 1")
        _check(self.max_agents >= 0, "max_agents", "must be >= 0 (0: no limit)")
        _check(self.max_concurrent_streams >= 1, "max_concurrent_streams", "must be >= 1")
        _check(self.max_streams_per_connection >= 1, "max_streams_per_connection", "must be >= 1")
        _check(self.ingest_idle_timeout_s >= 0, "ingest_idle_timeout_s", "must be >= 0 (0: no timeout)")
        _check(self.retention_max_age_s >= 0, "retention_max_age_s", "must be >= 0 (0: keep forever)")
        _check(self.retention_max_events >= 0, "retention_max_events", "must be >= 0 (0: no limit)")
        _check(0 < self.retention_interval_s <= 86_400, "retention_interval_s", "must be in (0, 86400]")
        _check(self.log_format in _LOG_FORMATS, "log_format", f"must be one of {', '.join(_LOG_FORMATS)}")
        _check(
            self.metrics_listen == "" or _is_host_port(self.metrics_listen),
            "metrics_listen",
            "must be host:port or empty",
        )
        _check(0 <= self.online_workers <= 64, "online_workers", "must be in [0, 64]")
        _check(self.online_snapshot_interval_s > 0, "online_snapshot_interval_s", "must be > 0")
        _check(self.online_resident_agents >= 1, "online_resident_agents", "must be >= 1")
        _check(self.prompt_resident_agents >= 1, "prompt_resident_agents", "must be >= 1")
        _check(self.online_max_wait_s >= 0, "online_max_wait_s", "must be >= 0")
        _check(
            math.isfinite(self.predict_answer_within_s) and self.predict_answer_within_s >= 0,
            "predict_answer_within_s",
            "must be finite and >= 0 (0: always wait)",
        )
        _check(self.online_max_lag_events >= 0, "online_max_lag_events", "must be >= 0 (0: no limit)")
        _check(self.online_stop_timeout_s > 0, "online_stop_timeout_s", "must be > 0")
        _check(self.retrain_every_events >= 0, "retrain_every_events", "must be >= 0")
        _check(self.retrain_every_s >= 0, "retrain_every_s", "must be >= 0")
        _check(
            self.retrain_model_kind in MODEL_KINDS,
            "retrain_model_kind",
            "lstm, tcn, nbeats or ensemble",
        )
        _check(self.replay_recent_events >= 0, "replay_recent_events", "must be >= 0 (0: no bound)")
        _check(self.replay_older_events >= 0, "replay_older_events", "must be >= 0")
        _check(1 <= self.training_threads <= 256, "training_threads", "must be in [1, 256]")
        _check(0 <= self.promotion_margin < 1, "promotion_margin", "must be in [0, 1)")
        _check(0 < self.promotion_alpha <= 1, "promotion_alpha", "must be in (0, 1]")
        _check(1 <= self.tuning_concurrency <= 64, "tuning_concurrency", "must be in [1, 64]")
        _check(1 <= self.tuning_max_epochs <= 10_000, "tuning_max_epochs", "must be in [1, 10000]")
        _check(1 <= self.tuning_grid_points <= 100, "tuning_grid_points", "must be in [1, 100]")
        _check(1 <= self.tuning_max_grid <= 100_000, "tuning_max_grid", "must be in [1, 100000]")
        _check(0 < self.predict_coverage < 1, "predict_coverage", "must be in (0, 1)")
        _check(
            self.ray_address in ("", "auto") or _is_host_port(self.ray_address.removeprefix("ray://"), bare=True),
            "ray_address",
            "must be empty, auto, host:port or ray://host:port",
        )
        _check(0 < self.ray_num_cpus_per_trial <= 1024, "ray_num_cpus_per_trial", "must be in (0, 1024]")
        _check(0 <= self.ray_num_gpus_per_trial <= 64, "ray_num_gpus_per_trial", "must be in [0, 64]")
        _check((self.tls_cert is None) == (self.tls_key is None), "tls_cert", "tls_cert and tls_key go together")
        _check(self.tls_client_ca is None or self.tls_cert is not None, "tls_client_ca", "needs tls_cert and tls_key")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def db_path(self) -> Path:
        return DataDir(self.data_dir).events


def _is_host_port(value: str, *, bare: bool = False) -> bool:
    """``bare``: the host is a name or an address, no scheme or path."""
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and int(port) < 65536 and not (bare and "/" in host)


def _check(ok: bool, name: str, reason: str) -> None:
    if not ok:
        raise SettingsError(f"setting {name}: {reason}")


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Settings))


def _coerce(name: str, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's type."""
    default = getattr(Settings(), name)
    if name in _OPTIONAL_PATHS:
        return Path(os.path.expanduser(str(raw))) if str(raw) else None
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes")
        if isinstance(default, Path):
            return Path(os.path.expanduser(str(raw)))
        if isinstance(default, int):
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if name in ("log_level", "sqlite_synchronous"):
            return str(raw).upper()
        if name == "log_format":
            return str(raw).lower()
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name}: cannot use {raw!r} as {type(default).__name__}") from None


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults < TOML file < ``SWARMLEARN_*`` environment < ``overrides`` (flags).

    ``overrides`` entries that are None are ignored, so unset flags do not mask lower layers.
    Unknown keys in the file or the environment are errors, not silently dropped typos.
    """
    environ = os.environ if environ is None else environ
    names = set(field_names())
    values: dict[str, Any] = {}
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        try:
            document = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise SettingsError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from None
        section = document.get("swarmlearn", document)
        for key, raw in section.items():
            if key not in names:
                raise SettingsError(f"config file {config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    for env_key, raw in environ.items():
        if not env_key.startswith(ENV_PREFIX) or env_key == ENV_PREFIX + "CONFIG":
            continue
        key = env_key[len(ENV_PREFIX) :].lower()
        if key not in names:
            raise SettingsError(f"environment {env_key}: unknown setting {key!r}")
        values[key] = _coerce(key, raw)
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in names:
            raise SettingsError(f"unknown setting {key!r}")
        values[key] = _coerce(key, raw)
    return Settings(**values)
