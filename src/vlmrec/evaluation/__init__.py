"""Evaluation: vectorised metrics, the full-ranking evaluator, significance."""

from vlmrec.evaluation.evaluator import EvalResult, Evaluator
from vlmrec.evaluation.metrics import METRICS, ranking_metrics

__all__ = ["Evaluator", "EvalResult", "METRICS", "ranking_metrics"]
