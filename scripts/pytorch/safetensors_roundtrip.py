#!/usr/bin/python3
"""bnwasm <-> PyTorch through safetensors, both directions, with load_state_dict.

    /usr/bin/python3 scripts/pytorch/safetensors_roundtrip.py CONFIG.json IN.safetensors X.json OUT_DIR

CONFIG.json is the bnwasm network config (net.config), IN.safetensors what
net.toSafetensors() wrote, X.json a list of input rows. The script

1. builds the nn.Sequential that matches the config layer by layer (so state_dict keys
   are N.weight, N.bias, N.running_mean, N.running_var, N.num_batches_tracked with N
   the index in config.layers; conv networks: nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d,
   nn.AvgPool2d, nn.AdaptiveAvgPool2d(1), nn.Flatten, and one more nn.Flatten where
   bnwasm flattens an image implicitly, before a dense layer, which moves the layers
   after it one index on: web/src/interop/common.js torchLayout), loads the file with load_state_dict(strict=True) and
   writes its eval-mode outputs on X in float64 to OUT_DIR/outputs.json
   (bnwasm -> PyTorch);
2. trains it STEPS steps with SGD in training mode, saves its state_dict to
   OUT_DIR/trained.safetensors and writes the new eval outputs to
   OUT_DIR/trained-outputs.json (PyTorch -> bnwasm).

PyTorch 1.13 has no safetensors module: the format (8-byte little-endian header length,
JSON header, raw little-endian data) is read and written here with the standard
library and torch.frombuffer. PyTorch's BatchNorm1d momentum is the weight of the new
batch, bnwasm's (and ONNX's) the weight of the past: momentum_torch = 1 - momentum_bnwasm;
bnwasm's statistics 'cumulative' is momentum=None.
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn

DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'F16': torch.float16, 'I64': torch.int64, 'I32': torch.int32}
NAMES = {v: k for k, v in DTYPES.items()}
STEPS = 3


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        begin, end = e['data_offsets']
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[e['dtype']]) if end > begin else torch.zeros(0, dtype=DTYPES[e['dtype']])
        out[name] = t.reshape(e['shape']).clone()
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(chunks))


def sequential(config):
    """The nn.Sequential of a bnwasm config, one module per config layer, plus an
    nn.Flatten before a dense layer whose input is still an image [N, C, H, W]."""
    layers = []
    image = 'inputShape' in config  # PyTorch's tensor is [N, C, H, W]
    width = config['inputShape'][0] if image else config['inputSize']  # channels or features
    size = config['inputSize']  # values per example
    shape = list(config['inputShape']) if image else None
    for l in config['layers']:
        if l['type'] == 'dense':
            if image:
                layers.append(nn.Flatten())
                image = False
            layers.append(nn.Linear(size, l['units'], bias=l['useBias']))
            width = size = l['units']
        elif l['type'] == 'batchNorm':
            if l['biasCorrection'] or l['renorm'] or l['runningVariance'] != 'unbiased':
                raise SystemExit(f'batchNorm options {l} have no BatchNorm1d/2d equivalent')
            momentum = None if l['statistics'] == 'cumulative' else 1 - l['momentum']
            kind = nn.BatchNorm2d if image else nn.BatchNorm1d
            layers.append(kind(width, eps=l['epsilon'], momentum=momentum))
        elif l['type'] == 'conv2d':
            padding = 'same' if l['padding'] == 'same' else tuple(l['padding'])
            conv = nn.Conv2d(width, l['filters'], tuple(l['kernelSize']), stride=tuple(l['stride']), padding=padding, bias=l['useBias'])
            layers.append(conv)
            width = l['filters']
            shape = [width] + [
                (shape[1 + k] + (l['kernelSize'][k] - 1 if padding == 'same' else 2 * padding[k]) - l['kernelSize'][k]) // l['stride'][k] + 1
                for k in range(2)]
            size = shape[0] * shape[1] * shape[2]
        elif l['type'] in ('maxPool2d', 'avgPool2d'):
            kind = nn.MaxPool2d if l['type'] == 'maxPool2d' else nn.AvgPool2d
            layers.append(kind(tuple(l['poolSize']), stride=tuple(l['stride'])))
            shape = [shape[0]] + [(shape[1 + k] - l['poolSize'][k]) // l['stride'][k] + 1 for k in range(2)]
            size = shape[0] * shape[1] * shape[2]
        elif l['type'] == 'globalAvgPool':
            layers.append(nn.AdaptiveAvgPool2d(1))  # [N, C, 1, 1]: still an image to PyTorch
            size = width
        elif l['type'] == 'flatten':
            layers.append(nn.Flatten())
            image = False
            width = size
        else:
            layers.append({'relu': nn.ReLU, 'sigmoid': nn.Sigmoid, 'tanh': nn.Tanh}[l['type']]())
    if image:
        layers.append(nn.Flatten())  # bnwasm's outputs are flat
    return nn.Sequential(*layers)


def outputs(model, x, config):
    model.eval()
    with torch.no_grad():
        y = model.double()(x.double())
    model.float()
    return torch.softmax(y, dim=1) if config['loss'] == 'softmaxCrossEntropy' else y


def main():
    config_path, weights_path, x_path, out_dir = sys.argv[1:5]
    config = json.load(open(config_path))
    x = torch.tensor(json.load(open(x_path)), dtype=torch.float32)
    if 'inputShape' in config:
        x = x.reshape(len(x), *config['inputShape'])  # bnwasm's flat rows are NCHW images
    model = sequential(config)
    # bnwasm -> PyTorch
    model.load_state_dict(read_safetensors(weights_path), strict=True)
    json.dump(outputs(model, x, config).tolist(), open(os.path.join(out_dir, 'outputs.json'), 'w'))
    # PyTorch -> bnwasm: a few training steps, then the state_dict back out.
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(STEPS):
        y = model(x)
        if config['loss'] == 'softmaxCrossEntropy':
            loss = nn.functional.cross_entropy(y, torch.arange(len(x)) % y.shape[1])
        else:
            loss = (y ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    write_safetensors(os.path.join(out_dir, 'trained.safetensors'), model.state_dict())
    json.dump(outputs(model, x, config).tolist(), open(os.path.join(out_dir, 'trained-outputs.json'), 'w'))
    print(f'loaded {len(model.state_dict())} tensors strictly, trained {STEPS} steps, wrote trained.safetensors')


if __name__ == '__main__':
    main()
