#!/usr/bin/python3
"""The PyTorch float64 references of torchvision's resnet18 and mobilenet_v2 (Debian's
python3-torchvision 0.14.1, weights=None, num_classes=10, input 3x32x32), which
tests/js/torchvision.test.js replays:

    /usr/bin/python3 scripts/pytorch/make_torchvision_fixtures.py OUT_DIR [--part training|onnx] [--models resnet18,...]
    /usr/bin/python3 scripts/pytorch/make_torchvision_fixtures.py OUT_DIR --write-manifest

A ResNet-18 is 11.2 million weights (44 MB as float32): too large to commit. The tests run this
script into build/torchvision/ (ignored) when its output is missing or the script changed, and
hold what it wrote to the sha256 sums committed in tests/fixtures/torchvision.sha256, so a
changed generator (or a torch that computes otherwise) is noticed; --write-manifest writes that
file from OUT_DIR after an intended change. Deterministic: fixed seeds, one thread.

Per model M, --part training (the default) writes
- M-initial.safetensors, the state_dict every case starts from, float32: torch's own
  initialisation (seeded) with the batch norms' gamma and beta drawn around 1 and 0 (a
  trained network's are not exactly 1 and 0; where a bias's gradient is 0 in theory, as
  before every MobileNetV2 1x1 conv and its batch norm, a bias of 0 would be compared by its
  float32 noise alone), then PRETRAIN_STEPS float64 SGD steps of PRETRAIN_BATCH images in
  training mode, so that the running averages and batch counts are not the initial ones, then
  every tensor rounded to float32 (the numbers bnwasm receives);
- M.json: the bnwasm config traced by torch.fx from it (bnwasm_graph.py: layers named after their
  modules, the residual additions as add layers, Dropout as dropout), each layer's tensors as
  (bnwasm name, state_dict key), the batch counts, the tolerances and what float32 PyTorch
  uses of them;
- M-inference.safetensors: INFER images and their float64 eval-mode logits and probabilities.
Per training case C of CASES (a model, the batch-norm mode, batch size, steps, learning rate):
- C.json: M's config with the optimizer (SGD, momentum MOMENTUM) and each batch norm's mode
  ('frozen': PyTorch's fine-tuning recipe, its batch-norm modules in eval() while the rest
  trains), the batch counts, the tolerances and what float32 PyTorch uses of them;
- C-final.safetensors: the float64 state_dict after the steps from M-initial (a fresh
  optimizer; batch norm 'batch': batch statistics, running averages updated with the unbiased
  batch variance, momentum 0.1 = bnwasm's 0.9);
- C-data.safetensors: the training images and labels, the losses, and INFER images with their
  float64 eval-mode logits and probabilities afterwards.
mobilenet_v2's classifier starts with nn.Dropout(0.2). bnwasm draws its dropout masks from a
hash of the network's seed, the step, the layer and the value's place (cpp/src/ops/
elementwise.cpp, registry.cpp next_u64); PyTorch's generator cannot make those draws, so the
training steps apply the same mask with DropoutAsBnwasm (pretraining uses torch's own
nn.Dropout: it only makes the starting point).

Before writing, the same computations in float32 PyTorch are held to the parity test's
tolerances, as scripts/make_fixtures.py holds its own: four float32 runs that round
differently (as given; without mkldnn; every starting value moved by one ulp, two ways: each
meets its own near-ties of ReLU and max-pool decisions) must each use at most BUDGET of every
tolerance, so that passing means bnwasm computes what PyTorch does, to float32 rounding.
(make_fixtures.py's other guard, no ReLU input within 20 float32 errors of 0, cannot hold for a
million activations: some always lie that close.) tests/js/torchvision.test.js says why two
cases need wider tolerances (TOL_OVERRIDES) and why mobilenet_v2's training-mode case uses
batch 32.

--part onnx writes M-opset{13..17}-{folded,preserve}.onnx: torch.onnx.export of the initial
model in eval mode (float32), default export (batch norm folded into Conv) and
training=TrainingMode.PRESERVE (BatchNormalization kept), input 'input' [N, 3, 32, 32] with a
dynamic batch, output 'output' (logits).
"""

import argparse
import hashlib
import io
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bnwasm_graph import to_bnwasm  # noqa: E402
from safetensors_roundtrip import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(ROOT, 'tests', 'fixtures', 'torchvision.sha256')
MODELS = {'resnet18': 17, 'mobilenet_v2': 18}  # name: seed
SHAPE = [3, 32, 32]
PRETRAIN_STEPS, PRETRAIN_BATCH, PRETRAIN_LR = 5, 8, 0.01
BN_SPREAD = 0.1
INFER, MOMENTUM = 8, 0.9
CASES = {  # name: model, batch-norm mode, batch, steps, learning rate
    'resnet18-frozen-b4': ('resnet18', 'frozen', 4, 3, 1e-2),
    'resnet18-batch-b4': ('resnet18', 'batch', 4, 2, 2e-4),
    'mobilenet_v2-frozen-b4': ('mobilenet_v2', 'frozen', 4, 3, 1e-2),
    'mobilenet_v2-batch-b32': ('mobilenet_v2', 'batch', 32, 2, 2e-4),
}
OPSETS = [13, 14, 15, 16, 17]
# (rtol, atolRel) as tests/js/parity-tolerances.js TOLERANCES, the existing fixtures' own; 'logits'
# are the outputs before the softmax, which the inference check compares too. Overrides where
# the model's own conditioning needs more (tests/js/torchvision.test.js gives the measurements).
TOL = {'loss': (1e-5, 1e-6), 'weights': (1e-4, 1e-5), 'outputs': (1e-4, 1e-5), 'logits': (1e-4, 1e-5)}
TOL_OVERRIDES = {
    'resnet18-batch-b4': {'loss': (3e-5, 3e-6)},
    'mobilenet_v2-batch-b32': {'loss': (1e-4, 1e-5), 'weights': (5e-3, 5e-4)},
}
BUDGET = 0.1


def splitmix64(state):
    """registry.cpp next_u64: the new state and the draw."""
    m = (1 << 64) - 1
    state = (state + 0x9E3779B97F4A7C15) & m
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return state, z ^ (z >> 31)


def bnwasm_keep(seed, step, layer, count, rate):
    """elementwise.cpp DropoutOp::keep for the values 0..count-1 of a batch: True where kept."""
    m = (1 << 64) - 1
    base = ((seed * 0x9E3779B97F4A7C15) & m) ^ (((step + 1) * 0xBF58476D1CE4E5B9) & m) ^ (((layer + 1) * 0x94D049BB133111EB) & m)
    return torch.tensor([(splitmix64(base ^ i)[1] >> 11) * 2.0 ** -53 >= rate for i in range(count)])


class DropoutAsBnwasm(nn.Module):
    """nn.Dropout(rate) with bnwasm's mask for training step `step` of the network's layer `layer`."""

    def __init__(self, rate, seed, layer):
        super().__init__()
        self.rate, self.seed, self.layer, self.step = rate, seed, layer, 0

    def forward(self, x):
        if not self.training:
            return x
        keep = bnwasm_keep(self.seed, self.step, self.layer, x.numel(), self.rate).reshape(x.shape)
        return torch.where(keep, x / (1 - self.rate), torch.zeros((), dtype=x.dtype))


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPE, generator=g).float()
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def initial_model(name, seed):
    """torchvision's model, pretrained PRETRAIN_STEPS float64 steps, rounded to float32."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + BN_SPREAD * torch.randn_like(m.weight))
                m.bias.copy_(BN_SPREAD * torch.randn_like(m.bias))
    x, y = data(seed + 1000, PRETRAIN_STEPS * PRETRAIN_BATCH)
    opt = torch.optim.SGD(model.parameters(), lr=PRETRAIN_LR, momentum=MOMENTUM)
    model.train()
    for s in range(PRETRAIN_STEPS):
        b = slice(s * PRETRAIN_BATCH, (s + 1) * PRETRAIN_BATCH)
        loss = F.cross_entropy(model(x[b].double()), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.float().eval()


def with_bnwasm_dropout(model, config, seed):
    """The model with each nn.Dropout replaced by a DropoutAsBnwasm of its bnwasm layer's index."""
    layers = [i for i, layer in enumerate(config['layers']) if layer['type'] == 'dropout']
    modules = [(n, m) for n, m in model.named_modules() if type(m) is nn.Dropout]
    assert len(layers) == len(modules), 'each nn.Dropout is one bnwasm dropout layer'
    for (path, m), index in zip(modules, layers):
        *owner, last = path.split('.')
        parent = model.get_submodule('.'.join(owner))
        setattr(parent, last, DropoutAsBnwasm(m.p, seed, index))
    return model


def nudged(state, seed):
    """Every float tensor moved by one float32 ulp up or down at random: another rounding of the same start."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            up = torch.rand(v.shape, generator=g) < 0.5
            v = torch.where(up, torch.nextafter(v, torch.tensor(float('inf'))), torch.nextafter(v, torch.tensor(float('-inf'))))
        out[k] = v
    return out


# The float32 runs that stand in for bnwasm's float32 rounding: each rounds differently (mkldnn's
# convolutions or PyTorch's own, the start moved by an ulp) and so meets its own near-ties.
SHADOWS = [('as given', 0, True), ('without mkldnn', 0, False), ('weights nudged by an ulp', 1, True), ('weights nudged another way', 2, True)]


def train(case, initial, config, x, y, x_infer, dtype, mkldnn=True):
    """The case's training steps in dtype from the initial state: losses, final state_dict, and
    the eval-mode logits of x_infer afterwards."""
    name, mode, batch, steps, lr = CASES[case]
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        model = with_bnwasm_dropout(getattr(torchvision.models, name)(weights=None, num_classes=10), config, config['seed'])
        model.load_state_dict(initial)
        model = model.to(dtype)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)
        dropouts = [m for m in model.modules() if isinstance(m, DropoutAsBnwasm)]
        losses = []
        model.train()
        if mode == 'frozen':  # PyTorch's fine-tuning recipe: batch norm in eval() while the rest trains
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        for s in range(steps):
            for d in dropouts:
                d.step = s
            b = slice(s * batch, (s + 1) * batch)
            loss = F.cross_entropy(model(x[b].to(dtype)), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            logits = model(x_infer.to(dtype))
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}, logits


def infer(name, state, x, dtype, mkldnn=True):
    """Eval-mode logits of x."""
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        model = getattr(torchvision.models, name)(weights=None, num_classes=10)
        model.load_state_dict(state)
        model = model.to(dtype).eval()
        with torch.no_grad():
            return model(x.to(dtype))


def tolerances(case):
    return {**TOL, **TOL_OVERRIDES.get(case, {})}


def worst_share(expected, actual, tol, scale=None):
    """The largest |actual - expected| / (atol + rtol |expected|), atol = atolRel * scale."""
    rtol, atol_rel = tol
    scale = expected.abs().max() if scale is None else scale
    allowed = atol_rel * scale + rtol * expected.abs()
    return float(((actual - expected).abs() / allowed).max())


def outputs_shares(logits, logits32, tol):
    return {'outputs': worst_share(torch.softmax(logits, 1), torch.softmax(logits32.double(), 1), tol['outputs']),
            'logits': worst_share(logits, logits32.double(), tol['logits'])}


def training_shares(ref, f32, tol):
    """What a float32 run uses of each tolerance: losses, every tensor, eval probabilities afterwards."""
    losses, final, logits = ref
    losses32, final32, logits32 = f32
    shares = {'loss': worst_share(torch.tensor(losses), torch.tensor(losses32).double(), tol['loss']), 'weights': 0.0}
    for key, v in final.items():
        if key.endswith('num_batches_tracked'):
            continue
        if key.endswith('running_var'):
            scale = v.abs()
        elif key.endswith('running_mean'):
            scale = final[key.replace('running_mean', 'running_var')].sqrt()
        else:
            scale = None
        shares['weights'] = max(shares['weights'], worst_share(v, final32[key].double(), tol['weights'], scale))
    shares['outputs'] = outputs_shares(logits, logits32, tol)['outputs']
    return shares


def budget_check(what, runs):
    """Prints each float32 run's shares and refuses (exits) when one uses more than BUDGET."""
    worst = {}
    for label, shares in runs:
        print(f'{what}: float32 PyTorch {label} uses ' + ', '.join(f'{k} {100 * v:.2f}%' for k, v in shares.items()) + ' of the tolerances')
        for k, v in shares.items():
            worst[k] = max(worst.get(k, 0.0), v)
    if max(worst.values()) > BUDGET:
        raise SystemExit(f'{what}: refused: float32 rounding alone uses more than {100 * BUDGET:.0f}% of a tolerance')
    return worst


def model_part(name, out_dir):
    """M-initial.safetensors, M-inference.safetensors and M.json: the starting state and its eval outputs."""
    seed = MODELS[name]
    module = initial_model(name, seed)
    initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
    config, tensors = to_bnwasm(module, SHAPE, seed=seed)
    x_infer, _ = data(seed + 2000, INFER)
    logits = infer(name, initial, x_infer, torch.float64)
    shares = budget_check(f'{name} inference', [(label, outputs_shares(logits, infer(name, nudged(initial, k) if k else initial, x_infer, torch.float32, mkldnn), TOL))
                                                 for label, k, mkldnn in SHADOWS])
    write_safetensors(os.path.join(out_dir, f'{name}-initial.safetensors'), initial)
    write_safetensors(os.path.join(out_dir, f'{name}-inference.safetensors'),
                      {'x': x_infer, 'logits': logits, 'probabilities': torch.softmax(logits, 1)})
    write_json(os.path.join(out_dir, f'{name}.json'), {
        'name': name,
        'description': f'torchvision {torchvision.__version__} {name}(weights=None, num_classes=10) at 3x32x32 traced by torch.fx; '
                       f'batch-norm gamma and beta drawn around 1 and 0 (spread {BN_SPREAD}), then {PRETRAIN_STEPS} float64 SGD steps of '
                       f'{PRETRAIN_BATCH} images in training mode, every tensor rounded to float32: {name}-initial.safetensors; '
                       f'the float64 eval-mode logits of {INFER} images with it: {name}-inference.safetensors',
        'config': config,
        'tensors': tensors,
        'batchesTracked': PRETRAIN_STEPS,
        'tolerances': {k: {'rtol': r, 'atolRel': a} for k, (r, a) in TOL.items() if k in shares},
        'float32Shares': shares,
    })
    return module, initial, config, tensors


def case_part(case, initial, config, tensors, out_dir):
    """C.json, C-final.safetensors and C-data.safetensors of one training case."""
    name, mode, batch, steps, lr = CASES[case]
    seed = MODELS[name]
    config = json.loads(json.dumps(config))
    config['optimizer'] = {'type': 'sgd', 'learningRate': lr, 'momentum': MOMENTUM}
    if mode == 'frozen':
        for layer in config['layers']:
            if layer['type'] == 'batchNorm':
                layer['mode'] = 'frozen'
    x, y = data(seed + 3000 + batch, steps * batch)
    x_infer, _ = data(seed + 2000, INFER)
    ref = train(case, initial, config, x, y, x_infer, torch.float64)
    shares = budget_check(case, [(label, training_shares(ref, train(case, nudged(initial, k) if k else initial, config, x, y, x_infer, torch.float32, mkldnn), tolerances(case)))
                                 for label, k, mkldnn in SHADOWS])
    losses, final, logits = ref
    write_safetensors(os.path.join(out_dir, f'{case}-final.safetensors'), final)
    write_safetensors(os.path.join(out_dir, f'{case}-data.safetensors'), {
        'x': x, 'y': y, 'losses': torch.tensor(losses, dtype=torch.float64),
        'x_infer': x_infer, 'logits': logits, 'probabilities': torch.softmax(logits, 1)})
    write_json(os.path.join(out_dir, f'{case}.json'), {
        'name': case,
        'model': name,
        'description': f'{name}-initial.safetensors, then {steps} SGD steps (momentum {MOMENTUM}, learning rate {lr}) of batch {batch} '
                       f'in float64 with batch norm {"in training mode (batch statistics, running averages updated)" if mode == "batch" else "frozen (eval(): running averages, left as they are)"}',
        'config': config,
        'tensors': tensors,
        'steps': steps,
        'batch': batch,
        'batchesTracked': PRETRAIN_STEPS + (steps if mode == 'batch' else 0),
        'tolerances': {k: {'rtol': r, 'atolRel': a} for k, (r, a) in tolerances(case).items() if k in shares},
        'float32Shares': shares,
    })


def write_json(path, value):
    with open(path, 'w') as f:
        json.dump(value, f, indent=1)
        f.write('\n')


def onnx_part(name, out_dir):
    initial = read_safetensors(os.path.join(out_dir, f'{name}-initial.safetensors'))
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    model.load_state_dict(initial)
    model.eval()
    x = torch.zeros(1, *SHAPE)
    for opset in OPSETS:
        for label, mode in [('folded', torch.onnx.TrainingMode.EVAL), ('preserve', torch.onnx.TrainingMode.PRESERVE)]:
            buffer = io.BytesIO()
            torch.onnx.export(model, x, buffer, opset_version=opset, training=mode, input_names=['input'], output_names=['output'],
                              dynamic_axes={'input': {0: 'N'}, 'output': {0: 'N'}})
            with open(os.path.join(out_dir, f'{name}-opset{opset}-{label}.onnx'), 'wb') as f:
                f.write(buffer.getvalue())


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('out_dir')
    parser.add_argument('--part', choices=['training', 'onnx'], default='training')
    parser.add_argument('--models', default=','.join(MODELS))
    parser.add_argument('--write-manifest', action='store_true')
    args = parser.parse_args()
    if args.write_manifest:
        files = sorted(f for f in os.listdir(args.out_dir) if f.endswith(('.json', '.safetensors', '.onnx')))
        with open(MANIFEST, 'w') as f:
            f.write(''.join(f'{sha256(os.path.join(args.out_dir, n))}  {n}\n' for n in files))
        print(f'wrote {MANIFEST}: {len(files)} files')
        return
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.models.split(','):
        if args.part == 'training':
            _, initial, config, tensors = model_part(name, args.out_dir)
            for case in (c for c in CASES if CASES[c][0] == name):
                case_part(case, initial, config, tensors, args.out_dir)
        else:
            onnx_part(name, args.out_dir)
        print(f'{name}: wrote its {args.part} files to {args.out_dir}')

if __name__ == '__main__':
    main()
