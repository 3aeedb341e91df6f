"""An INI written for the tests (tests/fixtures/unseen.ini) with weight files written here in N2D2's
format, exported from the command line; onnxruntime's outputs must match a direct numpy computation
of the same network written below from the INI by hand (no n2d2x code involved)."""
import numpy as np
import onnxruntime as ort
import pytest

from n2d2x.cli import main

rng = np.random.default_rng(42)
F = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)
MAP3_SUM = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1]], bool)  # rows: input channels, cols: outputs
MAP3_BN1 = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0]], bool)
P = dict(conv1=F(4, 2, 3, 3), bn_scale=F(4) + 1, bn_bias=F(4), bn_mean=F(4), bn_var=np.abs(F(4)) + 0.1,
         conv2a=F(4, 4, 1, 1), conv2b=F(4, 1, 3, 3), conv2b_b=F(4), conv3=F(3, 8, 2, 3), fc1=F(8, 12),
         fc2=F(3, 8), fc2_b=F(3))
P['conv3'][:, :4] *= MAP3_SUM.T[:, :, None, None]
P['conv3'][:, 4:] *= MAP3_BN1.T[:, :, None, None]


def lines(rows): return ''.join(' '.join(repr(float(v)) for v in r) + '\n' for r in rows)


def write_weights(d):
    d.mkdir()
    (d / 'conv1_weights.syntxt').write_text(lines(P['conv1'].reshape(4, -1)))
    for k, f in (('bn_scale', 'scales'), ('bn_bias', 'biases'), ('bn_mean', 'means'), ('bn_var', 'variances')):
        (d / f'bn1_{f}.syntxt').write_text(lines(P[k][:, None]))
    (d / 'conv2a_weights.syntxt').write_text(lines(P['conv2a'].reshape(4, -1)))
    (d / 'conv2b_weights.syntxt').write_text(lines(P['conv2b'].reshape(4, -1)))
    (d / 'conv2b_biases.syntxt').write_text(lines(P['conv2b_b'][:, None]))
    conn = np.concatenate([MAP3_SUM, MAP3_BN1]).T  # [outputs, 8 channels]
    (d / 'conv3_weights.syntxt').write_text(lines([P['conv3'][o, conn[o]].ravel() for o in range(3)]))
    (d / 'fc1_weights.syntxt').write_text(lines(P['fc1']))
    (d / 'fc2_weights.syntxt').write_text(lines(P['fc2']))
    (d / 'fc2_biases.syntxt').write_text(lines(P['fc2_b'][:, None]))


def conv(x, w, stride=(1, 1), pad=0, groups=1):
    "Direct convolution, one output pixel at a time (float64)."
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    y = np.zeros((n, m, oh, ow))
    for o in range(m):
        g = o // (m // groups)
        for i in range(oh):
            for j in range(ow):
                patch = x[:, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return y


def reference(x):
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 0), (2, 1)))          # [pad]
    c1 = conv(x, P['conv1'])                                                      # [conv1], no bias
    bn = (c1 - P['bn_mean'][:, None, None]) / np.sqrt(P['bn_var'][:, None, None] + 0.001)
    bn = np.maximum(bn * P['bn_scale'][:, None, None] + P['bn_bias'][:, None, None], 0)
    a = np.maximum(conv(bn, P['conv2a']), 0)
    b = np.maximum(conv(bn, P['conv2b'], pad=1, groups=4) + P['conv2b_b'][:, None, None], 0)
    s = 0.5 * a + 0.25 + 1.0 * b
    c3 = np.maximum(conv(np.concatenate([s, bn], 1), P['conv3'], stride=(1, 2)), 0)
    pool = np.stack([[c3[:, :, i:i + 3, j:j + 2].mean(axis=(2, 3)) for j in (0, 2)] for i in (0, 2)])
    pool = pool.transpose(2, 3, 0, 1)                                             # [N, 3, 2, 2]
    f1 = np.tanh(0.5 * (pool.reshape(len(x), -1) @ P['fc1'].T))
    f2 = f1 @ P['fc2'].T + P['fc2_b']
    e = np.exp(f2 - f2.max(1, keepdims=True))
    return {'softmax': e / e.sum(1, keepdims=True), 'pool': pool}


def test_unseen_ini_exports_from_cli_and_matches_reference(tmp_path, fixtures, monkeypatch):
    write_weights(tmp_path / 'w')
    monkeypatch.chdir(tmp_path)
    ini = str(fixtures / 'unseen.ini')
    assert main([ini, '-seed', '1', '-w', 'w', '-export', 'ONNX', '-nbbits', '-32']) == 0
    sess = ort.InferenceSession(str(tmp_path / 'export_ONNX_float32' / 'model.onnx'), providers=['CPUExecutionProvider'])
    x = rng.random((5, 2, 8, 9), dtype=np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {'env': x})))
    want = reference(x)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k].reshape(want[k].shape), want[k], rtol=1e-5, atol=1e-6)


def test_unseen_ini_missing_weight_file_fails_cleanly(tmp_path, fixtures, monkeypatch, capsys):
    write_weights(tmp_path / 'w')
    (tmp_path / 'w' / 'conv3_weights.syntxt').unlink()
    monkeypatch.chdir(tmp_path)
    assert main([str(fixtures / 'unseen.ini'), '-seed', '1', '-w', 'w', '-export', 'ONNX', '-nbbits', '-32']) == 1
    assert 'conv3_weights.syntxt' in capsys.readouterr().err
    assert not list(tmp_path.glob('export_*'))


def test_unseen_ini_short_weight_file_names_it(tmp_path, fixtures, monkeypatch, capsys):
    write_weights(tmp_path / 'w')
    f = tmp_path / 'w' / 'fc1_weights.syntxt'
    f.write_text(f.read_text().rsplit('\n', 2)[0] + '\n')  # drop the last line
    monkeypatch.chdir(tmp_path)
    assert main([str(fixtures / 'unseen.ini'), '-seed', '1', '-w', 'w', '-export', 'ONNX', '-nbbits', '-32']) == 1
    assert 'fc1_weights.syntxt' in capsys.readouterr().err
    assert not list(tmp_path.glob('export_*'))
