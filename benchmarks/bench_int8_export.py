"""Wall time and peak memory of the int8 ONNX export of N2D2's ResNet-50-BN and VGG16, each run in a fresh process.

The whole `n2d2x` command, as a user runs it: random weights (`-seed 1 -w /dev/null`), 20 calibration images,
5 exported stimuli, `-test` (every Test image verified: the integer simulation against onnxruntime on model.onnx):

    n2d2x NET.ini -seed 1 -w /dev/null -export ONNX -nbbits 8 -calib 20 -db-export 5 -test

The images are made here (`N2D2_DATA`: `n2d2x.data.random_ilsvrc2012`, 20 random validation JPEGs of 40-90 pixels
a side, as nbs/13_model_zoo.ipynb uses them; N2D2's transformations resize and crop them to 224x224). VGG16.ini runs as a copy
with two changes: fc7's `BiasFiller.Value=0.0` (N2D2 refuses the file without it) and its test crop applied to the
Validation images too (`ApplyTo=NoLearn`: N2D2 calibrates on Validation, whose images the shipped file leaves at
their own size). Peak memory is the child's maximum resident set size (`os.wait4`'s rusage), the time its wall
time from start to exit; "identical" is the command's own count of Test outputs equal to the simulation's.

    python benchmarks/bench_int8_export.py [--repeat 2] [--nets ResNet-50-BN,VGG16]

A benchmark, not a test: it asserts nothing and prints one table (median, and min-max over the runs)."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from n2d2x.data import random_ilsvrc2012
from n2d2x.ini import N2D2_MODELS_DIR

ARGS = ['-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '8', '-calib', '20', '-db-export', '5', '-test']
N2D2X = str(Path(sys.executable).with_name('n2d2x'))


def ini_copy(name, folder):
    "The INI of `name` in `folder` (with N2D2's templates), VGG16 with its two changes."
    text = (N2D2_MODELS_DIR / f'{name}.ini').read_text()
    if name == 'VGG16':
        text = text.replace('BiasFiller=ConstantFiller\n', 'BiasFiller=ConstantFiller\nBiasFiller.Value=0.0\n')
        text = text.replace('ApplyTo=TestOnly', 'ApplyTo=NoLearn', 1)
    for tpl in N2D2_MODELS_DIR.glob('*.tpl'): shutil.copy(tpl, folder)
    path = Path(folder) / f'{name}.ini'
    path.write_text(text)
    return path


def run(name, data):
    "(seconds, peak bytes, 'k/n identical') of one int8 export in a fresh process and folder."
    with tempfile.TemporaryDirectory() as d:
        ini = ini_copy(name, d)
        t = time.perf_counter()
        p = subprocess.Popen([N2D2X, str(ini), *ARGS], cwd=d, env={**os.environ, 'N2D2_DATA': str(data)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        s = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status): raise SystemExit(f"{name}: n2d2x failed:\n{out}")
        m = re.search(r'onnxruntime: (\d+/\d+) outputs identical', out)
        return s, usage.ru_maxrss * 1024, m.group(1) if m else '?'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--nets', default='ResNet-50-BN,VGG16')
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        data = random_ilsvrc2012(root)
        res = {n: [run(n, data) for _ in range(args.repeat)] for n in args.nets.split(',')}
    fmt = lambda v, f: f"{f(statistics.median(v))} ({f(min(v))}-{f(max(v))})"
    print(f"int8 export, whole command ({' '.join(ARGS)}), {args.repeat} runs each, median (min-max); GB = 1e9 bytes")
    print("| network | wall s | peak GB | identical |")
    print("|---|---|---|---|")
    for n, rows in res.items():
        print(f"| {n} | {fmt([r[0] for r in rows], lambda v: f'{v:.1f}')} | {fmt([r[1] for r in rows], lambda v: f'{v / 1e9:.2f}')} | "
              f"{', '.join(sorted({r[2] for r in rows}))} |")


if __name__ == '__main__':
    main()
