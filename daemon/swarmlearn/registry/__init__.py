"""The model registry: versions per scope and model kind, one champion per scope, promotion rule."""

from swarmlearn.registry._registry import REGISTRY_FILE, Decision, ModelRegistry, ModelVersion, decide

__all__ = ["REGISTRY_FILE", "Decision", "ModelRegistry", "ModelVersion", "decide"]
