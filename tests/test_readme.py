"""The README keeps true: it is the rendering of `nbs/index.ipynb` (tools/build_readme.py, what nbdev_readme writes), and the
commands of its quick start and second example end with the lines it says they end with."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / 'README.md').read_text()


def test_readme_is_the_landing_notebook_rendered():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _examples():
    "(command, the lines it ends with) of each `sh` block followed by 'It ends with' and a plain block, in README order."
    blocks = re.findall(r'```sh\n([^`]*?)\n```\n\nIt ends with\n\n```\n(.*?)\n```', README, re.S)
    return [(cmd.split('&& ')[-1], expected.split('\n')) for cmd, expected in blocks]


def test_readme_has_its_two_examples():
    cmds = [c for c, _ in _examples()]
    assert [shlex.split(c)[1] for c in cmds] == ['n2d2x/models/LeNet.ini', 'n2d2x/models/MobileNet_ONNX.ini']
    assert all(c.startswith('.venv/bin/n2d2x ') for c in cmds)


@pytest.mark.parametrize('i', [0, 1])
def test_readme_example_ends_as_written(i, tmp_path):
    cmd, expected = _examples()[i]
    argv = shlex.split(cmd)[1:]
    argv = [str(ROOT / a) if (ROOT / a).exists() and not a.startswith('/') else a for a in argv]   # run in tmp_path
    r = subprocess.run([str(Path(sys.executable).parent / 'n2d2x'), *argv], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip('\n').split('\n')[-len(expected):] == expected
    assert (tmp_path / 'export_ONNX_int8' / 'model.onnx').is_file()
