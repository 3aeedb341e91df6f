"""Post-training quantization over 1,000 and 10,000 images: n2d2x's command line against onnxruntime's `quantize_static`.

The network is the bundled ReLU6 MobileNet trained on Fashion-MNIST (`n2d2x/models/MobileNetReLU6_Fashion.onnx`, BN
folded), run through an INI with `Type=ONNX` written in a temporary folder; the data are Debian's Fashion-MNIST IDX
files (`/usr/share/datasets/fashion-mnist/*.gz`, or the folder given as `--data`). The INI's Validation partition
holds exactly N images of the training set (Validation = N / 60,000, drawn by the seed), and N2D2's `-calib N`
calibrates on them. Each export runs in a fresh process, timed whole (Python start, imports, reading the IDX
files, calibration, export), with its peak resident memory (`wait4`'s ru_maxrss):

- n2d2x:   `n2d2x INI -seed 1 -w /dev/null -export ONNX -nbbits 8 -calib N -db-export 0` (N2D2's default
           `-db-export -1` would also write the 10,000 test stimuli as files: not part of quantization);
- ort:E / ort:M: `quantize_static` (QDQ, u8 activations, s8 weights per tensor) with CalibrationMethod.Entropy /
           MinMax, on the ONNX file itself, fed the same N images (float32 pixel x float32(1 / 255), as n2d2x scales them) in batches of 50 by a
           CalibrationDataReader that reads the same IDX files.

The runs alternate (n2d2x, Entropy, MinMax, n2d2x, ...) since the machine is shared; the table gives the median
and the spread (min-max) of each, the median CPU time (user + system, the process and the children it waited for)
and the load average seen. Then each quantized model is scored on the 10,000 test images in onnxruntime (outside
the timing), next to the float model.

    python benchmarks/bench_ptq10k.py              # 3 runs of each, 1,000 and 10,000 images (about 5 minutes)
    python benchmarks/bench_ptq10k.py --runs 5 --sizes 10000
    python benchmarks/bench_ptq10k.py --baseline /tmp/old   # and the n2d2x of another commit (see --help)

A benchmark, not a test: it asserts nothing and prints one table."""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / 'n2d2x' / 'models' / 'MobileNetReLU6_Fashion.onnx'
DATA = Path('/usr/share/datasets/fashion-mnist')
TOOLS = ('n2d2x', 'ort:Entropy', 'ort:MinMax')

INI = """; The bundled ReLU6 MobileNet on Fashion-MNIST, {n} training images in the Validation partition for -calib
[database]
Type=Fashion_MNIST_IDX_Database
DataPath={data}
Validation={validation!r}

[sp]
SizeX=28
SizeY=28
NbChannels=1
BatchSize=50

[onnx]
Input=sp
Type=ONNX
File={model}

[fc.Target]
"""


def read_idx(path):
    "An IDX .gz file as a numpy array (the onnxruntime side's own reader)."
    with gzip.open(path, 'rb') as f: buf = f.read()
    nd = buf[3]
    dims = np.frombuffer(buf, '>u4', nd, 4)
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * nd).reshape(dims)


def stimuli(images):
    "8-bit images [N, H, W] as n2d2x feeds them: float32 [N, 1, H, W], pixel x float32(1 / 255) (OpenCV's Divides)."
    return images[:, None].astype(np.float32) * np.float32(1 / 255)


def ort_child(model, data, ids_file, method, out):
    "quantize_static over the images of `ids_file` (indices into the training set), in this fresh process."
    import onnxruntime
    onnxruntime.set_default_logger_severity(3)
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    images, ids = read_idx(Path(data) / 'train-images-idx3-ubyte.gz'), np.load(ids_file)

    class Reader(CalibrationDataReader):
        def __init__(self): self.k = 0
        def get_next(self):
            if self.k >= len(ids): return None
            x = stimuli(images[ids[self.k:self.k + 50]])
            self.k += 50
            return {'input': x}
    quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))


def timed(cmd, cwd, env=None):
    "(wall seconds, peak RSS MiB, CPU seconds) of `cmd` run in a fresh process."
    t0 = time.perf_counter()
    p = _Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = p.communicate()
    secs = time.perf_counter() - t0
    if p.returncode: raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{err.decode()[-3000:]}")
    return secs, p.maxrss / 1024, p.cpu


class _Popen(subprocess.Popen):
    "A Popen that keeps the child's resource usage (wait4: itself and the children it waited for) when it is reaped."
    def _try_wait(self, wait_flags):
        pid, sts, ru = os.wait4(self.pid, wait_flags)
        if pid == self.pid: self.maxrss, self.cpu = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
        return pid, sts


def setup(tmp, n, data):
    "The INI of `n` calibration images, and the ids of those images in the training set (for onnxruntime)."
    d = Path(tmp) / str(n); d.mkdir()
    ini = d / 'fashion.ini'
    ini.write_text(INI.format(n=n, data=data, validation=n / 60000, model=MODEL))
    sys.path.insert(0, str(ROOT))
    from n2d2x.data import StimuliProvider
    from n2d2x.ini import Ini
    sp = StimuliProvider.from_ini(Ini.load(ini), seed=1)
    ids = sp.database.stimuli('Validation')[:n]
    if len(ids) != n: raise SystemExit(f'the Validation partition holds {len(ids)} images, not {n}')
    np.save(d / 'ids.npy', ids)
    return d, ini, sp


def command(tool, d, ini, n, data):
    if tool.startswith('n2d2x'):
        return [sys.executable, '-c', 'import sys; from n2d2x.cli import main; sys.exit(main())', str(ini),
                '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '8', '-calib', str(n), '-db-export', '0']
    return [sys.executable, __file__, '--ort', tool.split(':')[1], str(data), str(d / 'ids.npy'), str(d / f'{tool[4:]}.onnx')]


def model_of(tool, d):
    if tool.startswith('n2d2x'): return workdir(tool, d) / 'export_ONNX_int8' / 'model.onnx'
    return d / f'{tool[4:]}.onnx'


def workdir(tool, d):
    "The folder a tool runs in: n2d2x@base exports into its own."
    (d / 'base').mkdir(exist_ok=True)
    return d / 'base' if tool == 'n2d2x@base' else d


def accuracy(path, data):
    "Top-1 accuracy (%) of the model at `path` on the 10,000 test images, in onnxruntime."
    import onnx
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    x = stimuli(read_idx(Path(data) / 't10k-images-idx3-ubyte.gz'))
    y = read_idx(Path(data) / 't10k-labels-idx1-ubyte.gz')
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    s = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    inp = s.get_inputs()[0]
    if inp.type == 'tensor(uint8)':   # n2d2x's integer model: clip(trunc(x / R * Q)), as its Readme.txt says
        r, q = np.float32(json.loads(props['n2d2x.stimuli_range'])), np.float32(json.loads(props['n2d2x.stimuli_scale']))
        x = np.clip(np.trunc(x / r * q), 0, 255).astype(np.uint8)
    scores = np.concatenate([s.run(None, {inp.name: x[k:k + 1000]})[0].reshape(len(x[k:k + 1000]), -1)
                             for k in range(0, len(x), 1000)])
    return float((scores.argmax(1) == y).mean() * 100)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--ort':
        ort_child(str(MODEL), *sys.argv[3:5], sys.argv[2], sys.argv[5]); return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--sizes', type=int, nargs='+', default=[1000, 10000])
    ap.add_argument('--data', default=str(DATA))
    ap.add_argument('--tools', nargs='+', default=list(TOOLS))
    ap.add_argument('--baseline', metavar='DIR', help='also time the n2d2x package in DIR (row n2d2x@base), e.g. '
                    'DIR from `git archive <commit> n2d2x | tar -x -C DIR`')
    a = ap.parse_args()
    if a.baseline: a.tools.insert(a.tools.index('n2d2x') + 1 if 'n2d2x' in a.tools else 0, 'n2d2x@base')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        cases = {n: setup(tmp, n, a.data) for n in a.sizes}
        times, loads = {}, []
        for run in range(a.runs):
            for n, (d, ini, sp) in cases.items():
                for tool in a.tools:
                    loads.append(os.getloadavg()[0])
                    run_env = {**env, 'PYTHONPATH': str(Path(a.baseline).resolve())} if tool == 'n2d2x@base' else env
                    times.setdefault((tool, n), []).append(timed(command(tool, d, ini, n, a.data), workdir(tool, d), run_env))
        loads.append(os.getloadavg()[0])
        acc = {'float': accuracy(MODEL, a.data)}
        acc.update({(tool, n): accuracy(model_of(tool, d), a.data) for n, (d, _, _) in cases.items() for tool in a.tools})
        same = {n: model_of('n2d2x', d).read_bytes() == model_of('n2d2x@base', d).read_bytes()
                for n, (d, _, _) in cases.items()} if a.baseline and 'n2d2x' in a.tools else {}
    print(f'ReLU6 MobileNet, Fashion-MNIST: PTQ on N training images, {a.runs} runs each (alternating), '
          f'load average {min(loads):.2f}-{max(loads):.2f}; float model {acc["float"]:.2f} % on the 10,000 test images')
    print(f"{'tool':14s} {'N':>6s} {'wall s (median)':>16s} {'spread':>13s} {'CPU s':>6s} {'peak MiB':>9s} {'accuracy %':>11s} {'vs Entropy':>11s}")
    for n in a.sizes:
        ref = statistics.median(t[0] for t in times.get(('ort:Entropy', n), [(float('nan'),)]))
        for tool in a.tools:
            ts = times[(tool, n)]; w = [t[0] for t in ts]
            print(f"{tool:14s} {n:6d} {statistics.median(w):16.2f} {min(w):6.2f}-{max(w):<6.2f} {statistics.median(t[2] for t in ts):6.2f} {max(t[1] for t in ts):9.0f} "
                  f"{acc[(tool, n)]:11.2f} {statistics.median(w) / ref:10.2f}x")
    for n, v in same.items(): print(f'{n} images: n2d2x and n2d2x@base wrote {"the same" if v else "DIFFERENT"} model.onnx')


if __name__ == '__main__':
    main()
