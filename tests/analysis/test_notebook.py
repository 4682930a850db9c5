"""examples/analysis.ipynb runs top to bottom on a small simulated export, and reproduces the primary result."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from advlegit.analysis.simulate import SimDesign, simulate, write_export

ROOT = Path(__file__).resolve().parents[2]
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", ""))
        out.append(str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_example_notebook_runs_and_reproduces_the_primary_result(tmp_path, monkeypatch):
    export = write_export(simulate(SimDesign(defenses=("normal", "gradreg_y", "adv"), effects={"gradreg_y": 0.8},
                                             n_participants=14, trials_per_participant=18), seed=5),
                          tmp_path / "export.csv")
    monkeypatch.setenv("ADVLEGIT_EXAMPLE_EXPORT", str(export))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(ROOT / "examples" / "analysis.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert str(export) in _text(code[0])  # it analysed the export it was given, not a simulated stand-in
    assert "identify, primary model" in _text(code[2])
    assert (tmp_path / "participant_rates.png").stat().st_size > 0
    # both figures are shown in the notebook (the report's off-screen backend must not take over a kernel)
    shown = [c for c in code if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(shown) == 2, [c.source[:40] for c in shown]
    # the custom statsmodels fit of the primary model's formula gives the API's estimates
    from advlegit.analysis import apply_exclusions, fit_identify, load_export

    res = fit_identify(apply_exclusions(load_export(export)).data, mixed=False)
    table = _text(next(c for c in code if "advlegit primary" in c.source))
    for est in res.primary.table["estimate"]:
        assert f"{est:.6f}" in table
