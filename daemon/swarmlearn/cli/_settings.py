"""The settings a command runs with: the daemon's own (file, environment), with the command's flags on top."""

from __future__ import annotations

import argparse
from typing import Any

from swarmlearn.config import Settings, field_names, load_settings


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    overrides = {name: value for name, value in flags.items() if name in field_names()}
    return load_settings(config_file=args.config, overrides=overrides)
