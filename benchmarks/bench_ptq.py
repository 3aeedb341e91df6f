"""n2d2x's post-training quantization against onnxruntime's `quantize_static`, on the bundled trained LeNet.

Both start from the same float network and the same calibration images (the 800 validation digits of the
bundled MNIST subset) and are scored on the same 1,000 test digits by running the exported file in
onnxruntime. For each configuration: test accuracy, calibration + export wall time, peak memory (RSS of a
fresh process doing only that export), and onnxruntime's inference speed of the exported model.

    python benchmarks/bench_ptq.py            # the whole table (about a minute)

A benchmark, not a test: it asserts nothing and prints one table."""
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = ['float'] + [f'n2d2x:{m}' for m in ('Single-shift', 'Double-shift', 'Fixed-point16', 'Fixed-point32', 'Floating-point')] \
    + ['n2d2x:Single-shift:per-output', 'n2d2x:Single-shift:KL-Divergence'] \
    + [f'ort:{m}:{g}' for m in ('MinMax', 'Entropy', 'Percentile') for g in ('tensor', 'channel')]


def data():
    from n2d2x.data import StimuliProvider
    from n2d2x.network import Network, model_path
    from n2d2x.weights import fill, load_weights
    net = load_weights(fill(Network.from_ini(model_path('LeNet.ini')), seed=1), model_path('LeNet_weights'))
    sp = StimuliProvider.from_ini(net.ini, seed=1)
    test = [b for b in sp.batches('Test', batch_size=250)]
    return net, sp, np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test])


def ort_session(path):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def run_one(config, out):
    "Export one configuration in this (fresh) process; return its measures."
    net, sp, x_test, y_test = data()
    from n2d2x.export import export_onnx
    t0 = time.perf_counter()
    kind, *opts = config.split(':')
    if kind == 'float':
        path = Path(export_onnx(net, nbbits=-32, out_dir=out)) / 'model.onnx'
        feed = x_test
    elif kind == 'n2d2x':
        exp = export_onnx(net, nbbits=8, out_dir=out, stimuli=sp, calib=-1, act_rescaling_mode=opts[0],
                          act_rescale_per_output='per-output' in opts,
                          act_clipping_mode=opts[1] if len(opts) > 1 and opts[1] != 'per-output' else 'MSE')
        path = Path(exp) / 'model.onnx'
        from n2d2x.quantize import quantize_input
        feed = quantize_input(exp.qnet, x_test) if hasattr(exp, 'qnet') else None
    else:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        fp = Path(export_onnx(net, nbbits=-32, out_dir=out)) / 'model.onnx'
        calib = [x for x, _ in sp.batches('Validation', batch_size=1)]

        class Reader(CalibrationDataReader):
            def __init__(self): self.it = iter(calib)
            def get_next(self):
                x = next(self.it, None)
                return None if x is None else {'env': x}
        path = Path(out) / 'ort_int8.onnx'
        quantize_static(str(fp), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=opts[1] == 'channel',
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, opts[0]))
        feed = x_test
    secs = time.perf_counter() - t0
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    if feed is None or sess.get_inputs()[0].type != 'tensor(float)' and feed.dtype == np.float32:
        raise SystemExit(f'{config}: cannot feed the exported model')
    y = sess.run(None, {name: feed})[0].reshape(len(feed), -1)
    acc = float((y.argmax(1) == y_test).mean() * 100)
    xb = feed[:256]
    sess.run(None, {name: xb})
    t = []
    for _ in range(5):
        t0 = time.perf_counter(); sess.run(None, {name: xb}); t.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(config=config, accuracy=acc, export_s=secs, peak_mb=rss, ips=256 / min(t))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--one':
        with tempfile.TemporaryDirectory() as d: print(json.dumps(run_one(sys.argv[2], d)))
        return
    rows = []
    for c in CONFIGS:
        r = subprocess.run([sys.executable, __file__, '--one', c], capture_output=True, text=True)
        if r.returncode: print(f'{c}: failed\n{r.stderr[-2000:]}', file=sys.stderr); continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    base = next(r for r in rows if r['config'] == 'float')
    print('Bundled LeNet, calibration on 800 validation digits, accuracy on 1,000 test digits run in onnxruntime')
    print(f"{'configuration':40s} {'accuracy %':>10s} {'export s':>9s} {'peak MB':>8s} {'ORT img/s':>10s} {'speed vs float':>15s}")
    for r in rows:
        print(f"{r['config']:40s} {r['accuracy']:10.2f} {r['export_s']:9.2f} {r['peak_mb']:8.0f} {r['ips']:10.0f} "
              f"{r['ips'] / base['ips']:14.2f}x")


if __name__ == '__main__':
    main()
