"""The report stage: one self-contained HTML file from a results folder, measuring nothing."""

from reports.build import build_report, headline, load_results, render, write_report

__all__ = ["build_report", "headline", "load_results", "render", "write_report"]
