#!/usr/bin/python3
"""bnwasm <-> PyTorch through safetensors, both directions, with load_state_dict.

    /usr/bin/python3 scripts/pytorch/safetensors_roundtrip.py MODEL.json IN.safetensors X.json OUT_DIR [small_resnet | torchvision:NAME]

MODEL.json describes the PyTorch module of a bnwasm network layer by layer, as
web/src/interop/common.js torchModule writes it from the core's description (module names,
the nn.Flatten before a dense layer that reads an image, each layer's config, inputs and
tensor shapes: nothing here works out a shape). IN.safetensors is what net.toSafetensors()
wrote, X.json a list of input rows. The script

1. builds that module (a named layer is the submodule of that dotted name, so state_dict
   keys are the network's own, `layer1.conv1.weight`; the others are indices of an
   nn.Sequential, N.weight, N.running_mean, ...; its forward follows the layers' inputs, so
   residual connections are additions), loads the file with load_state_dict(strict=True)
   and writes its eval-mode outputs on X in float64 to OUT_DIR/outputs.json
   (bnwasm -> PyTorch);
   With `small_resnet` the module is small_resnet.py's SmallResNet itself, not one built
   from MODEL.json: the network's state_dict keys must be that module's own; with
   `torchvision:resnet18` (or another torchvision.models name) it is
   torchvision.models.resnet18(weights=None, num_classes=10).
2. trains it STEPS steps with SGD in training mode (none when it has no parameters: a
   network without layers), saves its state_dict to
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


class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d with zeros on each side given apart ([top, left, bottom, right], which may
    differ): its state_dict keys are nn.Conv2d's."""

    def __init__(self, *args, pads=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x):
        if self.pads is not None:
            top, left, bottom, right = self.pads
            x = nn.functional.pad(x, (left, right, top, bottom))
        return super().forward(x)


def layer_module(layer):
    """The torch module of one layer (None for add, which the forward does itself)."""
    l, t = layer['config'], layer['tensors']
    if l['type'] == 'dense':
        units, inputs = t[0]['shape']
        return nn.Linear(inputs, units, bias=l['useBias'])
    if l['type'] == 'batchNorm':
        if l['biasCorrection'] or l['renorm'] or l['runningVariance'] != 'unbiased':
            raise SystemExit(f'batchNorm options {l} have no BatchNorm1d/2d equivalent')
        momentum = None if l['statistics'] == 'cumulative' else 1 - l['momentum']
        kind = nn.BatchNorm2d if layer['imageIn'] else nn.BatchNorm1d
        return kind(t[0]['shape'][0], eps=l['epsilon'], momentum=momentum)
    if l['type'] == 'conv2d':
        filters, channels, kh, kw = t[0]['shape']
        same = l['padding'] == 'same'
        p = [0] * 4 if same else l['padding'] * 2 if len(l['padding']) == 2 else l['padding']  # [top, left, bottom, right]
        return PaddedConv2d(channels, filters, (kh, kw), stride=tuple(l['stride']), bias=l['useBias'],
                            padding='same' if same else 0, pads=None if same else p)
    if l['type'] in ('maxPool2d', 'avgPool2d'):
        kind = nn.MaxPool2d if l['type'] == 'maxPool2d' else nn.AvgPool2d
        return kind(tuple(l['poolSize']), stride=tuple(l['stride']))
    if l['type'] == 'globalAvgPool':
        return nn.AdaptiveAvgPool2d(1)  # [N, C, 1, 1]: still an image to PyTorch
    if l['type'] == 'flatten':
        return nn.Flatten()
    if l['type'] == 'add':
        return None
    return {'relu': nn.ReLU, 'sigmoid': nn.Sigmoid, 'tanh': nn.Tanh}[l['type']]()


class Network(nn.Module):
    """The module a MODEL.json describes: each layer's module at its name (a dotted path),
    run in the layers' order, each on the outputs of the layers it reads."""

    def __init__(self, model):
        super().__init__()
        self.layers = model['layers']
        self.image = model['image']
        for layer in self.layers:
            module = layer_module(layer)
            if module is None:
                continue
            # The owner of a dotted name: 'layer1.0.conv1' lives at self.layer1[0].conv1.
            *path, last = layer['module'].split('.')
            owner = self
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            owner.add_module(last, module)

    def module_of(self, layer):
        owner = self
        for part in layer['module'].split('.'):
            owner = getattr(owner, part)
        return owner

    def forward(self, x):
        outs = []
        for layer in self.layers:
            ins = [x if p < 0 else outs[p] for p in layer['inputs']]
            if layer['config']['type'] == 'add':
                y = ins[0]
                for more in ins[1:]:
                    y = y + more
            else:
                if layer['flattenBefore'] is not None:
                    ins[0] = torch.flatten(ins[0], 1)
                y = self.module_of(layer)(ins[0])
            outs.append(y)
        y = outs[-1] if outs else x  # a network without layers outputs its input
        return torch.flatten(y, 1) if self.image else y  # bnwasm's outputs are flat


def outputs(model, x, description):
    model.eval()
    with torch.no_grad():
        y = model.double()(x.double())
    model.float()
    return torch.softmax(y, dim=1) if description['loss'] == 'softmaxCrossEntropy' else y


def main():
    model_path, weights_path, x_path, out_dir = sys.argv[1:5]
    config = json.load(open(model_path))
    x = torch.tensor(json.load(open(x_path)), dtype=torch.float32)
    x = x.reshape(len(x), *config['inputShape'])  # bnwasm's flat rows are NCHW images
    module = sys.argv[5] if len(sys.argv) > 5 else None
    if module == 'small_resnet':
        sys.path.insert(0, os.path.dirname(__file__))
        from small_resnet import SmallResNet
        model = SmallResNet(in_channels=config['inputShape'][0])
    elif module is not None and module.startswith('torchvision:'):
        import torchvision
        model = getattr(torchvision.models, module.split(':', 1)[1])(weights=None, num_classes=10)
    else:
        model = Network(config)
    # bnwasm -> PyTorch
    model.load_state_dict(read_safetensors(weights_path), strict=True)
    json.dump(outputs(model, x, config).tolist(), open(os.path.join(out_dir, 'outputs.json'), 'w'))
    # PyTorch -> bnwasm: a few training steps, then the state_dict back out. A module without
    # parameters (a network without layers) has nothing to train: torch.optim refuses it.
    torch.manual_seed(0)
    steps = STEPS if any(True for _ in model.parameters()) else 0
    opt = torch.optim.SGD(model.parameters(), lr=0.05) if steps else None
    model.train()
    for _ in range(steps):
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
    print(f'loaded {len(model.state_dict())} tensors strictly, trained {steps} steps, wrote trained.safetensors')


if __name__ == '__main__':
    main()
