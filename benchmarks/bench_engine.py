"""Throughput of n2d2x's numpy engine on the bundled LeNet (training and inference, images/s) beside
onnxruntime's inference on the float export of the same network, in the same process.

    python benchmarks/bench_engine.py [--batch 256] [--repeat 5]

A benchmark, not a test: it asserts nothing and prints one table."""
import argparse
import tempfile
import time

import numpy as np
import onnxruntime as ort

from n2d2x.engine import backward, forward, forward_train
from n2d2x.export import export_onnx
from n2d2x.learn import solvers_from_ini
from n2d2x.network import Network, model_path
from n2d2x.weights import fill, load_weights


def best_rate(fn, n, repeat):
    "Images per second of the fastest of `repeat` calls of fn() on n images."
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return n / min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--repeat', type=int, default=5)
    a = ap.parse_args()
    net = load_weights(fill(Network.from_ini(model_path('LeNet.ini')), seed=1), model_path('LeNet_weights'))
    x = np.random.default_rng(0).random((a.batch, *net.input_dims), dtype=np.float32)
    labels = np.random.default_rng(1).integers(0, 10, a.batch)
    solvers = solvers_from_ini(net, lambda sec, prop: 3200 if prop == '_EpochSize' else None)
    rng = np.random.default_rng(2)

    def train_step():
        tape = forward_train(net, x, rng)
        y = tape['softmax'].reshape(a.batch, -1)
        g = y.copy(); g[np.arange(a.batch), labels] -= 1
        grads = backward(net, tape, {'softmax': (g / a.batch).reshape(tape['softmax'].shape)})
        for cell, per in grads.items():
            for k, d in per.items():
                if cell in solvers and k in solvers[cell]: solvers[cell][k].update(getattr(net[cell], k), d, a.batch)

    out = export_onnx(net, nbbits=-32, out_dir=tempfile.mkdtemp())
    so = ort.SessionOptions()
    sess = ort.InferenceSession(str(out / 'model.onnx'), so, providers=['CPUExecutionProvider'])
    rows = [('numpy engine: training step (forward_train + backward + SGD)', best_rate(train_step, a.batch, a.repeat)),
            ('numpy engine: inference (forward)', best_rate(lambda: forward(net, x, outputs=['softmax']), a.batch, a.repeat)),
            ('onnxruntime: inference of export_ONNX_float32/model.onnx', best_rate(lambda: sess.run(None, {'env': x}), a.batch, a.repeat))]
    ort_rate = rows[-1][1]
    print(f"LeNet (bundled, 1x32x32), batch {a.batch}, best of {a.repeat}, onnxruntime {ort.__version__}, "
          f"intra-op threads {so.intra_op_num_threads or 'default'}")
    print(f"{'what':64s} {'images/s':>10s} {'vs onnxruntime':>15s}")
    for name, r in rows:
        print(f"{name:64s} {r:10.0f} {r / ort_rate:14.3f}x")


if __name__ == '__main__':
    main()
