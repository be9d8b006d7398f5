"""Evaluation: metrics, BD-rate, classical anchors, the RD runner, plots and the report."""
