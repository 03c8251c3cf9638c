"""Checkpoints: one file that rebuilds a model on its own, safe to load.

The file is a ``torch.save`` of a plain dict, ``{"format", "version", "header", "state_dict"}``: the
header is one JSON string (kind, config, shape, scaler state, metrics, free-form metadata) and the
state dict holds tensors only. Nothing in it needs unpickling beyond what
``torch.load(weights_only=True)`` allows, so a checkpoint cannot run code when it is read.

It is written by ``swarmlearn._durable.write_durably`` (mode 0600): a temporary file in the same
directory, fsynced, renamed over the target, and the directory fsynced, so a crash leaves the old file
or the new one, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from swarmlearn._durable import write_durably
from swarmlearn.models._base import Forecaster, ForecastShape
from swarmlearn.models._kinds import ModelConfig, build_model, config_from_dict, config_to_dict

FORMAT = "swarmlearn-checkpoint"
VERSION = 1


class Checkpoint(NamedTuple):
    kind: str
    config: ModelConfig
    shape: ForecastShape
    state_dict: dict[str, torch.Tensor]
    scaler: dict[str, Any]
    """The scaler's state as the training package wrote it (JSON values); opaque to this package."""
    metrics: dict[str, Any]
    metadata: dict[str, Any]

    def build(self, device: torch.device | str = "cpu") -> Forecaster:
        """The model with these weights, in eval mode."""
        model = build_model(self.config, self.shape)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def save_checkpoint(
    path: Path | str,
    model: Forecaster,
    *,
    scaler: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` (its kind, config, shape and weights) with the given JSON-able extras to ``path``."""
    header = {
        "kind": model.kind,
        "config": config_to_dict(model.config),
        "shape": config_to_dict(model.shape),
        "scaler": dict(scaler or {}),
        "metrics": dict(metrics or {}),
        "metadata": dict(metadata or {}),
        "torch": torch.__version__,
    }
    document = {
        "format": FORMAT,
        "version": VERSION,
        "header": json.dumps(header),  # raises TypeError on anything that is not plain data
        "state_dict": {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()},
    }
    write_durably(Path(path), lambda temporary: torch.save(document, temporary), mode=0o600)


def write_checkpoint_bytes(path: Path | str, data: bytes) -> None:
    """Land the bytes of a checkpoint written elsewhere (a Ray worker's) as ``save_checkpoint`` writes
    one: atomically and durably."""
    write_durably(Path(path), data, mode=0o600)


def load_checkpoint(path: Path | str, *, map_location: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ``ValueError`` if the file is not one."""
    document = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a swarmlearn checkpoint")
    if document.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {document.get('version')}, this release reads {VERSION}")
    header = json.loads(document["header"])
    return Checkpoint(
        kind=header["kind"],
        config=config_from_dict(header["kind"], header["config"]),
        shape=ForecastShape(**header["shape"]),
        state_dict=document["state_dict"],
        scaler=header["scaler"],
        metrics=header["metrics"],
        metadata=header["metadata"],
    )
