"""The seed's command on a network and data the exporter was not written for: the Fashion-MNIST LeNet-class of
tests/fixtures/fashion_lenet.ini, trained by n2d2x (conftest.py), exported with
`-export ONNX -nbbits 8 -calib -1 -db-export N -test` and its variations. The exported files are then run
outside n2d2x: onnxruntime on model.onnx, fed with the stimuli files the export wrote, scored with the labels
those files carry."""
import re

import numpy as np
import onnxruntime as ort
import pytest

from n2d2x.export import implicit_evaluator

N = 1000  # exported test stimuli


def read_stimuli(export):
    """The exported stimuli/envNN.pgm files as N2D2 writes them: header, planar C,H,W values of the model's input
    type (which the header's 255 / 65535 does not tell apart from float32: the model's input says), int32 label."""
    import onnx
    dt = onnx.helper.tensor_dtype_to_np_dtype(onnx.load(export / 'model.onnx').graph.input[0].type.tensor_type.elem_type)
    xs, labels = [], []
    for line in (export / 'stimuli.list').read_text().split():
        magic, size, maxval, rest = (export / line).read_bytes().split(b'\n', 3)
        w, h = map(int, size.split())
        assert magic == b'P5' and int(maxval) == (255 if dt.itemsize == 1 else 65535)
        xs.append(np.frombuffer(rest[:w * h * dt.itemsize], dt).reshape(1, h, w))
        labels.append(np.frombuffer(rest[w * h * dt.itemsize:], '<i4')[0])
    return np.stack(xs), np.array(labels)


def _ini():
    from pathlib import Path
    return Path(__file__).parent / 'fixtures' / 'fashion_lenet.ini'


def export(n2d2x, d, tmp, *extra):
    "The seed's command on the Fashion-MNIST LeNet's weights `d`, run from `tmp` (`n2d2x`: the fixture): what it printed."
    return n2d2x([_ini(), '-seed', '1', '-w', d / 'weights_validation', '-export', 'ONNX', '-calib', '-1',
                      '-db-export', N, '-test', '-nb-test', N, *extra], tmp)


VARIANTS = {
    'Single-shift': [], 'Double-shift': ['-act-rescaling-mode', 'Double-shift'],
    'Fixed-point16': ['-act-rescaling-mode', 'Fixed-point16'], 'Fixed-point32': ['-act-rescaling-mode', 'Fixed-point32'],
    'Floating-point': ['-act-rescaling-mode', 'Floating-point'], 'per-output': ['-act-rescale-per-output', '1'],
    'ImplicitCasting=1': ['@ImplicitCasting=1'], 'FakeQuantization=1': ['@FakeQuantization=1'], '4 bits': ['-nbbits', '4']}


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_seed_command_variant(variant, fashion_trained, tmp_path, n2d2x, accuracy):
    d, _ = fashion_trained
    extra = list(VARIANTS[variant])
    if extra and extra[0].startswith('@'):
        (tmp_path / 'params.ini').write_text(extra[0][1:] + '\n')
        extra = ['-export-parameters', str(tmp_path / 'params.ini')]
    nbbits = extra[extra.index('-nbbits') + 1] if '-nbbits' in extra else '8'
    printed = export(n2d2x, d, tmp_path, *(extra if '-nbbits' in extra else ['-nbbits', '8', *extra]))
    m = re.search(r'float ([0-9.]+)%, integer simulation ([0-9.]+)%, (\S+) ([0-9.]+)%', printed)
    assert m, printed[-2000:]
    float_acc, sim_acc = float(m[1]), float(m[2])
    assert re.search(rf'{N}/{N} outputs identical to the integer simulation', printed), printed[-2000:]

    # outside n2d2x: the exported file on the exported stimuli files
    exp = tmp_path / f'export_ONNX_int{nbbits}'
    x, labels = read_stimuli(exp)
    assert len(x) == N
    if variant == 'ImplicitCasting=1':   # not type-strict on purpose: evaluated as N2D2's code generators would
        import onnx
        y = implicit_evaluator(onnx.load(exp / 'model.onnx')).run(None, {'env': x})[0]
    else:
        sess = ort.InferenceSession(str(exp / 'model.onnx'), providers=['CPUExecutionProvider'])
        y = sess.run(None, {'env': x})[0]
    acc = accuracy(y, labels)
    assert abs(acc - sim_acc) < 1e-9, (acc, sim_acc)
    if nbbits == '8': assert acc >= float_acc - 0.5, (variant, acc, float_acc)
    else: assert acc >= 70.0, (variant, acc, float_acc)   # PTQ at 4 bits: 81.0% vs 89.6% float here (QAT's reason to be)
