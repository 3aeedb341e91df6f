import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / 'fixtures'


@pytest.fixture
def fixtures():
    return FIXTURES


FASHION = Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')


@pytest.fixture(scope='session')
def fashion_trained(tmp_path_factory):
    """tests/fixtures/fashion_lenet.ini trained by the n2d2x command for 3 epochs on the full Fashion-MNIST
    (Debian's dataset-fashion-mnist, which .ci/run installs): (folder, what the command printed)."""
    import contextlib, io, os
    from n2d2x.cli import main
    if not FASHION.exists(): pytest.fail(f'{FASHION} is missing: apt-get install dataset-fashion-mnist')
    d = tmp_path_factory.mktemp('fashion')
    out, cwd = io.StringIO(), os.getcwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stdout(out): code = main([str(FIXTURES / 'fashion_lenet.ini'), '-seed', '1', '-learn-epoch', '3', '-test'])
    finally: os.chdir(cwd)
    assert code == 0, out.getvalue()[-3000:]
    return d, out.getvalue()
