"""Every tutorial notebook runs from top to bottom (its own assertions included).

How long each takes on a 2-core CPU is stated in the notebook; a cell that runs
for more than 10 minutes counts as hung."""

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.long
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    # The kernel runs as a reader's would: without the tests' unoptimised compilation (tests/conftest.py),
    # which makes the notebooks' training loops slower than it makes their compilation faster.
    monkeypatch.setenv("XLA_FLAGS", os.environ["JAXMETA_TEST_USER_XLA_FLAGS"])
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
