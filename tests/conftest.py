"""Fixtures shared by the tests: the fixtures folder, the n2d2x command run in-process, accuracy, and a LeNet trained
on Fashion-MNIST by the command (once per session)."""
import contextlib
import io
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / 'fixtures'
FASHION = Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: over a minute on two cores; runs only with N2D2X_SLOW=1 (as the notebooks\' #| slow cells)')


def pytest_collection_modifyitems(config, items):
    "Skip the tests marked slow unless N2D2X_SLOW=1, the switch of the notebooks' slow cells (tests/test_notebooks.py)."
    if os.environ.get('N2D2X_SLOW'): return
    skip = pytest.mark.skip(reason='slow: run with N2D2X_SLOW=1')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)


def run_n2d2x(argv, cwd, expect=0):
    "Run the n2d2x command in-process from folder `cwd`: what it printed; the test fails unless it exits with `expect`."
    from n2d2x.cli import main
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.chdir(cwd)
        code = main([str(a) for a in argv])
    assert code == expect, out.getvalue()[-3000:]
    return out.getvalue()


def accuracy_percent(scores, labels):
    "Top-1 accuracy in percent of `scores` ([N, classes, ...]) against integer `labels`."
    labels = np.asarray(labels)
    return float((np.asarray(scores).reshape(len(labels), -1).argmax(1) == labels).mean() * 100)


def onnx_scores(model, x, batch=1000):
    "The first output of ONNX model `model` (a path) run in onnxruntime on `x`, `batch` stimuli at a time."
    sess = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


@pytest.fixture
def fixtures():
    return FIXTURES


@pytest.fixture(scope='session')
def n2d2x():
    "`run_n2d2x`: the n2d2x command, in-process, from a given folder."
    return run_n2d2x


@pytest.fixture(scope='session')
def accuracy():
    "`accuracy_percent(scores, labels)`."
    return accuracy_percent


@pytest.fixture(scope='session')
def scores():
    "`onnx_scores(model, x)`: an ONNX model's outputs in onnxruntime."
    return onnx_scores


@pytest.fixture(scope='session')
def fashion_trained(tmp_path_factory, n2d2x):
    """tests/fixtures/fashion_lenet.ini trained by the n2d2x command for 3 epochs on the full Fashion-MNIST
    (Debian's dataset-fashion-mnist, which .ci/run installs): (folder, what the command printed)."""
    if not FASHION.exists(): pytest.fail(f'{FASHION} is missing: apt-get install dataset-fashion-mnist')
    d = tmp_path_factory.mktemp('fashion')
    return d, n2d2x([FIXTURES / 'fashion_lenet.ini', '-seed', '1', '-learn-epoch', '3', '-test'], d)
