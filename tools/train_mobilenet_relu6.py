"""Train the small ReLU6 MobileNet of issue 15 and write `n2d2x/models/MobileNetReLU6_Fashion.onnx`.

Provenance of the shipped model: this script, run from the repository root with PyTorch 2.13 (CPU) as

    python tools/train_mobilenet_relu6.py            # seed 0, 3 epochs, about 2 minutes on 2 idle cores

(PyTorch's onnx exporter needs the onnx package in that environment.) Run twice, it writes the same file byte for
byte (checked on 2026-12-07); the shipped model scores 89.48 % on the 10,000 test images, before and after folding.

A depthwise-separable MobileNet (arXiv 1704.04861) shaped like n2d2x/models/MobileNet_Fashion.ini: 28x28 input,
a 3x3 stride-2 convolution, four depthwise (3x3) + pointwise (1x1) blocks, global average pooling, Fc; every
convolution is followed by a BatchNorm and a ReLU6 (nn.ReLU6), as in MobileNet v1/v2 trained with PyTorch. It is
trained on Fashion-MNIST from Debian's fashion-mnist package (60,000 train images, pixels scaled to [0, 1], no
mean subtraction: what n2d2x's Fashion_MNIST_IDX_Database gives), then every BatchNorm is folded into its
convolution (w' = w g / sqrt(v + eps), b' = beta + (b - m) g / sqrt(v + eps)) and the folded network is exported
with the TorchScript exporter (opset 13): Conv (with bias) -> Clip(0, 6) ... -> GlobalAveragePool -> Flatten ->
Gemm. The folded per-channel weight ranges of the depthwise convolutions are what makes per-tensor 8-bit
quantization of this model lose accuracy. PyTorch is a tool of this script only, never a dependency of n2d2x.
"""
import argparse, gzip, time
from pathlib import Path
import numpy as np, onnx, torch
from torch import nn

DATA = Path('/usr/share/datasets/fashion-mnist')

def load_idx(split):
    "Fashion-MNIST images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64 from the IDX files."
    with gzip.open(DATA/f'{split}-images-idx3-ubyte.gz') as f: x = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(DATA/f'{split}-labels-idx1-ubyte.gz') as f: y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.tensor(x.reshape(-1, 1, 28, 28) / 255., dtype=torch.float32), torch.tensor(y, dtype=torch.int64)

def conv_bn(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

def mobilenet():
    "1x28x28 -> 16x14x14 -> 32x14x14 -> 32x14x14 -> 64x7x7 -> 64x7x7 -> 10, as MobileNet_Fashion.ini."
    layers = conv_bn(1, 16, 3, 2)
    for cin, cout, s in [(16, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1)]:
        layers += conv_bn(cin, cin, 3, s, groups=cin) + conv_bn(cin, cout, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

def fold_bn(model):
    "The same network with every BatchNorm folded into the Conv before it (eval mode statistics)."
    out = []
    for m in model:
        if isinstance(m, nn.BatchNorm2d):
            conv = out[-1]
            s = m.weight / torch.sqrt(m.running_var + m.eps)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               groups=conv.groups, bias=True)
            folded.weight.data = conv.weight.data * s.reshape(-1, 1, 1, 1)
            folded.bias.data = m.bias.data - m.running_mean * s
            out[-1] = folded
        else: out.append(m)
    return nn.Sequential(*out).eval()

NAMES = ['conv1'] + [f'conv{i}_{k}' for i in range(2, 6) for k in ('dw', 'pw')]

def rename(path):
    "Name the tensors and nodes of the exported graph as MobileNet_Fashion.ini names its cells: conv1, conv2_dw, ..., pool, fc."
    m = onnx.load(path); g = m.graph
    inits = {t.name: t for t in g.initializer}
    for n in [n for n in g.node if n.op_type == 'Identity' and n.input[0] in inits]:   # a shared (equal) initializer: a copy each
        t = onnx.TensorProto(); t.CopyFrom(inits[n.input[0]]); t.name = n.output[0]
        g.initializer.append(t); g.node.remove(n)
    convs, new = iter(NAMES), {}
    for n in g.node:
        if n.op_type == 'Conv': conv = name = next(convs); new.update({n.input[1]: f'{name}_w', n.input[2]: f'{name}_b'})
        elif n.op_type == 'Clip': name = f'{conv}_relu6'
        elif n.op_type == 'Gemm': new.update({n.input[1]: 'fc_w', n.input[2]: 'fc_b'}); name = 'fc'
        else: name = {'GlobalAveragePool': 'pool', 'Flatten': 'flatten'}.get(n.op_type, n.output[0])
        new[n.output[0]] = n.name = name
    for n in g.node:
        n.input[:] = [new.get(i, i) for i in n.input]; n.output[:] = [new.get(o, o) for o in n.output]
    for t in g.initializer: t.name = new.get(t.name, t.name)
    for v in g.output: v.name = new.get(v.name, v.name)
    g.name = 'MobileNetReLU6_Fashion'
    onnx.checker.check_model(m); onnx.save(m, path)

def accuracy(model, x, y, bs=1000):
    model.eval()
    with torch.no_grad(): return sum((model(x[i:i+bs]).argmax(1) == y[i:i+bs]).sum().item() for i in range(0, len(x), bs)) / len(x)

def main(seed=0, epochs=3, bs=64, lr=0.05, out='n2d2x/models/MobileNetReLU6_Fashion.onnx'):
    torch.manual_seed(seed); torch.set_num_threads(2)
    (xtr, ytr), (xte, yte) = load_idx('train'), load_idx('t10k')
    model = mobilenet()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    steps = epochs * (len(xtr) // bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)   # N2D2's PolyDecay, power 1
    for ep in range(epochs):
        model.train(); t = time.time(); perm = torch.randperm(len(xtr))
        for i in range(len(xtr) // bs):
            idx = perm[i*bs:(i+1)*bs]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        print(flush=True, *[f'epoch {ep+1}: loss {loss.item():.3f}, test accuracy {accuracy(model, xte, yte):.4f} ({time.time()-t:.0f} s)'])
    folded = fold_bn(model.eval())
    print(f'folded: test accuracy {accuracy(folded, xte, yte):.4f}')
    torch.onnx.export(folded, torch.zeros(1, 1, 28, 28), out, opset_version=13, dynamo=False,
                      input_names=['input'], output_names=['output'], dynamic_axes={'input': {0: 'N'}, 'output': {0: 'N'}})
    rename(out)
    print(f'wrote {out}')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seed', type=int, default=0); p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--out', default='n2d2x/models/MobileNetReLU6_Fashion.onnx')
    a = p.parse_args(); main(a.seed, a.epochs, out=a.out)
