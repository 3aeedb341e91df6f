"""The `n2d2x` console script as a user runs it: exit codes, messages, and the files left behind."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from n2d2x.network import model_path

EXE = shutil.which('n2d2x') or str(Path(sys.executable).parent / 'n2d2x')
LENET = str(model_path('n2d2/LeNet.ini'))


def n2d2x(*args, cwd):
    return subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help(tmp_path):
    r = n2d2x('-h', cwd=tmp_path)
    assert r.returncode == 0 and '-nbbits' in r.stdout and '-export' in r.stdout


def test_float_export_runs_in_onnxruntime(tmp_path):
    r = n2d2x(LENET, '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(str(tmp_path / 'export_ONNX_float32' / 'model.onnx'), providers=['CPUExecutionProvider'])
    (y,) = sess.run(None, {'env': np.zeros((3, 1, 32, 32), np.float32)})
    assert y.shape[:2] == (3, 10)
    np.testing.assert_allclose(y.reshape(3, 10).sum(1), 1, rtol=1e-5)


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    for d, seed in (('a', '1'), ('b', '1'), ('c', '2')):
        (tmp_path / d).mkdir()
        assert n2d2x(LENET, '-seed', seed, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path / d).returncode == 0
    read = lambda d: (tmp_path / d / 'export_ONNX_float32' / 'model.onnx').read_bytes()
    assert read('a') == read('b') and read('a') != read('c')


@pytest.mark.parametrize('text,where', [
    ("[sp]\nSizeX=8\nSizeY=8\n[conv]\nInput=sp\nType=Conv\nKernelDims 3 3\n", 'net.ini:7:'),
    ("[sp]\nSizeX=8\nSizeY=8\n[sp]\n", 'net.ini:4:'),
    ("[sp]\nSizeX=8\nSizeY=8\n[c]\nInput=sp\nType=Conv\nKernelDims=3 3\nNbOutputs=$(2 +* 3)\n[c.Target]\n", 'net.ini:8:'),
    ("[sp]\nSizeX=8\nSizeY=8\n[c]\nInput=sp\nType=Deconvolution\n[c.Target]\n", 'net.ini:6:'),
    ("[sp]\nSizeX=8\nSizeY=8\n[c]\nInput=sp\nType=Fc\nNbOutputs=4\nNbOutput=4\n[c.Target]\n", 'net.ini:8:'),
])
def test_bad_ini_exit_1_with_file_and_line(tmp_path, text, where):
    (tmp_path / 'net.ini').write_text(text)
    r = n2d2x('net.ini', '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 1
    assert where in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.glob('export_*'))


def test_missing_weights_dir_and_file(tmp_path):
    r = n2d2x(LENET, '-seed', '1', '-w', 'nowhere', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 1 and 'nowhere' in r.stderr
    (tmp_path / 'w').mkdir()
    r = n2d2x(LENET, '-seed', '1', '-w', 'w', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 1 and 'conv1_weights.syntxt' in r.stderr
    assert not list(tmp_path.glob('export_*'))


def test_integer_export_without_calibration_is_refused(tmp_path):
    r = n2d2x(LENET, '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', cwd=tmp_path)  # -nbbits defaults to 8
    assert r.returncode == 1 and 'calib' in r.stderr
    assert not list(tmp_path.glob('export_*'))


def test_seed_zero_needs_seed_dat(tmp_path):
    r = n2d2x(LENET, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 1 and 'seed.dat' in r.stderr
    (tmp_path / 'seed.dat').write_text('1\n')
    assert n2d2x(LENET, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path).returncode == 0


NET = "[database]\nType=MNIST_IDX_Database\nValidation=0.2\n[sp]\nSizeX=8\nSizeY=8\n[sp.Transformation-1]\nType=RescaleTransformation\nWidth=8\nHeight=8\n" \
      "[c]\nInput=sp\nType=Conv\nKernelDims=3 3\nNbOutputs=2\n[c.Target]\n"


@pytest.mark.parametrize('old,new,where', [
    ('Validation=0.2', 'Validation=-inf', 'net.ini:3: [database]Validation'),                        # read although the float path needs no data
    ('Type=RescaleTransformation', 'Type=Transformer', "net.ini:8: [sp.Transformation-1]: unknown transformation type"),
    ('SizeY=8\n', 'SizeY=8\nBogus=1\n', 'net.ini:7: [sp]: unknown key Bogus'),
    ('KernelDims=3 3\n', 'KernelDims=3 3\nStride=0\n', 'net.ini:15: [c]: Stride 0 x 0'),            # was a ZeroDivisionError (exit 2)
    ('NbOutputs=2', 'NbOutputs=١٢', 'net.ini:15: [c]NbOutputs: expected an integer'),                 # Arabic-Indic digits were read as 12
])
def test_float_export_checks_every_section(tmp_path, old, new, where):
    "Issue 16: the float export refuses what the integer export refuses, in one line naming file and line, and writes nothing."
    assert old in NET
    (tmp_path / 'net.ini').write_text(NET.replace(old, new))
    r = n2d2x('net.ini', '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32', cwd=tmp_path)
    assert r.returncode == 1 and where in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net.ini']
