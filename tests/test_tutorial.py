"""The tutorial notebook (docs/tutorial.ipynb) runs from top to bottom with the installed package, and what it
shows holds: the spiking rates follow the mean field, and Elephant sees every recorded cell fire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def test_the_tutorial_notebook_runs_and_shows_what_it_says(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
                     for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)
    images = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
              if "image/png" in out.get("data", {})]
    assert images, "the raster is drawn"
    correlation = float(re.search(r"correlation (\d\.\d+)", text).group(1))  # type: ignore[union-attr]
    assert correlation > 0.9, text
    assert "95 spike trains" in text
    rates = [float(r) for r in re.findall(r"mean rate +(\d+\.\d) Hz", text)]
    assert len(rates) == 8 and all(50.0 < r < 400.0 for r in rates), text  # 8 populations, below ν_max = 400 Hz
