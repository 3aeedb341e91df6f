"""Training and testing from the command line on real data: the full Fashion-MNIST (Debian's
dataset-fashion-mnist, installed by .ci/run) and a DIR_Database folder of PNG images."""
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from n2d2x.cli import main
from n2d2x.data import bundled_mnist_path, read_idx

def final_rate(out):
    m = re.search(r'Final recognition rate: ([0-9.]+)%', out)
    assert m, out[-2000:]
    return float(m[1])


def test_fashion_mnist_learns_from_cli(fashion_trained):
    d, out = fashion_trained  # 3 epochs from the command line, see conftest.py
    rate = final_rate(out)
    assert rate >= 86.0, rate                      # 2 epochs reach 86.5%, 5 epochs 88.7% (see the issue note)
    assert (d / 'weights_validation' / 'conv1_weights.syntxt').exists()
    assert (d / 'softmax.Target' / 'ConfusionMatrix_test.dat').exists()


DIR_INI = """
[database]
Type=DIR_Database
DataPath={path}
Learn=0.7
Validation=0.1
Depth=1

[sp]
SizeX=20
SizeY=20
BatchSize=16

[sp.Transformation-crop]
Type=PadCropTransformation
Width=[sp]SizeX
Height=[sp]SizeY

[conv1]
Input=sp
Type=Conv
KernelSize=5
NbOutputs=8
Stride=2
ActivationFunction=Rectifier
WeightsFiller=HeFiller
Solvers.LearningRate=0.05
Solvers.Momentum=0.9

[fc]
Input=conv1
Type=Fc
NbOutputs=3
Solvers.LearningRate=0.05
Solvers.Momentum=0.9

[softmax]
Input=fc
Type=Softmax
NbOutputs=3
WithLoss=1

[softmax.Target]
"""


def test_dir_database_of_png_files_learns_from_cli(tmp_path, monkeypatch, capsys):
    images = read_idx(bundled_mnist_path() / 'train-images-idx3-ubyte.gz')
    labels = read_idx(bundled_mnist_path() / 'train-labels-idx1-ubyte.gz')
    for digit, name in ((0, 'zero'), (1, 'one'), (7, 'seven')):
        d = tmp_path / 'images' / name
        d.mkdir(parents=True)
        for i, img in enumerate(images[labels == digit][:120]):
            assert cv2.imwrite(str(d / f'{i:03d}.png'), img)
    (tmp_path / 'net.ini').write_text(DIR_INI.format(path=tmp_path / 'images'))
    monkeypatch.chdir(tmp_path)
    assert main(['net.ini', '-seed', '3', '-learn-epoch', '4', '-test']) == 0
    assert final_rate(capsys.readouterr().out) >= 90.0   # three very different digits


def test_learning_reads_missing_data_as_an_error(tmp_path, monkeypatch, capsys):
    (tmp_path / 'net.ini').write_text(DIR_INI.format(path=tmp_path / 'nowhere'))
    monkeypatch.chdir(tmp_path)
    assert main(['net.ini', '-seed', '3', '-learn-epoch', '1']) == 1
    assert 'nowhere' in capsys.readouterr().err
