"""Measuring: SLO verdicts, attainment and latency summaries."""

from agentflow.metrics.attainment import SLOVerdict, attainment, judge_slo

__all__ = ["SLOVerdict", "attainment", "judge_slo"]
