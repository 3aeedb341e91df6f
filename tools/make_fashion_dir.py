#!/usr/bin/env python3
"""Write the small Fashion-MNIST image folder bundled with n2d2x (run once; the output is committed).

usage: python tools/make_fashion_dir.py [IDX_DIR [OUT_DIR]]

IDX_DIR holds Fashion-MNIST's test set in the IDX format, t10k-images-idx3-ubyte.gz and
t10k-labels-idx1-ubyte.gz (default: /usr/share/datasets/fashion-mnist, where Debian's package
dataset-fashion-mnist installs them). The first 40 test images of each of the 10 classes (in file order)
are written to OUT_DIR/<k>_<class name>/<index>.png (default OUT_DIR: n2d2x/data/fashion_dir next to this
script), where <index> is the image's position in the test file. Each 28x28 image is stored padded to 32x32
with a black border of 2 pixels on every side (8-bit grayscale PNG), so that a
PadCropTransformation of 28x28 gives back the original pixels exactly. The folder names start with the
class number, so that DIR_Database, which numbers the labels in sorted folder order, gives each class its
Fashion-MNIST number. A README.md and the LICENSE are written beside the folders. The PNG files carry no
time stamp: running the script twice gives byte-identical files.
"""
import gzip, struct, sys
from pathlib import Path
import cv2, numpy as np

CLASSES = ['T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle_boot']
NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
PER_CLASS, BORDER = 40, 2

README = """\
# fashion_dir: 400 Fashion-MNIST test images bundled with n2d2x

Source: the test set of Fashion-MNIST (Han Xiao, Kashif Rasul, Roland Vollgraf, Zalando Research,
https://github.com/zalandoresearch/fashion-mnist, arXiv:1708.07747), the files t10k-images-idx3-ubyte.gz and
t10k-labels-idx1-ubyte.gz as installed by Debian's package dataset-fashion-mnist, converted by
`tools/make_fashion_dir.py`.

Licence: MIT (Copyright (c) 2017 Zalando SE), see LICENSE in this folder.

Changes made: the first {n} test images of each class (in file order) were kept, 400 in all; each 28x28 image
is padded to 32x32 with a black border of {b} pixels and stored as an 8-bit grayscale PNG named after its
index in the test file, in one folder per class (`<class number>_<class name>`), the layout of N2D2's
`DIR_Database`. `PadCropTransformation` with `Width=28` and `Height=28` gives the original images back exactly
(see `n2d2x/models/MobileNet_ONNX.ini`).

| folder | Fashion-MNIST class |
|---|---|
{table}

Written by `python tools/make_fashion_dir.py` (from the repository root; it needs numpy and opencv-python, which
n2d2x installs, and Debian's files in /usr/share/datasets/fashion-mnist, or their folder as first argument).
"""

LICENSE = """\
The MIT License (MIT) Copyright \u00a9 [2017] Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the \u201cSoftware\u201d), to deal in the Software without restriction, including without
limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
Software, and to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions
of the Software.

THE SOFTWARE IS PROVIDED \u201cAS IS\u201d, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED
TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.
"""


def read_idx(path, magic):
    "The uint8 array of IDX file `path` (gzip-compressed), checking its magic number."
    raw = gzip.decompress(Path(path).read_bytes())
    ndim = raw[3]
    if struct.unpack('>I', raw[:4])[0] != magic: sys.exit(f'{path}: not an IDX file of magic {magic:#x}')
    dims = struct.unpack(f'>{ndim}I', raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(argv):
    if len(argv) > 3 or any(a in ('-h', '--help') for a in argv): sys.exit(__doc__)
    src = Path(argv[1] if len(argv) > 1 else '/usr/share/datasets/fashion-mnist')
    out = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parents[1] / 'n2d2x' / 'data' / 'fashion_dir'
    images, labels = read_idx(src / 't10k-images-idx3-ubyte.gz', 0x803), read_idx(src / 't10k-labels-idx1-ubyte.gz', 0x801)
    if images.shape[1:] != (28, 28) or len(images) != len(labels): sys.exit(f'{src}: expected N x 28 x 28 images and N labels')
    for k, name in enumerate(CLASSES):
        folder = out / f'{k}_{name}'
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == k)[:PER_CLASS]:
            img = cv2.copyMakeBorder(images[i], BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=0)
            if not cv2.imwrite(str(folder / f'{i:04d}.png'), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]): sys.exit(f'cannot write {folder}')
    table = '\n'.join(f'| {k}_{name} | {k} ({NAMES[k]}) |' for k, name in enumerate(CLASSES))
    (out / 'README.md').write_text(README.format(n=PER_CLASS, b=BORDER, table=table))
    (out / 'LICENSE').write_text(LICENSE)
    print(f'wrote {PER_CLASS * len(CLASSES)} images to {out}')


if __name__ == '__main__':
    main(sys.argv)
