#!/usr/bin/python3
"""ONNX files written by torch.onnx.export, with float64 reference outputs, for
tests/js/interop-onnx-import.test.js. Run with Debian's python (python3-torch 1.13,
python3-onnx 1.12):

    /usr/bin/python3 scripts/pytorch/make_onnx_fixtures.py

Each case is an nn.Sequential trained a few steps (so its running statistics are far
from 0 and 1), then exported in eval mode at opsets 13 to 17, with and without
constant folding. The reference is the same model in float64 on the same float32
weights and inputs, so the difference the test sees is bnwasm's float32 arithmetic.
The fixture also holds the running statistics after one training-mode forward pass on
a fine-tuning batch (PyTorch momentum m: running = (1 - m) * running + m * batch,
unbiased variance), which bnwasm must reproduce after one trainBatch.
Every file is checked with onnx.checker (full_check) before it is written.

Conv networks (Conv2d, grouped, depthwise and dilated too, BatchNorm2d, ReLU, ReLU6, MaxPool2d
with padding and ceil_mode, AvgPool2d with padding, AdaptiveAvgPool2d(1), Flatten, Linear,
BatchNorm1d) are exported twice more: torch.onnx.export's default
(training=TrainingMode.EVAL) folds each BatchNorm2d that follows a Conv into the Conv,
so its running statistics are gone from the file; training=TrainingMode.PRESERVE on
the eval-mode model keeps every BatchNormalization node (training_mode 0). Each file
entry lists the batch norms whose nodes it kept ('batchNormKept').
"""

import io
import json
import os

import onnx
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, 'tests', 'fixtures', 'onnx')
OPSETS = [13, 14, 15, 16, 17]


class MatMulAdd(nn.Module):
    """x @ W + b written out: torch exports it as MatMul + Add."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_in, n_out) / n_in ** 0.5)
        self.b = nn.Parameter(torch.randn(n_out) * 0.1)

    def forward(self, x):
        return x.matmul(self.w) + self.b


def cases():
    yield 'flatten-linear-bn-relu-dropout-softmax', (3, 4), lambda: nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(16, 4), nn.Softmax(dim=1))
    yield 'nobias-bn-m02-eps1e-3-tanh-logsoftmax', (8,), lambda: nn.Sequential(
        nn.Linear(8, 10, bias=False), nn.BatchNorm1d(10, momentum=0.2, eps=1e-3), nn.Tanh(),
        nn.Linear(10, 3), nn.LogSoftmax(dim=1))
    yield 'input-bn-sigmoid-raw', (8,), lambda: nn.Sequential(
        nn.BatchNorm1d(8), nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 2))
    yield 'matmul-add-bn-relu-two-bn', (6,), lambda: nn.Sequential(
        MatMulAdd(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 12), nn.BatchNorm1d(12, momentum=0.05),
        nn.ReLU(), nn.Linear(12, 5), nn.Softmax(dim=1))
    # 8x8 -> conv 3x3 pad 1 -> 8x8 -> max 2 -> 4x4 -> conv (2, 3) stride (1, 2) pad 1 -> 5x2 -> avg 2 stride 1 -> 4x1
    yield 'conv-bn-relu-maxpool-conv-bn-avgpool-linear-softmax', (1, 8, 8), lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, (2, 3), stride=(1, 2), padding=1), nn.BatchNorm2d(6, momentum=0.2, eps=1e-3), nn.ReLU(),
        nn.AvgPool2d(2, stride=1), nn.Flatten(), nn.Linear(24, 3), nn.Softmax(dim=1))
    # 3x9x7 -> conv 3x3 stride 2 -> 4x3 -> BN -> conv 1x1 -> BN (padding='same' does not export in torch 1.13: aten::_convolution_mode) -> global average -> 8
    yield 'conv-stride2-bn-conv1x1-gap-linear-bn1d-raw', (3, 9, 7), lambda: nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=2), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 8, 1, bias=False),
        nn.BatchNorm2d(8, momentum=0.05), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    # MobileNet's pieces: 3x10x9 -> conv 3x3 pad 1 -> ReLU6 (Clip) -> depthwise 3x3 stride 2 pad 1 -> 5x5 -> grouped (4)
    # dilated (2) 3x3 pad 2 -> 5x5 -> max 3 stride 2 pad 1 ceil -> 3x3 -> avg 2 pad 1 (a Pad of zeros + AveragePool)
    # -> 2x2 -> Dropout (gone in eval) -> 48
    yield 'mobile-relu6-depthwise-grouped-dilated-maxpool-ceil-avgpool-pad-softmax', (3, 10, 9), lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), nn.BatchNorm2d(8, momentum=0.2), nn.ReLU6(),
        nn.Conv2d(8, 12, 3, padding=2, dilation=2, groups=4), nn.BatchNorm2d(12), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.AvgPool2d(2, padding=1), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(48, 4), nn.Softmax(dim=1))


def f32(t):
    return t.to(torch.float32).to(torch.float64)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    for k, (name, feature_shape, make) in enumerate(cases()):
        torch.manual_seed(100 + k)
        model = make()
        n_in = 1
        for d in feature_shape:
            n_in *= d
        # A few training-mode steps so running statistics and weights move.
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        model.train()
        for _ in range(5):
            x = torch.randn(32, *feature_shape) * 2 + 0.5
            out = model(x)
            loss = (out ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        x = f32(torch.randn(40, *feature_shape) * 2 + 0.5)
        reference = model.double()(x)
        model = model.float()
        files = []
        conv = any(isinstance(m, nn.Conv2d) for m in model)
        modes = [('', torch.onnx.TrainingMode.EVAL)] + ([('-bnkept', torch.onnx.TrainingMode.PRESERVE)] if conv else [])
        for opset in OPSETS:
            for fold in (False, True):
                for suffix, training in modes:
                    buf = io.BytesIO()
                    torch.onnx.export(model, x[:2].float(), buf, opset_version=opset, do_constant_folding=fold,
                                      training=training, input_names=['input'], output_names=['output'],
                                      dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})
                    proto = onnx.load_from_string(buf.getvalue())
                    onnx.checker.check_model(proto, full_check=True)
                    kept = sorted(n.input[3].split('.')[0] for n in proto.graph.node if n.op_type == 'BatchNormalization')
                    fname = f'{name}-opset{opset}-{"folded" if fold else "unfolded"}{suffix}.onnx'
                    with open(os.path.join(OUT, fname), 'wb') as f:
                        f.write(buf.getvalue())
                    files.append({'file': fname, 'opset': opset, 'constantFolding': fold, 'batchNormKept': kept})
        # One training-mode forward on a fine-tuning batch: the running statistics after it.
        tune = f32(torch.randn(16, *feature_shape) * 2 + 0.5)
        model = model.double()
        before = {k2: v.clone() for k2, v in model.state_dict().items()}
        model.train()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        with torch.no_grad():
            model(tune)
        bn = {}
        for i, m in enumerate(model):
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                bn[str(i)] = {
                    'momentum': m.momentum,
                    'eps': m.eps,
                    'runningMeanBefore': before[f'{i}.running_mean'].tolist(),
                    'runningMeanAfter': m.running_mean.tolist(),
                    'runningVarAfter': m.running_var.tolist(),
                }
        last = type(model[len(model) - 1]).__name__
        fixture = {
            'name': name,
            'inputShape': list(feature_shape),
            'x': x.reshape(40, n_in).tolist(),
            'output': reference.tolist(),
            'final': last,
            'tune': tune.reshape(16, n_in).tolist(),
            'batchNorm': bn,
            'files': files,
            'torch': torch.__version__,
            'onnx': onnx.__version__,
        }
        with open(os.path.join(OUT, f'{name}.json'), 'w') as f:
            json.dump(fixture, f)
        print(f'{name}: {len(files)} files')


if __name__ == '__main__':
    main()
