"""n2d2x's numpy engine at real scale, beside onnxruntime on n2d2x's own float export of the same network.

For the bundled LeNet and N2D2's SqueezeNet_v1.1, MobileNet_v2 (160x160) and ResNet-18 (224x224) INIs, with
random fillers (seed 1): engine forward (`n2d2x.engine.predict`, image threads on every core) against onnxruntime (intra-op threads 2,
numpy's BLAS threads as they are), in the same process, several runs each, alternating, so that both see the
same load, with a pause between calls (onnxruntime's threads spin for a while after a run: without it, the
engine's call that follows ran up to 1.5x slower). Then, on LeNet and MobileNet_Fashion.ini (depthwise, BatchNorm): a training step (forward_train + backward + SGD; against PyTorch CPU when
`--torch PYTHON` names an interpreter that has it, on the same network written in PyTorch: PyTorch is never a dependency of n2d2x); on LeNet, the calibration
and the integer simulation, per image; on ResNet-18 (8 bits, Single-shift), the integer simulation beside onnxruntime on
n2d2x's int8 export of it, as written by default (explicit casts), lean (`Lean=1`: fewer nodes, the same integers)
and in QDQ form (`QDQ=1`: onnxruntime's QLinearConv; its own simulation, `to_qdq`).

    python benchmarks/bench_scale.py [--repeat 5] [--nets LeNet,MobileNet_v2] [--torch /tmp/torchvenv/bin/python]
                                     [--openblas-threads 1]   # numpy's BLAS threads (default: as they are)
                                     [--engine-threads 1]     # the engine's image threads (N2D2X_THREADS; default: the cores)

A benchmark, not a test: it asserts nothing and prints one table (median images/s, and min-max over the runs)."""
import argparse
import json
import os
import sys

if '--openblas-threads' in sys.argv:   # before numpy loads OpenBLAS
    os.environ['OPENBLAS_NUM_THREADS'] = sys.argv[sys.argv.index('--openblas-threads') + 1]
if '--engine-threads' in sys.argv:
    os.environ['N2D2X_THREADS'] = sys.argv[sys.argv.index('--engine-threads') + 1]
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort

from n2d2x.engine import backward, forward_train, predict
from n2d2x.export import export_onnx
from n2d2x.network import Network, model_path
from n2d2x.weights import fill

NETS = {'LeNet': ('LeNet.ini', 256), 'SqueezeNet_v1.1': ('n2d2/SqueezeNet_v1.1.ini', 8),
        'MobileNet_v2': ('n2d2/MobileNet_v2.ini', 8), 'ResNet-18': ('n2d2/ResNet-18.ini', 8)}


def rates(fn, n, repeat):
    "Images per second of each of `repeat` calls of fn() on n images (after one warm-up call)."
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); out.append(n / (time.perf_counter() - t))
    return out


PAUSE = 0.05   # seconds between two timed calls: onnxruntime's threads spin a while after a run, on the cores the next call needs


def paired(fa, fb, n, repeat):
    "Rates of fa and of fb, one call of each per run, so that both see the same machine load."
    fa(); fb()
    ra, rb = [], []
    for _ in range(repeat):
        ra.append(n / _time(fa)); time.sleep(PAUSE)
        rb.append(n / _time(fb)); time.sleep(PAUSE)
    return ra, rb


def _time(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def session(net):
    "An onnxruntime session (2 intra-op threads) on n2d2x's float export of net, and its input name."
    path = export_onnx(net, nbbits=-32, out_dir=tempfile.mkdtemp()) / 'model.onnx'
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=['CPUExecutionProvider'])
    return s, s.get_inputs()[0].name


def fmt(r):
    f = (lambda v: f"{v:.0f}") if min(r) >= 100 else (lambda v: f"{v:.1f}")
    return f"{f(statistics.median(r)):>7s} ({f(min(r))}-{f(max(r))})"


def forward_rows(name, repeat):
    ini, batch = NETS[name]
    net = fill(Network.from_ini(model_path(ini)), seed=1)
    x = np.random.default_rng(0).random((batch, *net.input_dims), dtype=np.float32)
    sess, inp = session(net)
    re, ro = paired(lambda: predict(net, x), lambda: sess.run(None, {inp: x}), batch, repeat)
    ratios = [a / b for a, b in zip(re, ro)]
    return (f"forward {name} {'x'.join(map(str, net.input_dims))}, batch {batch}", re, 'onnxruntime', ro, ratios)


def train_step(ini, batch):
    "One training step (forward_train, cross-entropy backward, the INI's solvers) of the INI's network on random data."
    from n2d2x.learn import solvers_from_ini
    net = fill(Network.from_ini(model_path(ini)), seed=1)
    x = np.random.default_rng(0).random((batch, *net.input_dims), dtype=np.float32)
    labels = np.random.default_rng(1).integers(0, 10, batch)
    solvers = solvers_from_ini(net, lambda sec, prop: 3200 if prop == '_EpochSize' else None)
    rng = np.random.default_rng(2)

    def step():
        tape = forward_train(net, x, rng)
        y = tape['softmax'].reshape(batch, -1)
        g = y.copy(); g[np.arange(batch), labels] -= 1
        grads = backward(net, tape, {'softmax': (g / batch).reshape(tape['softmax'].shape)})
        for cell, per in grads.items():
            for k, d in per.items():
                if cell in solvers and k in solvers[cell]: solvers[cell][k].update(getattr(net[cell], k), d, batch)
    return step


TORCH_TRAIN = r'''
import json, sys, time, torch
torch.set_num_threads(2); torch.manual_seed(0)
nn, name, b, rep = torch.nn, sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if name == 'LeNet':   # n2d2x/models/LeNet.ini
    m = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    size = 32
else:                 # n2d2x/models/MobileNet_Fashion.ini: conv + BN + ReLU, then depthwise / pointwise pairs
    def cbr(i, o, k, s=1, g=1): return [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    layers = cbr(1, 16, 3, 2)
    for i, o, s in ((16, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1)): layers += cbr(i, i, 3, s, i) + cbr(i, o, 1)
    m, size = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)), 28
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x, y = torch.rand(b, 1, size, size), torch.randint(0, 10, (b,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
step(); r = []
for _ in range(rep):
    t = time.perf_counter(); step(); r.append(b / (time.perf_counter() - t))
print(json.dumps(r))
'''


def torch_rates(python, name, batch, repeat):
    "PyTorch's training step rates on the same network, from another interpreter (PyTorch is not a dependency of n2d2x)."
    if not python: return None
    try: return json.loads(subprocess.run([python, '-c', TORCH_TRAIN, name, str(batch), str(repeat)], capture_output=True,
                                          text=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError): return None


def quant_rows(repeat):
    "Calibration and integer simulation of the bundled LeNet (fused), images/s."
    from n2d2x.calibrate import calibrate
    from n2d2x.fuse import fuse
    from n2d2x.quantize import quantize, quantize_input, simulate
    net = fuse(fill(Network.from_ini(model_path('LeNet.ini')), seed=1))
    x = np.random.default_rng(0).random((256, *net.input_dims), dtype=np.float32)
    calib = calibrate(net, [x])
    qnet = quantize(net, calib)
    xi = quantize_input(qnet, x)
    return [('calibration LeNet (MSE, 8 bits), 256 images', rates(lambda: calibrate(net, [x]), len(x), repeat), '', None, None),
            ('integer simulation LeNet (Single-shift), batch 256', rates(lambda: simulate(qnet, xi), len(x), repeat), '', None, None),
            *int_rows('ResNet-18', repeat)]


def int_rows(name, repeat):
    "The integer simulation of an INI's network (fused, 8 bits, Single-shift) beside onnxruntime on its int8 exports: explicit, lean, QDQ."
    from n2d2x.calibrate import calibrate
    from n2d2x.export import to_onnx_int, to_onnx_qdq
    from n2d2x.fuse import fuse
    from n2d2x.quantize import quantize, quantize_input, simulate, to_qdq
    ini, batch = NETS[name]
    net = fuse(fill(Network.from_ini(model_path(ini)), seed=1))
    x = np.random.default_rng(0).random((batch, *net.input_dims), dtype=np.float32)
    qnet = quantize(net, calibrate(net, [x]))
    xi = quantize_input(qnet, x)
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    rows, qdq = [], to_qdq(qnet)
    for kind, q, model in (('ort int8', qnet, to_onnx_int(qnet)), ('ort lean', qnet, to_onnx_int(qnet, lean=True)),
                           ('ort QDQ', qdq, to_onnx_qdq(qdq))):
        s = ort.InferenceSession(model.SerializeToString(), so, providers=['CPUExecutionProvider'])
        inp, outs = s.get_inputs()[0].name, list(q.targets)
        ri, ro = paired(lambda: simulate(q, xi, outs), lambda: s.run(None, {inp: xi}), batch, repeat)
        rows.append((f"integer simulation {name} {'x'.join(map(str, net.input_dims))}, batch {batch}", ri, kind, ro,
                     [a / b for a, b in zip(ri, ro)]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--nets', default=','.join(NETS))
    ap.add_argument('--torch', default='', help='a Python interpreter that has PyTorch, for the training step')
    ap.add_argument('--no-quant', action='store_true', help='skip calibration and simulation')
    ap.add_argument('--openblas-threads', default=None, help="numpy's BLAS threads (OPENBLAS_NUM_THREADS; default: as they are)")
    ap.add_argument('--engine-threads', default=None, help="the engine's image threads (N2D2X_THREADS; default: the cores)")
    a = ap.parse_args()
    rows = [forward_rows(n, a.repeat) for n in a.nets.split(',')]
    for name, ini, batch in (('LeNet', 'LeNet.ini', 256), ('MobileNet_Fashion', 'MobileNet_Fashion.ini', 128)):
        step = train_step(ini, batch)
        tr = torch_rates(a.torch, name, batch, a.repeat)
        rt = rates(step, batch, a.repeat)
        rows.append((f'training step {name}, batch {batch}', rt, 'PyTorch CPU' if tr else '(no PyTorch)', tr,
                     [p / q for p, q in zip(rt, tr)] if tr else None))
    if not a.no_quant: rows += quant_rows(a.repeat)
    from n2d2x.engine import cores
    print(f"numpy {np.__version__} (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; engine image threads "
          f"{cores()}), onnxruntime "
          f"{ort.__version__} (2 intra-op threads); {a.repeat} runs: median (min-max)")
    print(f"{'what':48s} {'n2d2x img/s':>22s}  {'reference':12s} {'img/s':>22s}  {'ratio':>18s}")
    for what, r, ref, rr, ratio in rows:
        print(f"{what:48s} {fmt(r):>22s}  {ref:12s} {fmt(rr) if rr else '':>22s}  "
              + (f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})" if ratio else ''))


if __name__ == '__main__':
    main()
