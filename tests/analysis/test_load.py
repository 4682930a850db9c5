import pandas as pd
import pytest

from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.load import read_export
from advlegit.analysis.schema import EXPORT_COLUMNS
from advlegit.analysis.simulate import write_export


def test_csv_and_jsonl_round_trip(identify_df, tmp_path):
    csv = read_export(write_export(identify_df, tmp_path / "a.csv"))
    jsonl = read_export(write_export(identify_df, tmp_path / "a.jsonl"))
    pd.testing.assert_frame_equal(csv, jsonl, check_dtype=False)
    pd.testing.assert_frame_equal(csv, identify_df, check_dtype=False)
    assert list(csv.columns[: len(EXPORT_COLUMNS)]) == list(EXPORT_COLUMNS)
    assert csv["target_hit"].dtype == "boolean"


def test_missing_columns_are_named(identify_df, tmp_path):
    path = write_export(identify_df.drop(columns=["rt_ms", "defense"]), tmp_path / "m.csv")
    with pytest.raises(AnalysisError, match="missing required columns: defense, rt_ms"):
        read_export(path)


def test_task_specific_columns(identify_df, tmp_path):
    path = write_export(identify_df.drop(columns=["target_hit"]), tmp_path / "m.csv")
    with pytest.raises(AnalysisError, match="identify responses need columns.*target_hit"):
        read_export(path)


def test_unknown_task_type(identify_df, tmp_path):
    d = identify_df.copy()
    d.loc[3, "task_type"] = "sort"
    with pytest.raises(AnalysisError, match="unknown task types: 'sort'"):
        read_export(write_export(d, tmp_path / "t.csv"))


def test_bad_boolean(identify_df, tmp_path):
    d = identify_df.astype({"target_hit": object})
    d.loc[0, "target_hit"] = "maybe"
    with pytest.raises(AnalysisError, match="'target_hit' has non-boolean"):
        read_export(write_export(d, tmp_path / "b.csv"))


def test_empty_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AnalysisError, match="empty"):
        read_export(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(EXPORT_COLUMNS) + "\n")
    with pytest.raises(AnalysisError, match="no rows"):
        read_export(tmp_path / "header.csv")
