"""The seed's example flow end to end: N2D2's `MobileNet_v1_ONNX.ini` pattern (pre-processing, a `Type=ONNX` section,
a target on an imported cell) with n2d2x's own files, exported by the seed's command

    n2d2x n2d2x/models/MobileNet_ONNX.ini -seed 1 -w /dev/null -export ONNX -nbbits 8 -calib -1 -db-export 100 -test

MobileNet_ONNX.ini wraps n2d2x/models/MobileNet_Fashion.onnx (the small MobileNet of MobileNet_Fashion.ini, exported
by n2d2x) and reads the 400 Fashion-MNIST images of n2d2x/data/fashion_dir (28x28 images stored padded to 32x32,
cropped back by a PadCropTransformation). The results are then checked outside n2d2x: the PNG files read with OpenCV
and cropped in numpy, the float model and the exported integer model run in onnxruntime."""
import contextlib, io, re
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from n2d2x.cli import main

ROOT = Path(__file__).resolve().parents[1]
INI, FLOAT_MODEL = ROOT / 'n2d2x/models/MobileNet_ONNX.ini', ROOT / 'n2d2x/models/MobileNet_Fashion.onnx'
IMAGES = ROOT / 'n2d2x/data/fashion_dir'
COMMAND = [str(INI), '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '8', '-calib', '-1', '-db-export', '100', '-test']
IDX = Path('/usr/share/datasets/fashion-mnist')  # Debian's dataset-fashion-mnist


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "(working folder, exit code, printed text) of the seed's command run from an empty folder."
    d, out = tmp_path_factory.mktemp('seed_example'), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.chdir(d)
        code = main(COMMAND)
    return d, code, out.getvalue()


def session(path): return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def read_png(path):
    "A bundled image as N2D2's pre-processing sees it: the 28x28 centre of the 32x32 PNG (uint8), and its label."
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32) and img.dtype == np.uint8
    return img[2:30, 2:30], int(Path(path).parent.name.split('_')[0])


def read_stimulus(path):
    "An exported envNN.pgm: P5 header, 28x28 uint8 values, int32 label."
    magic, size, maxval, rest = Path(path).read_bytes().split(b'\n', 3)
    assert (magic, size, maxval) == (b'P5', b'28 28', b'255') and len(rest) == 28 * 28 + 4
    return np.frombuffer(rest[:784], np.uint8).reshape(1, 28, 28), int(np.frombuffer(rest[784:], '<i4')[0])


def input_formula(export):
    "The uint8 input of the integer model as a function of a stimulus x in [0, 1], from the Readme's formula."
    m = re.search(r'uint8 \[batch, 1, 28, 28\] = clip\(trunc\(x / R \* 255\)\) with R = ([0-9.e+-]+)', (export / 'Readme.txt').read_text())
    assert m, (export / 'Readme.txt').read_text()
    return lambda x: np.clip(np.trunc(x / np.float32(m[1]) * np.float32(255)), 0, 255).astype(np.uint8)


def top1(y): return y.reshape(len(y), -1).argmax(1)


def test_command(run):
    _, code, printed = run
    assert code == 0, printed[-3000:]
    m = re.search(r'fc_gemm\.Target \(300 Test stimuli\): float ([0-9.]+)%, integer simulation ([0-9.]+)%, onnxruntime ([0-9.]+)%', printed)
    assert m, printed
    assert float(m[1]) > 85 and abs(float(m[2]) - float(m[1])) <= 1 and m[3] == m[2]
    assert '300/300 outputs identical to the integer simulation' in printed


def test_export_folder(run):
    exp = run[0] / 'export_ONNX_int8'
    assert (exp / 'model.onnx').is_file() and (exp / 'Readme.txt').is_file()
    files = sorted(p.name for p in (exp / 'stimuli').iterdir())
    assert files == sorted([f'env{i:02d}.pgm' for i in range(100)] + [f'env{i:02d}.out' for i in range(100)])
    assert (exp / 'stimuli.list').read_text().split() == [f'stimuli/env{i:02d}.pgm' for i in range(100)]
    onnx.checker.check_model(onnx.load(exp / 'model.onnx'), full_check=True)


def test_bundled_images_are_fashion_mnist():
    "The cropped PNGs are exactly Debian's Fashion-MNIST test images their names give (400, 40 per class)."
    if not (IDX / 't10k-images-idx3-ubyte.gz').exists(): pytest.skip(f'{IDX} is missing (apt-get install dataset-fashion-mnist)')
    import gzip
    images = np.frombuffer(gzip.decompress((IDX / 't10k-images-idx3-ubyte.gz').read_bytes()), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.decompress((IDX / 't10k-labels-idx1-ubyte.gz').read_bytes()), np.uint8, offset=8)
    pngs = sorted(IMAGES.glob('*/*.png'))
    assert len(pngs) == 400 and [int(p.parent.name[0]) for p in pngs] == [k for k in range(10) for _ in range(40)]
    for p in pngs:
        img, label = read_png(p)
        assert (img == images[int(p.stem)]).all() and label == labels[int(p.stem)]
        assert not cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[[0, 1, 30, 31]].any()   # black border


def test_outside_n2d2x(run):
    "Float model on the PNGs, integer model on the input the Readme's formula gives and on the exported stimuli."
    exp = run[0] / 'export_ONNX_int8'
    pngs = sorted(IMAGES.glob('*/*.png'))
    pixels, labels = map(np.array, zip(*(read_png(p) for p in pngs)))
    x = (pixels[:, None].astype(np.float32) / np.float32(255))          # N2D2's implicit scaling of 8-bit images
    fmodel, imodel, q = session(FLOAT_MODEL), session(exp / 'model.onnx'), input_formula(exp)
    float_pred = top1(fmodel.run(None, {'env': x})[0])
    int_pred = top1(imodel.run(None, {'env': q(x)})[0])
    float_acc, int_acc = (float_pred == labels).mean() * 100, (int_pred == labels).mean() * 100
    assert float_acc > 85 and abs(int_acc - float_acc) <= 1, (float_acc, int_acc)

    # the exported stimuli: the images of stimuli.link, quantized by the formula; the integer outputs of envNN.out
    names = [line.split(maxsplit=1)[1] for line in (exp / 'stimuli.link').read_text().splitlines()]
    for i, name in enumerate(names):
        stim, label = read_stimulus(exp / f'stimuli/env{i:02d}.pgm')
        img, png_label = read_png(name)
        assert label == png_label and (stim == q(img[None].astype(np.float32) / np.float32(255))).all()
        y = imodel.run(None, {'env': stim[None]})[0]
        expected = np.fromfile(exp / f'stimuli/env{i:02d}.out', '<i4')
        assert (y.ravel().astype(np.int32) == expected).all(), (i, y.ravel(), expected)
