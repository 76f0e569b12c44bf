"""Evaluation: vectorised metrics, the full-ranking evaluator, segments, significance."""

from vlmrec.evaluation.evaluator import EvalResult, Evaluator
from vlmrec.evaluation.metrics import METRICS, ranking_metrics
from vlmrec.evaluation.segments import BEYOND_METRICS, SEGMENT_GROUPS, SEGMENTS

ALL_METRICS = METRICS + BEYOND_METRICS

__all__ = [
    "ALL_METRICS",
    "BEYOND_METRICS",
    "Evaluator",
    "EvalResult",
    "METRICS",
    "SEGMENTS",
    "SEGMENT_GROUPS",
    "ranking_metrics",
]
