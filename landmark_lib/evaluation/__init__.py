"""Evaluation: metrics, reports and plots, the recognition threshold, rejection scores, comparing runs."""
