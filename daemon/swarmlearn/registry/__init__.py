"""The model registry: versions per scope and model kind, one champion per scope, promotion rule, and
the best configuration tuning found."""

from swarmlearn.registry._registry import REGISTRY_FILE, Decision, ModelRegistry, ModelVersion, TunedConfig, decide

__all__ = ["REGISTRY_FILE", "Decision", "ModelRegistry", "ModelVersion", "TunedConfig", "decide"]
