"""Every notebook in nbs/ runs top to bottom as one test case, so the assertions written beside the prose
are part of the test suite. Cells flagged `#| slow` are skipped unless N2D2X_SLOW=1."""
import os
from pathlib import Path

import pytest
from nbdev.test import test_nb as _run_notebook  # renamed so pytest does not collect it

NBS = sorted((Path(__file__).parent.parent / 'nbs').glob('*.ipynb'))


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    skip = [] if os.environ.get('N2D2X_SLOW') else ['slow']
    ok, _ = _run_notebook(nb, skip_flags=skip)
    assert ok, f'{nb.name} failed (traceback above)'
