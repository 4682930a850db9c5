"""The public analysis API (analysis/__init__.py): one tidy vocabulary, and the report's numbers are the API's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from advlegit import analysis, main
from advlegit.analysis import TIDY_COLUMNS, AnalysisError, analyse, apply_exclusions, fit_task, load_export, make_config


@pytest.fixture(scope="module")
def study(mixed_export):
    return analyse(mixed_export, n_boot=100)


def test_every_public_name_resolves_and_is_documented():
    for name in analysis.__all__:
        obj = getattr(analysis, name)
        if callable(obj) and name != "AnalysisError":
            assert obj.__doc__ and "Examples" in obj.__doc__, f"{name} needs a numpydoc docstring with Examples"


def test_every_task_and_model_in_one_tidy_vocabulary(study):
    from advlegit.analysis.tasks import TASKS

    assert list(study.tasks) == list(TASKS)
    assert list(study.table.columns) == TIDY_COLUMNS
    for task, res in study.tasks.items():
        assert set(res.table["model"]) == {"primary", "mixed"}, task
        t = res.primary.table
        assert (t["ci_low"] <= t["estimate"]).all() and (t["estimate"] <= t["ci_high"]).all(), task
        assert t["p_value"].between(0, 1).all() and (t["p_adjusted"] >= t["p_value"]).all(), task


def test_summary_and_plot(study):
    text = study.summary()
    for task, res in study.tasks.items():
        assert f"{task}, primary model" in text
        assert res.primary.table["term"].iat[0] in res.primary.summary()
    fig = study["identify"].plot()
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "log odds ratio"


def test_report_numbers_are_the_api_numbers(mixed_export, study, tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["analyze", mixed_export, "-o", str(out), "--n-boot", "100",
                                    "--r-crosscheck", "off"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    estimate = {"identify": "log_or", "rate": "mean_diff", "explain": "mean_diff", "compare": "log_odds",
                "explain_pair": "log_odds"}
    for task, col in estimate.items():
        report = pd.read_csv(out / "tables" / f"{task}_primary.csv")
        api = study[task].primary.table
        assert list(report["contrast"]) == list(api["term"])
        np.testing.assert_allclose(report[col], api["estimate"], rtol=1e-9)
        np.testing.assert_allclose(report["p_holm"], api["p_adjusted"], rtol=1e-9)
    tidy = pd.read_csv(out / "tables" / "models.csv", keep_default_na=False, na_values=[""])
    api = study.table[~((study.table["task"] == "compare") & (study.table["model"] == "mixed"))]  # API-only model
    assert list(tidy.columns) == TIDY_COLUMNS
    pd.testing.assert_frame_equal(
        tidy[["task", "model", "term"]], api[["task", "model", "term"]].reset_index(drop=True)
    )
    np.testing.assert_allclose(tidy["estimate"], api["estimate"], rtol=1e-9)
    report = pd.read_csv(out / "tables" / "identify_mixed_model.csv")
    np.testing.assert_allclose(report["estimate"], study["identify"].secondary["mixed"].table["estimate"], rtol=1e-6)


def test_a_frame_and_a_file_give_the_same_fit(mixed_export):
    raw = pd.read_csv(mixed_export, dtype=str, keep_default_na=False)
    a = fit_task(apply_exclusions(load_export(raw)).data, "rate", mixed=False)
    b = fit_task(apply_exclusions(load_export(mixed_export)).data, "rate", mixed=False)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_options_change_the_fit_and_bad_ones_are_named(mixed_export):
    ex = apply_exclusions(load_export(mixed_export))
    wide = fit_task(ex.data, "identify", mixed=False).primary.table
    narrow = fit_task(ex.data, "identify", {"alpha": 0.01}, mixed=False).primary.table
    assert ((narrow["ci_high"] - narrow["ci_low"]) > (wide["ci_high"] - wide["ci_low"])).all()
    with pytest.raises(AnalysisError, match="no_such_option"):
        make_config(no_such_option=1)
    with pytest.raises(AnalysisError, match="unknown task"):
        fit_task(ex.data, "guess", mixed=False)
    with pytest.raises(AnalysisError, match="apply_exclusions"):  # the export itself, practice trials and all
        fit_task(load_export(mixed_export), "identify", mixed=False)
    with pytest.raises(AnalysisError, match="path or a pandas DataFrame"):
        load_export(42)


def test_options_are_read_by_the_one_validator():
    """contracts/validation.py: a misspelt option is named with the one meant, a bad value with its rule."""
    with pytest.raises(AnalysisError, match=r"^alhpa: unknown field \(did you mean 'alpha'\?"):
        make_config(alhpa=0.01)
    with pytest.raises(AnalysisError, match=r"^n_boot: must be >= 50, got 10$"):
        make_config({"n_boot": 10})
    assert make_config(complete_states=["data_complete"]).complete_states == ("data_complete",)
