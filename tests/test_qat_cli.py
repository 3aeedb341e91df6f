"""Quantization-aware training from the command line, checked from outside n2d2x (issue 6's "done when").

An INI that no notebook uses (tests/fixtures/fashion_lenet.ini with SAT or LSQ quantizers at 4 bits, written here)
learns one epoch on Fashion-MNIST from the float weights of the `fashion_trained` fixture (`-w`), then is exported by
`-qat-sat` to an 8-bit integer ONNX model (4-bit levels, 8-bit stimuli as N2D2 exports them). The Fashion-MNIST test
set is then read here with gzip and numpy, the input quantized as the export's Readme.txt states it, and both the
integer model and the float network's own float export run in onnxruntime: the integer model must be within 1
point of the float network, and equal, on the exported stimuli, the integers the simulation wrote beside them.
"""
import gzip, re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest


FIXTURES = Path(__file__).parent / 'fixtures'
FASHION = Path('/usr/share/datasets/fashion-mnist')

# quantizer keys added to the float INI: 4-bit weights (15 levels) on every Conv and Fc, 4-bit activations after the
# ReLU of conv1, conv2 and fc1; the last Fc keeps float logits (no QAct), its range measured at export
QUANTIZERS = {
    'SAT': dict(layer="QWeight=SAT\nQWeight.Range=15\nQAct=SAT\nQAct.Range=15\nQAct.Alpha=4.0\n"
                      "QActSolver=SGD\nQActSolver.LearningRate=0.01\nQActSolver.Momentum=0.9\n",
                last="QWeight=SAT\nQWeight.Range=15\nQWeight.ApplyScaling=1\n"),
    'LSQ': dict(layer="QWeight=LSQ\nQWeight.Range=15\nQAct=LSQ\nQAct.Range=15\n"
                      "QActSolver=SGD\nQActSolver.LearningRate=0.001\nQActSolver.Momentum=0.9\n",
                last="QWeight=LSQ\nQWeight.Range=15\n"),
}


def qat_ini(method):
    "fashion_lenet.ini with the quantizers of `method` and a fine-tuning learning rate."
    q, s = QUANTIZERS[method], (FIXTURES / 'fashion_lenet.ini').read_text()
    parts = [("ActivationFunction=Rectifier\nWeightsFiller=HeFiller\nConfigSection=common.config\n",   # [conv_def]
              "ActivationFunction=Rectifier\nWeightsFiller=HeFiller\nConfigSection=common.config\n" + q['layer']),
             ("NbOutputs=84\nActivationFunction=Rectifier\n", "NbOutputs=84\nActivationFunction=Rectifier\n" + q['layer']),
             ("WeightsFiller=XavierFiller\n", "WeightsFiller=XavierFiller\n" + q['last']),
             ("LearningRate=0.02", "LearningRate=0.005")]
    for old, new in parts:   # the first occurrence: [conv_def]'s lines come before [fc1]'s
        assert old in s, old
        s = s.replace(old, new, 1)
    return s


def fashion_test_set():
    "The 10,000 Fashion-MNIST test images (uint8 [N, 1, 28, 28]) and labels, read from the IDX files directly."
    with gzip.open(FASHION / 't10k-images-idx3-ubyte.gz') as f: x = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(FASHION / 't10k-labels-idx1-ubyte.gz') as f: y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x.reshape(-1, 1, 28, 28), y.astype(np.int64)


def readme_input(readme, pixels):
    "The integer model's input from 8-bit pixels, by the formula the export's Readme.txt states."
    m = re.search(r"input\s+env: (\w+) \[.*\] = clip\(trunc\(x / R \* (\d+)\)\) with R = ([\d.e+-]+)", readme)
    assert m, readme
    dtype, scale, r = np.dtype(m.group(1)), int(m.group(2)), float(m.group(3))
    x = pixels.astype(np.float32) * np.float32(1 / 255)          # N2D2's implicit scaling of 8-bit images
    q = np.trunc(x / np.float32(r) * np.float32(scale))
    return np.clip(q, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


@pytest.fixture(scope='module')
def float_export(fashion_trained, tmp_path_factory, n2d2x):
    "The float network of the fixture, exported to float32 ONNX by n2d2x: (weights folder, model path)."
    d, _ = fashion_trained
    cwd = tmp_path_factory.mktemp('float')
    n2d2x([FIXTURES / 'fashion_lenet.ini', '-seed', 1, '-w', d / 'weights_validation', '-export', 'ONNX', '-nbbits', -32], cwd)
    return d / 'weights_validation', cwd / 'export_ONNX_float32' / 'model.onnx'


@pytest.mark.parametrize('method', ['SAT', 'LSQ'])
def test_qat_from_the_command_line(method, float_export, tmp_path, n2d2x, accuracy, scores):
    float_weights, float_model = float_export
    ini = tmp_path / f'fashion_{method.lower()}4.ini'
    ini.write_text(qat_ini(method))
    learnt = n2d2x([ini, '-seed', 1, '-w', float_weights, '-learn-epoch', 1], tmp_path)
    assert 'Validation' in learnt
    saved = {p.name for p in (tmp_path / 'weights_validation').iterdir()}
    quantizer_files = {'SAT': 'conv1_QAct_SAT_Alpha.syntxt', 'LSQ': 'conv1_QAct_LSQ_StepSize.syntxt'}
    assert quantizer_files[method] in saved and (method != 'LSQ' or 'conv1_alphaW_LSQ.syntxt' in saved), sorted(saved)

    printed = n2d2x([ini, '-seed', 1, '-w', tmp_path / 'weights_validation', '-export', 'ONNX', '-nbbits', 8, '-qat-sat',
                     '-db-export', 100, '-test'], tmp_path)
    assert 'onnxruntime: 10000/10000 outputs identical to the integer simulation' in printed, printed[-2000:]
    export = tmp_path / 'export_ONNX_int8'

    # outside n2d2x: the test set from the IDX files, both models in onnxruntime
    pixels, labels = fashion_test_set()
    int_acc = accuracy(scores(export / 'model.onnx', readme_input((export / 'Readme.txt').read_text(), pixels)), labels)
    float_acc = accuracy(scores(float_model, pixels.astype(np.float32) * np.float32(1 / 255)), labels)
    print(f"{method} W4A4: integer model {int_acc:.2f} %, float network {float_acc:.2f} %")
    assert int_acc >= float_acc - 1.0, (int_acc, float_acc)
    assert float_acc > 85.0

    # the exported stimuli and their expected integers: the model's Softmax input equals them
    import onnx
    model = onnx.shape_inference.infer_shapes(onnx.load(export / 'model.onnx'))
    model.graph.output.append(next(v for v in model.graph.value_info if v.name == 'fc2'))   # the Softmax's input
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    for i in (0, 37, 99):
        raw = (export / 'stimuli' / f'env{i:02d}.pgm').read_bytes()
        header = b'P5\n28 28\n255\n'
        assert raw.startswith(header)
        x = np.frombuffer(raw[len(header):len(header) + 28 * 28], np.uint8).reshape(1, 1, 28, 28)
        want = np.frombuffer((export / 'stimuli' / f'env{i:02d}.out').read_bytes(), '<i4')
        got = sess.run(['fc2'], {'env': x})[0]
        np.testing.assert_array_equal(got.ravel().astype(np.int32), want)
