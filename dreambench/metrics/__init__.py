"""Metrics: each aggregated metric declared once (:mod:`.registry`), pure functions over embeddings
(:mod:`.functional`), backbone wrappers and the real-image embedding cache (:mod:`.embed`), image decoding
(:mod:`.decode`), named conventions (:mod:`.profiles`) and the folder scorer behind ``dreambench score``
(:mod:`.scoring`, with one module per job beside it). Definitions: docs/metrics.md."""

from .profiles import MetricProfile, get_metric_profile, list_metric_profiles, register_metric_profile
from .registry import Metric, get_metric, list_metrics, register_metric

__all__ = ["Metric", "MetricProfile", "ScoreResult", "get_metric", "get_metric_profile", "list_metric_profiles",
           "list_metrics", "register_metric", "register_metric_profile", "score_folder"]


def __getattr__(name: str):
    # scoring pulls in torch/pandas; importing the package for a profile lookup should not
    if name in ("score_folder", "ScoreResult"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(name)
