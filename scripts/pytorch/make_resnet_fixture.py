#!/usr/bin/python3
"""The PyTorch float64 reference of the small residual network (small_resnet.py), in the
fixture format tests/js/pytorch-parity.test.js replays (scripts/make_fixtures.py writes the
others):

    /usr/bin/python3 scripts/pytorch/make_resnet_fixture.py [OUT.json]

The nn.Module is traced with torch.fx into its bnwasm config (bnwasm_graph.py: layers named
after their modules, the residual additions as add layers). Its initial weights are torch's
own initialisation rounded to float32 (so bnwasm starts from exactly the same numbers); it
then trains STEPS mini-batches of BATCH images in float64 in training mode (batch statistics,
running averages updated with the unbiased batch variance, momentum 0.1 = bnwasm's 0.9) with
SGD and momentum, and the fixture holds each step's loss, every tensor afterwards (running
statistics included) and the eval-mode probabilities of INFER images. Deterministic.

Before writing, the same run in float32 PyTorch is held to the parity test's tolerances: the
fixture is refused if float32 arithmetic alone uses more than 10% of them, so that passing
means bnwasm computes what PyTorch does, to float32 rounding.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bnwasm_graph import to_bnwasm  # noqa: E402
from small_resnet import SmallResNet  # noqa: E402

NAME = 'resnet-small-two-blocks-b4-sgdm'
SHAPE = [1, 8, 8]
STEPS, BATCH, INFER = 4, 4, 6
LR, MOMENTUM = 0.05, 0.9
# tests/js/pytorch-parity.test.js TOLERANCES
TOL = {'loss': (1e-5, 1e-6), 'weights': (1e-4, 1e-5), 'outputs': (1e-4, 1e-5)}


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(STEPS * BATCH + INFER, *SHAPE, generator=g).float()
    y = torch.randint(0, 10, (STEPS * BATCH,), generator=g)
    return x, y


def run(model, x, y, dtype):
    """Trains in `dtype` from the model's weights; returns losses, state_dict and eval probabilities."""
    model = model.to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    model.train()
    for s in range(STEPS):
        xb = x[s * BATCH:(s + 1) * BATCH].to(dtype)
        loss = F.cross_entropy(model(xb), y[s * BATCH:(s + 1) * BATCH])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x[STEPS * BATCH:].to(dtype)), dim=1)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}, probs


def weights_json(state, tensors):
    out = []
    for layer, names in enumerate(tensors):
        for name, key in names:
            t = state[key]
            out.append({'layer': layer, 'name': name, 'shape': list(t.shape),
                        'values': [float(f'{v:.12g}') for v in t.reshape(-1).tolist()]})
    return out


def worst_share(expected, actual, kind, scale=None):
    """The largest |actual - expected| / (atol + rtol |expected|), atol = atolRel * scale."""
    rtol, atol_rel = TOL[kind]
    scale = expected.abs().max() if scale is None else scale
    allowed = atol_rel * scale + rtol * expected.abs()
    return float(((actual - expected).abs() / allowed).max())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'fixtures', 'pytorch', f'{NAME}.json')
    torch.manual_seed(7)
    model = SmallResNet(in_channels=SHAPE[0])
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float())  # float32 numbers, as bnwasm gets them
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    config, tensors = to_bnwasm(model, SHAPE, optimizer={'type': 'sgd', 'learningRate': LR, 'momentum': MOMENTUM}, seed=7)
    x, y = data(11)

    model64 = SmallResNet(in_channels=SHAPE[0])
    model64.load_state_dict(initial)
    losses, final, probs = run(model64, x, y, torch.float64)
    model32 = SmallResNet(in_channels=SHAPE[0])
    model32.load_state_dict(initial)
    losses32, final32, probs32 = run(model32, x, y, torch.float32)

    shares = {'loss': worst_share(torch.tensor(losses), torch.tensor(losses32).double(), 'loss'),
              'outputs': worst_share(probs, probs32.double(), 'outputs'), 'weights': 0.0}
    for key, v in final.items():
        if key.endswith('num_batches_tracked'):
            continue
        v32 = final32[key].double()
        if key.endswith('running_var'):
            scale = v.abs()
        elif key.endswith('running_mean'):
            scale = final[key.replace('running_mean', 'running_var')].sqrt()
        else:
            scale = None
        shares['weights'] = max(shares['weights'], worst_share(v, v32, 'weights', scale))
    print(f'{NAME}: float32 PyTorch uses ' + ', '.join(f'{k} {100 * v:.2f}%' for k, v in shares.items()) + ' of the tolerances')
    if max(shares.values()) > 0.1:
        raise SystemExit('refused: float32 rounding alone uses more than 10% of a tolerance')

    steps = [{'x': x[s * BATCH:(s + 1) * BATCH].reshape(-1).tolist(), 'y': y[s * BATCH:(s + 1) * BATCH].tolist(),
              'loss': losses[s]} for s in range(STEPS)]
    fixture = {
        'name': NAME,
        'description': 'small_resnet.py SmallResNet traced with torch.fx: conv stem, a residual block, a '
                       'downsampling block with a 1x1 stride-2 conv on its skip, global pooling, linear; '
                       f'{STEPS} SGD steps (momentum {MOMENTUM}) of batch {BATCH} in float64 training mode',
        'config': config,
        'initialWeights': weights_json(initial, tensors),
        'steps': steps,
        'finalWeights': weights_json(final, tensors),
        'inference': {'x': x[STEPS * BATCH:].reshape(-1).tolist(), 'outputs': probs.reshape(-1).tolist()},
        'batchesTracked': STEPS,
    }
    with open(out, 'w') as f:
        json.dump(fixture, f)
        f.write('\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
