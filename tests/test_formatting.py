"""The one formatter of a score with its interval, as each place that shows metrics writes it."""
from __future__ import annotations

import math

from mmpost.evaluation.formatting import weighted_f1_cell, with_interval
from mmpost.evaluation.html_report import num as html_num
from mmpost.evaluation.markdown_report import metrics_section
from mmpost.evaluation.report import metrics_table
from mmpost.evaluation.report_content import RunReport

SCORED = {"weighted_f1": 0.81234, "macro_f1": 0.7, "accuracy": 0.8, "mcc": 0.6, "n": 40,
          "weighted_f1_ci95": [0.7901, 0.8333]}
NO_INTERVAL = {k: v for k, v in SCORED.items() if k != "weighted_f1_ci95"}


def test_a_score_and_its_interval():
    assert weighted_f1_cell(SCORED) == "0.812 (0.790–0.833)"
    assert weighted_f1_cell(NO_INTERVAL) == "0.812"
    assert weighted_f1_cell(SCORED, label="95% CI ") == "0.812 (95% CI 0.790–0.833)"
    assert with_interval(0.5, [], label="x ") == "0.500"


def test_each_writer_keeps_its_way_of_writing_a_number():
    assert weighted_f1_cell({"weighted_f1": math.nan, "weighted_f1_ci95": [0.1, math.nan]}, html_num) == \
        "— (0.100–—)"
    assert "| test | 0.812 (95% CI 0.790–0.833) | 0.700 |" in metrics_table([("test", SCORED)])
    assert "| test · sentiment | 0.812 (0.790–0.833) | 0.700 |" in metrics_section(
        RunReport(title="t", facts=[], metrics=[("test · sentiment", SCORED)]))


def test_the_terminal_table_uses_the_same_cell(capsys):
    from mmpost.cli import _metrics_table
    _metrics_table("run", {"test": {"sentiment": SCORED}})
    assert "0.812 (0.790–0.833)" in capsys.readouterr().out
