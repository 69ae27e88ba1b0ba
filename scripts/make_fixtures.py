#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures that tests/js/pytorch-parity.test.js replays.

Run with a Python that has torch (Debian: the system python, with python3-torch):

    npm run fixtures        (picks that Python; BNWASM_PYTHON=/path/to/python overrides it)

Each case is a small network trained for a few mini-batches. The reference is computed in
float64 with a hand-written batch norm (so that the Keras-style 'biased' running variance can be
expressed) and torch's own SGD/Adam. The script then checks its own output four ways before it
writes anything:

1. Torch parity: every case torch can express (all batch-norm layers 'unbiased') is re-run with
   nn.Linear/nn.BatchNorm1d and must agree with the hand-written reference to 1e-12.
2. Float32 shadow: the same network in float32, with batch norm's backward in the fused form
   that bnwasm and torch's kernel use, run SHADOW_SAMPLES times (mini-batch rows reordered,
   initial weights nudged by one ulp), must stay within SHADOW_BUDGET of the tolerances the Jest
   test uses, so that float32 rounding alone cannot fail that test.
3. Margins: every ReLU input in training is at least RELU_MARGIN times its float32 error away
   from 0, so rounding cannot switch a unit on or off and change a gradient row.
4. Mutants: plausible implementation mistakes (eps outside the sqrt, the other running-variance
   estimator, the momentum convention reversed, ...) must exceed the tolerances in at least one
   fixture, so the test can fail for the mistakes it is meant to catch.
If a check fails nothing is written. The seeds in CASES were chosen so that checks 2 and 3 pass;
when a case changes, change its seed or its scales, not the tolerances.

Inputs, targets and initial weights are rounded to float32 before the reference runs, so that the
reference starts from exactly the numbers bnwasm receives; the remaining difference is bnwasm's
float32 arithmetic.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'tests', 'fixtures', 'pytorch')

# Tolerances: keep in sync with tests/js/pytorch-parity.test.js, which explains them.
# An element passes when |actual - expected| <= atolRel * scale + rtol * |expected|, where scale
# is max|expected| of the tensor, or per element for running statistics (atol_scale).
# 'outputs' is predict after training; 'reloadedOutputs' is predict after setWeights(finalWeights).
TOLERANCES = {
    'loss': {'rtol': 1e-5, 'atolRel': 1e-6},
    'weights': {'rtol': 1e-4, 'atolRel': 1e-5},
    'outputs': {'rtol': 1e-4, 'atolRel': 1e-5},
    'reloadedOutputs': {'rtol': 1e-4, 'atolRel': 1e-5},
}
# Inputs near 1000 lose about 3 decimal digits to cancellation in float32, and predict after
# training amplifies weight errors by the input offset. The Jest test explains the numbers.
TOLERANCE_OVERRIDES = {
    'large-mean-inputs-b16-sgdm': {
        'loss': {'rtol': 3e-4, 'atolRel': 3e-5},
        'weights': {'rtol': 1e-3, 'atolRel': 1e-3},
        'outputs': {'rtol': 5e-2, 'atolRel': 5e-3},
        'reloadedOutputs': {'rtol': 1e-3, 'atolRel': 1e-4},
    },
}
SHADOW_BUDGET = 0.1   # the float32 runs may use at most 10% of the allowed error
SHADOW_SAMPLES = 6    # float32 runs: as given, then reordered rows and 1-ulp nudged weights
RELU_MARGIN = 20      # smallest |ReLU input| accepted, in units of its float32 error
TORCH_AGREEMENT = 1e-12
MAX_FILE_BYTES = 300_000

F64 = torch.float64


def f32(t):
    """Round a float64 tensor to the nearest float32 and back: what bnwasm will receive."""
    return t.to(torch.float32).to(F64)


# ----------------------------------------------------------------------------------------------
# Cases


class Case:
    """One fixture: a config, an input distribution and a seed."""

    def __init__(self, name, description, config, batch, steps, sample_x, teacher='class',
                 n_infer=8, seed=0, dense_row_scale=(0.02, 1.0)):
        self.name = name
        self.description = description
        self.config = config
        self.batch = batch
        self.steps = steps
        self.sample_x = sample_x        # (generator, n) -> float64 (n, inputSize)
        self.teacher = teacher          # 'class' or 'regression'
        self.n_infer = n_infer
        self.seed = seed
        self.dense_row_scale = dense_row_scale

    def tol(self, kind):
        return TOLERANCE_OVERRIDES.get(self.name, {}).get(kind, TOLERANCES[kind])


def gaussian_inputs(size, mean=0.0, std=1.0):
    def sample(g, n):
        return mean + std * torch.randn(n, size, generator=g, dtype=F64)
    return sample


def per_feature_inputs(means, stds):
    means = torch.tensor(means, dtype=F64)
    stds = torch.tensor(stds, dtype=F64)

    def sample(g, n):
        return means + stds * torch.randn(n, len(means), generator=g, dtype=F64)
    return sample


def bn(momentum=0.9, epsilon=1e-5, running_variance='unbiased', statistics='ema'):
    return {'type': 'batchNorm', 'momentum': momentum, 'epsilon': epsilon,
            'runningVariance': running_variance, 'statistics': statistics}


def sgd(lr, momentum):
    return {'type': 'sgd', 'learningRate': lr, 'momentum': momentum}


def adam(lr):
    return {'type': 'adam', 'learningRate': lr, 'beta1': 0.9, 'beta2': 0.999, 'epsilon': 1e-8}


CASES = [
    Case('relu-ema-unbiased-b32-sgdm',
         'dense(no bias) -> batchNorm (ema, unbiased running variance, torch-equivalent) -> relu '
         '-> dense; softmax cross-entropy; SGD with momentum 0.9; mini-batch 32.',
         {'inputSize': 6,
          'layers': [{'type': 'dense', 'units': 10, 'useBias': False}, bn(), {'type': 'relu'},
                     {'type': 'dense', 'units': 3}],
          'loss': 'softmaxCrossEntropy', 'optimizer': sgd(0.1, 0.9), 'seed': 1},
         batch=32, steps=4, sample_x=gaussian_inputs(6), seed=101),
    Case('sigmoid-ema-biased-b2-sgd',
         'dense(no bias) -> batchNorm (ema, BIASED running variance as in Keras/TF.js) -> sigmoid '
         '-> dense; softmax cross-entropy; plain SGD; mini-batch 2. With two examples a feature '
         'normalises to +-d/sqrt(d^2+eps) (d = half their difference), so the first dense layer '
         'gets a gradient of order eps/d^3 and barely moves, unless d comes near sqrt(eps), where '
         'the result becomes hypersensitive to rounding; the seed is one where that does not '
         'happen.',
         {'inputSize': 5,
          'layers': [{'type': 'dense', 'units': 8, 'useBias': False},
                     bn(running_variance='biased'), {'type': 'sigmoid'},
                     {'type': 'dense', 'units': 4}],
          'loss': 'softmaxCrossEntropy', 'optimizer': sgd(0.2, 0.0), 'seed': 2},
         batch=2, steps=5, sample_x=gaussian_inputs(5), seed=242, dense_row_scale=(0.1, 1.0)),
    Case('tanh-cumulative-b32-adam',
         'dense(no bias) -> batchNorm (cumulative average of batch statistics, torch '
         'momentum=None; the initial running values are discarded after the first batch) -> tanh '
         '-> dense; '
         'softmax cross-entropy; Adam; mini-batch 32.',
         {'inputSize': 8,
          'layers': [{'type': 'dense', 'units': 12, 'useBias': False},
                     bn(statistics='cumulative'), {'type': 'tanh'},
                     {'type': 'dense', 'units': 3}],
          'loss': 'softmaxCrossEntropy', 'optimizer': adam(0.01), 'seed': 3},
         batch=32, steps=4, sample_x=gaussian_inputs(8), seed=303),
    Case('deep-two-bn-m099-eps1e-3-adam',
         'dense(no bias) -> batchNorm -> relu -> dense(no bias) -> batchNorm -> relu -> dense; '
         'both batch norms momentum 0.99 (torch 0.01), epsilon 1e-3; softmax cross-entropy; Adam; '
         'mini-batch 16.',
         {'inputSize': 10,
          'layers': [{'type': 'dense', 'units': 16, 'useBias': False},
                     bn(momentum=0.99, epsilon=1e-3), {'type': 'relu'},
                     {'type': 'dense', 'units': 12, 'useBias': False},
                     bn(momentum=0.99, epsilon=1e-3), {'type': 'relu'},
                     {'type': 'dense', 'units': 4}],
          'loss': 'softmaxCrossEntropy', 'optimizer': adam(0.005), 'seed': 4},
         batch=16, steps=4, sample_x=gaussian_inputs(10), seed=404, dense_row_scale=(0.03, 1.0)),
    Case('large-mean-inputs-b16-sgdm',
         'Inputs far from zero: five features 1000 + N(0,1) and one -500 + 3 N(0,1), into '
         'dense(no bias) -> batchNorm -> relu -> dense; softmax cross-entropy; SGD momentum 0.9 '
         'with a small learning rate; mini-batch 16. Batch norm must cancel the large common '
         'offset; a one-pass variance E[z^2]-E[z]^2 in float32 fails here. The first dense '
         'weight gradient is only good to a few percent in float32 (the usual batch-norm backward '
         'leaves sum(dz) != 0 at the rounding of the batch mean, times the input mean 1000), and '
         'predict after training multiplies weight errors by that offset again, so those outputs '
         'carry ~0.3% of float32 error; predict with the final weights loaded does not.',
         {'inputSize': 6,
          'layers': [{'type': 'dense', 'units': 6, 'useBias': False}, bn(), {'type': 'relu'},
                     {'type': 'dense', 'units': 3}],
          'loss': 'softmaxCrossEntropy', 'optimizer': sgd(0.001, 0.9), 'seed': 5},
         batch=16, steps=4,
         sample_x=per_feature_inputs([1000.0] * 5 + [-500.0], [1.0] * 5 + [3.0]),
         seed=509, dense_row_scale=(0.2, 1.0)),
    Case('mse-dense-bias-bn-b8-sgdm',
         'Regression: dense WITH bias -> batchNorm -> tanh -> dense; mean squared error over all '
         'batch*outputs elements with float targets; SGD momentum 0.9; mini-batch 8. The bias '
         'before batch norm has a zero gradient (batch norm removes it), so it must stay put.',
         {'inputSize': 7,
          'layers': [{'type': 'dense', 'units': 10, 'useBias': True}, bn(), {'type': 'tanh'},
                     {'type': 'dense', 'units': 3}],
          'loss': 'meanSquaredError', 'optimizer': sgd(0.05, 0.9), 'seed': 6},
         batch=8, steps=4, sample_x=gaussian_inputs(7), teacher='regression', seed=606),
    Case('input-bn-b2-sgdm',
         'batchNorm directly on the input (first layer) -> dense -> relu -> dense; softmax '
         'cross-entropy; SGD momentum 0.5; mini-batch 2. One input feature has a spread (0.003) '
         'whose variance is comparable with epsilon, so epsilon shapes its normalisation.',
         {'inputSize': 4,
          'layers': [bn(), {'type': 'dense', 'units': 6}, {'type': 'relu'},
                     {'type': 'dense', 'units': 3}],
          'loss': 'softmaxCrossEntropy', 'optimizer': sgd(0.1, 0.5), 'seed': 7},
         batch=2, steps=5,
         sample_x=per_feature_inputs([0.5, -1.0, 2.0, 0.0], [1.0, 0.3, 2.0, 0.003]),
         seed=707),
]


# ----------------------------------------------------------------------------------------------
# Network description helpers


def layer_shapes(config):
    """Yield (layer index, layer config, features in, features out)."""
    size = config['inputSize']
    for i, layer in enumerate(config['layers']):
        out = layer['units'] if layer['type'] == 'dense' else size
        yield i, layer, size, out
        size = out


def output_size(config):
    return list(layer_shapes(config))[-1][3]


def tensor_names(layer):
    if layer['type'] == 'dense':
        return ['weight', 'bias'] if layer.get('useBias', True) else ['weight']
    if layer['type'] == 'batchNorm':
        return ['gamma', 'beta', 'runningMean', 'runningVariance']
    return []


TRAINABLE = {'weight', 'bias', 'gamma', 'beta'}


# ----------------------------------------------------------------------------------------------
# Data and initial weights


def make_data(case):
    g = torch.Generator().manual_seed(case.seed)
    config = case.config
    n_in, n_out = config['inputSize'], output_size(config)
    total = case.batch * case.steps + case.n_infer
    x = f32(case.sample_x(g, total))
    # Standardise with the distribution's own sample statistics so the teacher sees O(1) values.
    probe = case.sample_x(g, 4096)
    xs = (x - probe.mean(0)) / probe.std(0)
    teacher = torch.randn(n_in, n_out, generator=g, dtype=F64)
    if case.teacher == 'class':
        logits = xs @ teacher + 0.5 * torch.randn(total, n_out, generator=g, dtype=F64)
        y = logits.argmax(1)
    else:
        y = f32(torch.tanh(xs @ teacher / math.sqrt(n_in)) * 2.0
                + 0.1 * torch.randn(total, n_out, generator=g, dtype=F64))
    n_train = case.batch * case.steps
    batches = [(x[s * case.batch:(s + 1) * case.batch], y[s * case.batch:(s + 1) * case.batch])
               for s in range(case.steps)]
    return batches, x[n_train:], probe


def make_initial_weights(case, probe):
    """Random, non-trivial initial tensors (every one of them float32-representable)."""
    g = torch.Generator().manual_seed(case.seed + 1)
    weights = []
    h = probe  # a large sample pushed through the initial network, to set plausible running stats
    lo, hi = case.dense_row_scale
    for i, layer, n_in, n_out in layer_shapes(case.config):
        t = layer['type']
        if t == 'dense':
            # Row scales spread log-uniformly so that batch-norm variances span several decades
            # (epsilon then matters for some features and not for others).
            row_scale = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo))
                                  * torch.rand(n_out, 1, generator=g, dtype=F64))
            w = f32(torch.randn(n_out, n_in, generator=g, dtype=F64) * row_scale / math.sqrt(n_in))
            weights.append((i, 'weight', w))
            h = h @ w.T
            if layer.get('useBias', True):
                b = f32(0.3 * torch.randn(n_out, generator=g, dtype=F64))
                weights.append((i, 'bias', b))
                h = h + b
        elif t == 'batchNorm':
            gamma = f32(0.5 + torch.rand(n_out, generator=g, dtype=F64))
            beta = f32(0.3 * torch.randn(n_out, generator=g, dtype=F64))
            # Running statistics near, but not at, the population values: inference then gives
            # non-degenerate outputs, and a setWeights that ignored them would be noticed.
            mean, var = h.mean(0), h.var(0, unbiased=False)
            rmean = f32(mean + 0.3 * var.sqrt() * torch.randn(n_out, generator=g, dtype=F64))
            rvar = f32(var * (0.5 + 1.5 * torch.rand(n_out, generator=g, dtype=F64)))
            weights += [(i, 'gamma', gamma), (i, 'beta', beta),
                        (i, 'runningMean', rmean), (i, 'runningVariance', rvar)]
            h = (h - mean) / torch.sqrt(var + layer['epsilon']) * gamma + beta
        else:
            h = ACTIVATIONS[t](h)
    return weights


ACTIVATIONS = {'relu': torch.relu, 'sigmoid': torch.sigmoid, 'tanh': torch.tanh}


# ----------------------------------------------------------------------------------------------
# Reference network (hand-written batch norm) with switchable mistakes for the mutation check

MUTANTS = {
    'eps outside sqrt': {'eps_outside_sqrt': True},
    'normalise with unbiased variance': {'train_unbiased': True},
    'other running-variance estimator': {'running_var_flip': True},
    'momentum as weight of the present': {'momentum_flip': True},
    'ema instead of cumulative': {'cumulative_as_ema': True},
    'cumulative keeps the initial values': {'cumulative_keeps_initial': True},
    'running stats not loaded by setWeights': {'ignore_initial_running': True},
    'loss reported after the update': {'loss_after_update': True},
    'sgd momentum with dampening': {'sgd_dampening': True},
    'mse averaged over the batch only': {'mse_batch_mean': True},
    'cross-entropy summed over the batch': {'ce_sum': True},
    'inference with batch statistics': {'eval_batch_stats': True},
    'adam with tf.js epsilon placement': {'adam_tf_eps': True},
    # Run in float32: in float64 the one-pass formula is still accurate enough to pass.
    'one-pass variance E[z^2]-E[z]^2 in float32': {'one_pass_variance': True, 'float32': True},
}


class Network:
    """The network of a config, trained and evaluated with plain torch ops (autograd gives the
    gradients); variant switches on the mistakes listed in MUTANTS."""

    def __init__(self, config, initial, dtype, variant):
        self.config = config
        self.dtype = dtype
        self.v = variant
        self.tensors = {}
        for layer, name, value in initial:
            t = value.to(dtype).clone()
            if name in TRAINABLE:
                t.requires_grad_(True)
            self.tensors[(layer, name)] = t
        self.batches_seen = {}
        if variant.get('ignore_initial_running'):
            for (layer, name), t in self.tensors.items():
                if name == 'runningMean':
                    t.zero_()
                elif name == 'runningVariance':
                    t.fill_(1.0)
        self.relu_inputs = []

    def params(self):
        return [t for (_, name), t in self.tensors.items() if name in TRAINABLE]

    def forward(self, x, train, update_running=True):
        h = x
        for i, layer, n_in, n_out in layer_shapes(self.config):
            t = layer['type']
            if t == 'dense':
                h = h @ self.tensors[(i, 'weight')].T
                if layer.get('useBias', True):
                    h = h + self.tensors[(i, 'bias')]
            elif t == 'batchNorm':
                h = self.batch_norm(i, layer, h, train, update_running)
            else:
                if t == 'relu':
                    self.relu_inputs.append(h.detach().clone())
                h = ACTIVATIONS[t](h)
        return h

    def batch_norm(self, i, layer, z, train, update_running):
        eps = layer['epsilon']
        gamma, beta = self.tensors[(i, 'gamma')], self.tensors[(i, 'beta')]
        rmean, rvar = self.tensors[(i, 'runningMean')], self.tensors[(i, 'runningVariance')]
        m = z.shape[0]
        if train or self.v.get('eval_batch_stats'):
            mu = z.mean(0)
            if self.v.get('one_pass_variance'):
                var_biased = (z * z).mean(0) - mu * mu
            else:
                var_biased = ((z - mu) ** 2).mean(0)
            var = var_biased * m / (m - 1) if self.v.get('train_unbiased') else var_biased
        else:
            mu, var = rmean, rvar
        if train and update_running:
            self.update_running(i, layer, mu.detach(), var_biased.detach(), m)
        if train and self.v.get('fused_backward'):
            return FusedBatchNorm.apply(z, gamma, beta, eps)
        if self.v.get('eps_outside_sqrt'):
            xhat = (z - mu) / (torch.sqrt(var) + eps)
        else:
            xhat = (z - mu) / torch.sqrt(var + eps)
        return xhat * gamma + beta

    def update_running(self, i, layer, mu, var_biased, m):
        unbiased = layer['runningVariance'] == 'unbiased'
        if self.v.get('running_var_flip'):
            unbiased = not unbiased
        batch_var = var_biased * m / (m - 1) if unbiased else var_biased
        rmean, rvar = self.tensors[(i, 'runningMean')], self.tensors[(i, 'runningVariance')]
        cumulative = layer['statistics'] == 'cumulative' and not self.v.get('cumulative_as_ema')
        if cumulative:
            # Plain average of all batch statistics so far: weight 1/n on the n-th batch
            # (torch momentum=None). The first batch replaces the initial values.
            n = self.batches_seen.get(i, 0) + 1
            self.batches_seen[i] = n
            past = (n - 1) / n
            if self.v.get('cumulative_keeps_initial'):
                past = n / (n + 1)
        else:
            # running = momentum * running + (1 - momentum) * batch; momentum weighs the past.
            past = layer['momentum']
            if self.v.get('momentum_flip'):
                past = 1.0 - past
        rmean.mul_(past).add_((1.0 - past) * mu)
        rvar.mul_(past).add_((1.0 - past) * batch_var)

    def loss(self, out, y):
        if self.config['loss'] == 'softmaxCrossEntropy':
            return F.cross_entropy(out, y, reduction='sum' if self.v.get('ce_sum') else 'mean')
        if self.v.get('mse_batch_mean'):
            return ((out - y) ** 2).sum(1).mean()
        return F.mse_loss(out, y)

    def predict(self, x):
        with torch.no_grad():
            out = self.forward(x, train=False)
            if self.config['loss'] == 'softmaxCrossEntropy':
                out = torch.softmax(out, dim=1)
        return out


class FusedBatchNorm(torch.autograd.Function):
    """Training-mode batch norm with the backward pass that implementations write by hand
    (torch's native kernel, llm.c, bnwasm): dz = rstd * (dxhat - mean(dxhat) - xhat *
    mean(dxhat * xhat)). It assumes sum(xhat) = 0, which float32 only approximates: with inputs
    far from zero the rounding of the mean leaves sum(dz) != 0, and a dense layer in front
    multiplies that by the input mean. Autograd through the plain formula (the reference) also
    differentiates the computed mean and leaves no such remainder. Used for the float32 runs,
    which must predict what bnwasm can reach."""

    @staticmethod
    def forward(ctx, z, gamma, beta, eps):
        mu = z.mean(0)
        rstd = 1.0 / torch.sqrt(((z - mu) ** 2).mean(0) + eps)
        xhat = (z - mu) * rstd
        ctx.save_for_backward(xhat, rstd, gamma)
        return xhat * gamma + beta

    @staticmethod
    def backward(ctx, dout):
        xhat, rstd, gamma = ctx.saved_tensors
        dxhat = dout * gamma
        dz = rstd * (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0))
        return dz, (dout * xhat).sum(0), dout.sum(0), None


class TfAdam:
    """Adam as tf.js/Keras write it: the bias corrections fold into the step size and epsilon is
    added to the uncorrected sqrt(v), which makes epsilon effectively sqrt(1 - beta2^t) times
    torch's. Used only as a mutant: the contract is torch's Adam."""

    def __init__(self, params, lr, betas, eps):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.t = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        lr_t = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for p, (m, v) in zip(self.params, self.state):
            m.mul_(self.b1).add_((1 - self.b1) * p.grad)
            v.mul_(self.b2).add_((1 - self.b2) * p.grad * p.grad)
            p.sub_(lr_t * m / (v.sqrt() + self.eps))


def make_optimizer(config, params, variant):
    o = config['optimizer']
    if o['type'] == 'sgd':
        return torch.optim.SGD(params, lr=o['learningRate'], momentum=o['momentum'],
                               dampening=o['momentum'] if variant.get('sgd_dampening') else 0.0,
                               nesterov=False, weight_decay=0.0)
    if variant.get('adam_tf_eps'):
        return TfAdam(params, o['learningRate'], (o['beta1'], o['beta2']), o['epsilon'])
    return torch.optim.Adam(params, lr=o['learningRate'], betas=(o['beta1'], o['beta2']),
                            eps=o['epsilon'], weight_decay=0.0, amsgrad=False)


def run_reference(case, batches, x_infer, initial, dtype=F64, variant=None, reload=None):
    """Train on the batches and run inference; returns losses, final tensors and outputs.

    With reload (a list of tensors), 'reloaded' holds the outputs of a network that was given
    those tensors instead of being trained: the inference path on its own.
    """
    variant = variant or {}
    if variant.get('float32'):
        dtype = torch.float32
    net = Network(case.config, initial, dtype, variant)
    opt = make_optimizer(case.config, net.params(), variant)
    losses = []
    for x, y in batches:
        x = x.to(dtype)
        y = y if case.config['loss'] == 'softmaxCrossEntropy' else y.to(dtype)
        opt.zero_grad()
        loss = net.loss(net.forward(x, train=True), y)
        loss.backward()
        opt.step()
        if variant.get('loss_after_update'):
            with torch.no_grad():
                loss = net.loss(net.forward(x, train=True, update_running=False), y)
        losses.append(loss.item())
    final = [(layer, name, net.tensors[(layer, name)].detach().to(F64).clone())
             for layer, name, _ in initial]
    relu_train = list(net.relu_inputs)
    outputs = net.predict(x_infer.to(dtype)).to(F64)
    reloaded = outputs
    if reload is not None:
        reloaded = Network(case.config, reload, dtype, variant).predict(x_infer.to(dtype)).to(F64)
    return {'losses': losses, 'final': final, 'outputs': outputs, 'reloaded': reloaded,
            'relu': relu_train}


# ----------------------------------------------------------------------------------------------
# Check 1: the hand-written batch norm against torch.nn.BatchNorm1d


def run_torch_modules(case, batches, x_infer, initial):
    tensors = {(layer, name): value for layer, name, value in initial}
    modules, order = [], []
    for i, layer, n_in, n_out in layer_shapes(case.config):
        t = layer['type']
        if t == 'dense':
            mod = torch.nn.Linear(n_in, n_out, bias=layer.get('useBias', True)).to(F64)
            with torch.no_grad():
                mod.weight.copy_(tensors[(i, 'weight')])
                order.append((i, 'weight', mod.weight))
                if mod.bias is not None:
                    mod.bias.copy_(tensors[(i, 'bias')])
                    order.append((i, 'bias', mod.bias))
        elif t == 'batchNorm':
            assert layer['runningVariance'] == 'unbiased'
            cumulative = layer['statistics'] == 'cumulative'
            torch_momentum = None if cumulative else 1.0 - layer['momentum']
            mod = torch.nn.BatchNorm1d(n_out, eps=layer['epsilon'], momentum=torch_momentum)
            mod = mod.to(F64)
            with torch.no_grad():
                mod.weight.copy_(tensors[(i, 'gamma')])
                mod.bias.copy_(tensors[(i, 'beta')])
                mod.running_mean.copy_(tensors[(i, 'runningMean')])
                mod.running_var.copy_(tensors[(i, 'runningVariance')])
            order += [(i, 'gamma', mod.weight), (i, 'beta', mod.bias),
                      (i, 'runningMean', mod.running_mean), (i, 'runningVariance', mod.running_var)]
        else:
            mod = {'relu': torch.nn.ReLU, 'sigmoid': torch.nn.Sigmoid, 'tanh': torch.nn.Tanh}[t]()
        modules.append(mod)
    model = torch.nn.Sequential(*modules)
    opt = make_optimizer(case.config, list(model.parameters()), {})
    model.train()
    losses = []
    for x, y in batches:
        opt.zero_grad()
        out = model(x)
        if case.config['loss'] == 'softmaxCrossEntropy':
            loss = F.cross_entropy(out, y)
        else:
            loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        out = model(x_infer)
        if case.config['loss'] == 'softmaxCrossEntropy':
            out = torch.softmax(out, dim=1)
    final = {(i, name): t.detach().clone() for i, name, t in order}
    return losses, final, out


def check_against_torch(case, batches, x_infer, initial, ref):
    if any(l['type'] == 'batchNorm' and l['runningVariance'] != 'unbiased'
           for l in case.config['layers']):
        return 'n/a (biased running variance has no torch equivalent)'
    losses, final, outputs = run_torch_modules(case, batches, x_infer, initial)
    # Same rule as the Jest test, with rtol = atolRel = 1e-12 for every quantity.
    agreement = TORCH_AGREEMENT
    tol = {'rtol': agreement, 'atolRel': agreement}
    worst = max(worst_ratio(torch.tensor([a]), torch.tensor([e]), tol)
                for a, e in zip(losses, ref['losses']))
    expected = {(layer, name): e for layer, name, e in ref['final']}
    for layer, name, value in ref['final']:
        worst = max(worst, worst_ratio(final[(layer, name)], value, tol,
                                       atol_scale(layer, name, value, expected)))
    worst = max(worst, worst_ratio(outputs, ref['outputs'], tol))
    assert worst <= 1.0, '%s: hand-written batch norm differs from torch (%.3g of %g)' % (
        case.name, worst, agreement)
    return 'agrees with nn.Linear/nn.BatchNorm1d to %g (%.2g of it used)' % (agreement, worst)


# ----------------------------------------------------------------------------------------------
# Checks 2 and 4: compare another run with the reference under the Jest test's tolerances


def atol_scale(layer, name, expected, tensors):
    """What atolRel multiplies, per element (the Jest test's atolScale).

    Most tensors: the largest |value| of the tensor, since an element is a sum of terms of the
    tensor's typical size. Batch-norm running statistics are per feature, with scales that span
    decades across features: a running variance is scaled by itself, a running mean by its
    feature's spread sqrt(runningVariance).
    """
    if name == 'runningVariance':
        return expected.abs()
    if name == 'runningMean':
        return tensors[(layer, 'runningVariance')].sqrt()
    return expected.abs().max()


def worst_ratio(actual, expected, tol, scale=None):
    """Largest |actual - expected| / allowed, with the same rule as expectClose in the Jest test."""
    actual = actual.reshape(-1).to(F64)
    expected = expected.reshape(-1).to(F64)
    if scale is None:
        scale = expected.abs().max()
    atol = tol['atolRel'] * scale.reshape(-1)
    allowed = atol + tol['rtol'] * expected.abs()
    diff = (actual - expected).abs()
    diff[~torch.isfinite(actual)] = math.inf
    return (diff / allowed).max().item()


def compare_runs(case, ref, other):
    """Per quantity, the worst error as a fraction of what the Jest test allows."""
    ratios = {}
    # The Jest test checks each step's loss as its own scalar.
    ratios['loss'] = max(worst_ratio(torch.tensor([a]), torch.tensor([e]), case.tol('loss'))
                         for a, e in zip(other['losses'], ref['losses']))
    expected = {(layer, name): e for layer, name, e in ref['final']}
    ratios['weights'] = max(
        worst_ratio(a, e, case.tol('weights'), atol_scale(layer, name, e, expected))
        for (_, _, a), (layer, name, e) in zip(other['final'], ref['final']))
    ratios['outputs'] = worst_ratio(other['outputs'], ref['outputs'], case.tol('outputs'))
    ratios['reloadedOutputs'] = worst_ratio(other['reloaded'], ref['outputs'],
                                            case.tol('reloadedOutputs'))
    return ratios


def float32_shadow(case, batches, x_infer, initial, ref):
    """Float32 runs of the reference: their worst error as a fraction of the tolerance, per
    quantity, and the smallest distance of a ReLU input from 0 in units of its float32 error.

    One float32 run is one sample of rounding noise; bnwasm rounds differently. So the run is
    repeated with the rows of every mini-batch permuted (same mathematics, other summation order)
    and every trainable initial value moved one float32 ulp up or down at random (a rounding-size
    perturbation, which exposes fixtures whose result is hypersensitive to the last bit). The worst
    sample counts. A ReLU input within rounding distance of 0 in training could switch the unit
    on in one implementation and off in the other, which changes that example's whole gradient
    row. (At inference ReLU is continuous, so a near-zero input costs nothing there.)
    """
    worst = {}
    relu_err = [torch.zeros_like(h) for h in ref['relu']]
    n_relu = sum(1 for layer in case.config['layers'] if layer['type'] == 'relu')
    for k in range(SHADOW_SAMPLES):
        g = torch.Generator().manual_seed(k)
        orders = [torch.arange(len(x)) if k == 0 else torch.randperm(len(x), generator=g)
                  for x, _ in batches]
        permuted = [(x[o], y[o]) for (x, y), o in zip(batches, orders)]
        nudged = []
        for layer, name, value in initial:
            if k > 0 and name in TRAINABLE:
                v32 = value.to(torch.float32)
                up = torch.rand(v32.shape, generator=g) < 0.5
                target = torch.where(up, torch.tensor(math.inf), torch.tensor(-math.inf))
                value = torch.nextafter(v32, target).to(F64)
            nudged.append((layer, name, value))
        run = run_reference(case, permuted, x_infer, nudged, dtype=torch.float32,
                            variant={'fused_backward': True}, reload=ref['final'])
        for kind, ratio in compare_runs(case, ref, run).items():
            worst[kind] = max(worst.get(kind, 0.0), ratio)
        # Training ReLU inputs, layer by layer for every step, rows in the permuted order.
        for j, (h32, h64) in enumerate(zip(run['relu'], ref['relu'])):
            h32 = h32.to(F64)[torch.argsort(orders[j // n_relu])]
            relu_err[j] = torch.maximum(relu_err[j], (h32 - h64).abs())
    margin = math.inf
    for h64, err in zip(ref['relu'], relu_err):
        margin = min(margin, h64.abs().min().item() / max(err.max().item(), 1e-300))
    return worst, margin


# ----------------------------------------------------------------------------------------------
# Output


def weights_json(tensors, config):
    shapes = {}
    for i, layer, n_in, n_out in layer_shapes(config):
        for name in tensor_names(layer):
            shapes[(i, name)] = [n_out, n_in] if name == 'weight' else [n_out]
    return [{'layer': layer, 'name': name, 'shape': shapes[(layer, name)],
             'values': value.reshape(-1).tolist()} for layer, name, value in tensors]


def fixture_json(case, batches, x_infer, initial, ref):
    steps = []
    for (x, y), loss in zip(batches, ref['losses']):
        steps.append({'x': x.reshape(-1).tolist(), 'y': y.reshape(-1).tolist(), 'loss': loss})
    return {
        'name': case.name,
        'description': case.description,
        'config': case.config,
        'initialWeights': weights_json(initial, case.config),
        'steps': steps,
        'finalWeights': weights_json(ref['final'], case.config),
        'inference': {'x': x_infer.reshape(-1).tolist(),
                      'outputs': ref['outputs'].reshape(-1).tolist()},
    }


def validate_fixture(path, case):
    """Reload a written file and check it against the format the Jest test expects."""
    def exact_in_float32(values):
        t = torch.tensor(values, dtype=F64)
        return torch.equal(f32(t), t)

    with open(path) as f:
        fx = json.load(f)
    config = fx['config']
    n_in, n_out = config['inputSize'], output_size(config)
    expected_tensors = [(i, name) for i, layer, _, _ in layer_shapes(config)
                        for name in tensor_names(layer)]
    for key in ('initialWeights', 'finalWeights'):
        got = [(w['layer'], w['name']) for w in fx[key]]
        assert got == expected_tensors, (path, key, got)
        for w in fx[key]:
            assert len(w['values']) == math.prod(w['shape']), (path, w['layer'], w['name'])
            assert all(math.isfinite(v) for v in w['values'])
            # initial values must survive the trip through Float32Array unchanged
            if key == 'initialWeights':
                assert exact_in_float32(w['values']), (path, w['name'])
    assert len(fx['steps']) == case.steps
    for step in fx['steps']:
        assert len(step['x']) == case.batch * n_in
        assert exact_in_float32(step['x']), path
        if config['loss'] == 'softmaxCrossEntropy':
            assert len(step['y']) == case.batch and all(isinstance(v, int) for v in step['y'])
            assert all(0 <= v < n_out for v in step['y'])
        else:
            assert len(step['y']) == case.batch * n_out
            assert exact_in_float32(step['y']), path
        assert math.isfinite(step['loss'])
    assert len(fx['inference']['x']) == case.n_infer * n_in
    assert exact_in_float32(fx['inference']['x']), path
    assert len(fx['inference']['outputs']) == case.n_infer * n_out
    size = os.path.getsize(path)
    assert size < MAX_FILE_BYTES, (path, size)
    return fx, size


# ----------------------------------------------------------------------------------------------
# Convolutional cases: conv2d, per-channel batch norm (BatchNorm2d), pooling, flatten
#
# The same checks as above, with a reference written for images: F.conv2d, F.max_pool2d,
# F.avg_pool2d and a hand-written batch norm over (N, H, W) per channel, in float64; every case
# that torch can express (all batch norms 'ema' + 'unbiased', no bias correction or renorm) is
# re-run with nn.Conv2d/nn.BatchNorm2d/nn.MaxPool2d/nn.AvgPool2d modules and must agree to 1e-12;
# float32 runs (rows reordered, weights nudged by an ulp) must stay within SHADOW_BUDGET of the
# tolerances; the conv-specific mutants in CONV_MUTANTS must each fail some fixture.


class ConvCase:
    def __init__(self, name, description, config, batch, steps, n_infer=6, seed=0):
        self.name = name
        self.description = description
        self.config = config
        self.batch = batch
        self.steps = steps
        self.n_infer = n_infer
        self.seed = seed

    def tol(self, kind):
        return TOLERANCES[kind]


def conv(filters, kernel, stride=1, padding=0, use_bias=True):
    pair = lambda v: v if isinstance(v, list) else [v, v]
    return {'type': 'conv2d', 'filters': filters, 'kernelSize': pair(kernel),
            'stride': pair(stride), 'padding': padding if padding == 'same' else pair(padding),
            'useBias': use_bias}


def pool(kind, size, stride=None):
    pair = lambda v: v if isinstance(v, list) else [v, v]
    return {'type': kind, 'poolSize': pair(size), 'stride': pair(stride or size)}


def image_config(shape, layers, optimizer, seed):
    c, h, w = shape
    return {'inputSize': c * h * w, 'inputShape': list(shape), 'layers': layers,
            'loss': 'softmaxCrossEntropy', 'optimizer': optimizer, 'seed': seed}


CONV_CASES = [
    ConvCase('conv-same-bn2d-relu-maxpool-b8-sgdm',
             "conv2d 4 filters 3x3 'same' (no bias) -> batchNorm per channel (ema, unbiased: "
             'torch BatchNorm2d) -> relu -> maxPool2d 2 -> dense 3; SGD momentum 0.9; mini-batch '
             '8 of 2x6x6 images. m = 8 x 6 x 6 = 288 values per channel.',
             image_config([2, 6, 6], [conv(4, 3, padding='same', use_bias=False), bn(),
                                      {'type': 'relu'}, pool('maxPool2d', 2),
                                      {'type': 'dense', 'units': 3}], sgd(0.1, 0.9), 11),
             batch=8, steps=4, seed=1101),
    ConvCase('conv-stride2-pad1-bn2d-biased-tanh-avgpool-adam',
             'conv2d 5 filters 3x3 stride 2 padding 1 (with bias) -> tanh -> batchNorm (BIASED '
             'running variance) -> avgPool2d 2 stride 1 -> flatten -> dense 3; Adam; mini-batch 6 '
             'of 1x7x7 images (odd size: stride 2 gives 4x4).',
             image_config([1, 7, 7], [conv(5, 3, stride=2, padding=1), {'type': 'tanh'},
                                      bn(running_variance='biased'),
                                      pool('avgPool2d', 2, 1), {'type': 'flatten'},
                                      {'type': 'dense', 'units': 3}], adam(0.01), 12),
             batch=6, steps=4, seed=1202),
    ConvCase('conv-even-same-bn2d-cumulative-sigmoid-b4-sgd',
             "conv2d 3 filters 2x3 'same' (even kernel height: PyTorch pads the extra row below) "
             '-> batchNorm (cumulative average) -> sigmoid -> dense 4; plain SGD; mini-batch 4 of '
             '2x5x6 images.',
             image_config([2, 5, 6], [conv(3, [2, 3], padding='same'),
                                      bn(statistics='cumulative'), {'type': 'sigmoid'},
                                      {'type': 'dense', 'units': 4}], sgd(0.2, 0.0), 13),
             batch=4, steps=5, seed=1303),
    ConvCase('conv-bn2d-biascorrection-pointwise-renorm-gap-adam',
             'conv2d 4 filters 3x3 valid (no bias) -> batchNorm (momentum 0.8, bias-corrected '
             'EMA) -> relu -> conv2d 3 filters 1x1 (pointwise, no bias) -> batchNorm (renorm rMax 1.5, dMax 0.5) -> '
             'relu -> globalAvgPool -> dense 3; Adam; mini-batch 8 of 2x6x6 images.',
             image_config([2, 6, 6], [conv(4, 3, use_bias=False),
                                      dict(bn(momentum=0.8), biasCorrection=True),
                                      {'type': 'relu'}, conv(3, 1, use_bias=False),
                                      dict(bn(), renorm={'rMax': 1.5, 'dMax': 0.5}),
                                      {'type': 'relu'}, {'type': 'globalAvgPool'},
                                      {'type': 'dense', 'units': 3}], adam(0.01), 14),
             batch=8, steps=4, seed=1404),
    ConvCase('cnn-two-blocks-m099-eps1e-3-adam',
             "The Fashion-MNIST CNN's shape, small: conv2d 4 3x3 'same' (no bias) -> batchNorm -> "
             "relu -> maxPool2d 2 -> conv2d 6 3x3 'same' (no bias) -> batchNorm -> relu -> "
             'maxPool2d 2 -> dense 8 (no bias) -> batchNorm -> relu -> dense 3; every batch norm '
             'momentum 0.99, epsilon 1e-3; Adam; mini-batch 8 of 1x8x8 images.',
             image_config([1, 8, 8], [conv(4, 3, padding='same', use_bias=False),
                                      bn(momentum=0.99, epsilon=1e-3), {'type': 'relu'},
                                      pool('maxPool2d', 2),
                                      conv(6, 3, padding='same', use_bias=False),
                                      bn(momentum=0.99, epsilon=1e-3), {'type': 'relu'},
                                      pool('maxPool2d', 2),
                                      {'type': 'dense', 'units': 8, 'useBias': False},
                                      bn(momentum=0.99, epsilon=1e-3), {'type': 'relu'},
                                      {'type': 'dense', 'units': 3}], adam(0.005), 15),
             batch=8, steps=4, seed=1507),
]

CONV_MUTANTS = {
    'running variance with m = N, not N x H x W': {'m_is_batch': True},
    'batch norm per position (over N only), not per channel': {'per_position': True},
    "'same' pads the extra row above, not below": {'same_pad_before': True},
    'max pool backward to every maximum of the window': {'pool_grad_all': True},
}


def conv_shapes(config):
    """Yield (index, layer, input shape, output shape); shapes are (c, h, w) or (n,)."""
    shape = tuple(config['inputShape'])
    for i, layer in enumerate(config['layers']):
        t = layer['type']
        out = shape
        if t == 'conv2d':
            kh, kw = layer['kernelSize']
            if layer['padding'] == 'same':
                ph, pw = kh - 1, kw - 1
            else:
                ph, pw = 2 * layer['padding'][0], 2 * layer['padding'][1]
            out = (layer['filters'], (shape[1] + ph - kh) // layer['stride'][0] + 1,
                   (shape[2] + pw - kw) // layer['stride'][1] + 1)
        elif t in ('maxPool2d', 'avgPool2d'):
            kh, kw = layer['poolSize']
            out = (shape[0], (shape[1] - kh) // layer['stride'][0] + 1,
                   (shape[2] - kw) // layer['stride'][1] + 1)
        elif t == 'globalAvgPool':
            out = (shape[0],)
        elif t == 'flatten':
            out = (math.prod(shape),)
        elif t == 'dense':
            out = (layer['units'],)
        yield i, layer, shape, out
        shape = out


def conv_tensor_shapes(config):
    """[(layer, name, shape)] in getWeights() order."""
    out = []
    for i, layer, shape, _ in conv_shapes(config):
        t = layer['type']
        if t == 'conv2d':
            out.append((i, 'weight', [layer['filters'], shape[0]] + layer['kernelSize']))
            if layer['useBias']:
                out.append((i, 'bias', [layer['filters']]))
        elif t == 'dense':
            out.append((i, 'weight', [layer['units'], math.prod(shape)]))
            if layer.get('useBias', True):
                out.append((i, 'bias', [layer['units']]))
        elif t == 'batchNorm':
            for name in ('gamma', 'beta', 'runningMean', 'runningVariance'):
                out.append((i, name, [shape[0]]))
    return out


def conv_data(case):
    """Images N(0, 1) with a random linear teacher's argmax as the label."""
    g = torch.Generator().manual_seed(case.seed)
    config = case.config
    n_in = config['inputSize']
    n_out = config['layers'][-1]['units']
    total = case.batch * case.steps + case.n_infer
    x = f32(torch.randn(total, *config['inputShape'], generator=g, dtype=F64))
    teacher = torch.randn(n_in, n_out, generator=g, dtype=F64) / math.sqrt(n_in)
    y = (x.reshape(total, -1) @ teacher + 0.3 * torch.randn(total, n_out, generator=g,
                                                             dtype=F64)).argmax(1)
    n_train = case.batch * case.steps
    batches = [(x[s * case.batch:(s + 1) * case.batch], y[s * case.batch:(s + 1) * case.batch])
               for s in range(case.steps)]
    return batches, x[n_train:]


def conv_initial_weights(case):
    """Random float32-representable tensors; running statistics near those of a probe batch."""
    g = torch.Generator().manual_seed(case.seed + 1)
    h = torch.randn(256, *case.config['inputShape'], generator=g, dtype=F64)
    weights = []
    for i, layer, shape, _ in conv_shapes(case.config):
        t = layer['type']
        if t in ('conv2d', 'dense'):
            if t == 'conv2d':
                wshape = [layer['filters'], shape[0]] + layer['kernelSize']
                fan_in = shape[0] * layer['kernelSize'][0] * layer['kernelSize'][1]
            else:
                h = h.reshape(len(h), -1)
                wshape = [layer['units'], h.shape[1]]
                fan_in = h.shape[1]
            w = f32(torch.randn(*wshape, generator=g, dtype=F64) * math.sqrt(2.0 / fan_in))
            b = None
            weights.append((i, 'weight', w))
            if layer.get('useBias', True):
                b = f32(0.3 * torch.randn(wshape[0], generator=g, dtype=F64))
                weights.append((i, 'bias', b))
            h = conv_layer_forward(layer, h, w, b, {}) if t == 'conv2d' else h @ w.T + (
                b if b is not None else 0)
        elif t == 'batchNorm':
            c = shape[0]
            dims = (0, 2, 3) if h.dim() == 4 else (0,)
            view = (1, c, 1, 1) if h.dim() == 4 else (1, c)
            mean, var = h.mean(dims), h.var(dims, unbiased=False)
            gamma = f32(0.5 + torch.rand(c, generator=g, dtype=F64))
            beta = f32(0.3 * torch.randn(c, generator=g, dtype=F64))
            rmean = f32(mean + 0.3 * var.sqrt() * torch.randn(c, generator=g, dtype=F64))
            rvar = f32(var * (0.5 + 1.5 * torch.rand(c, generator=g, dtype=F64)))
            weights += [(i, 'gamma', gamma), (i, 'beta', beta),
                        (i, 'runningMean', rmean), (i, 'runningVariance', rvar)]
            h = ((h - mean.reshape(view)) / torch.sqrt(var.reshape(view) + layer['epsilon'])
                 * gamma.reshape(view) + beta.reshape(view))
        else:
            h = conv_layer_forward(layer, h, None, None, {})
    return weights


class MaxPoolAllTies(torch.autograd.Function):
    """Mutant max pool: backward sends the gradient to every element equal to the window's
    maximum after rounding the input to 3 decimals (a sloppy 'x == max' test)."""

    @staticmethod
    def forward(ctx, x, k, s):
        out = F.max_pool2d(x, k, s)
        ctx.save_for_backward(x, out)
        ctx.k, ctx.s = k, s
        return out

    @staticmethod
    def backward(ctx, dout):
        x, out = ctx.saved_tensors
        up = F.interpolate(out, scale_factor=ctx.k, mode='nearest')
        pad = (0, x.shape[3] - up.shape[3], 0, x.shape[2] - up.shape[2])
        up = F.pad(up, pad, value=math.inf)
        dup = F.pad(F.interpolate(dout, scale_factor=ctx.k, mode='nearest'), pad)
        mask = (torch.round(x * 1e3) == torch.round(up * 1e3)).to(x.dtype)
        return dup * mask, None, None


def conv_layer_forward(layer, x, w, b, variant):
    """conv2d, pooling, flatten and activations (batch norm is in ConvNetwork)."""
    t = layer['type']
    if t == 'conv2d':
        kh, kw = layer['kernelSize']
        if layer['padding'] == 'same':
            th, tw = kh - 1, kw - 1
            top, left = th // 2, tw // 2
            if variant.get('same_pad_before'):
                top, left = th - th // 2, tw - tw // 2
            x = F.pad(x, (left, tw - left, top, th - top))
            return F.conv2d(x, w, b, stride=layer['stride'])
        return F.conv2d(x, w, b, stride=layer['stride'], padding=layer['padding'])
    if t == 'maxPool2d':
        if variant.get('pool_grad_all'):
            assert layer['poolSize'] == layer['stride'] and layer['poolSize'][0] == layer['poolSize'][1]
            return MaxPoolAllTies.apply(x, layer['poolSize'][0], layer['stride'][0])
        return F.max_pool2d(x, layer['poolSize'], layer['stride'])
    if t == 'avgPool2d':
        return F.avg_pool2d(x, layer['poolSize'], layer['stride'])
    if t == 'globalAvgPool':
        return x.mean((2, 3))
    if t == 'flatten':
        return x.reshape(len(x), -1)
    return ACTIVATIONS[t](x)


class ConvNetwork:
    """The network of an image config with plain torch ops; autograd gives the gradients."""

    def __init__(self, config, tensors, dtype, variant):
        self.config = config
        self.variant = variant
        self.dtype = dtype
        self.tensors = {}
        for layer, name, value in tensors:
            t = value.to(dtype).clone()
            if name in TRAINABLE:
                t.requires_grad_(True)
            self.tensors[(layer, name)] = t
        self.tracked = {}
        self.raw = {}  # bias correction: the uncorrected EMA, from zero
        for i, layer in enumerate(config['layers']):
            if layer['type'] == 'batchNorm' and layer.get('biasCorrection'):
                rm, rv = self.tensors[(i, 'runningMean')], self.tensors[(i, 'runningVariance')]
                self.raw[i] = (torch.zeros_like(rm), torch.zeros_like(rv))
        self.relu_inputs = []

    def params(self):
        return [t for (_, name), t in self.tensors.items() if name in TRAINABLE]

    def batch_norm(self, i, layer, x, train, update_running=True):
        v = self.variant
        c = x.shape[1]
        spatial = x.dim() == 4
        view = (1, c, 1, 1) if spatial else (1, c)
        dims = (0, 2, 3) if spatial else (0,)
        if spatial and v.get('per_position'):
            dims = (0,)
        gamma = self.tensors[(i, 'gamma')].reshape(view)
        beta = self.tensors[(i, 'beta')].reshape(view)
        rm, rv = self.tensors[(i, 'runningMean')], self.tensors[(i, 'runningVariance')]
        eps = layer['epsilon']
        if not train:
            return (x - rm.reshape(view)) / torch.sqrt(rv.reshape(view) + eps) * gamma + beta
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        xhat = (x - mean) / torch.sqrt(var + eps)
        renorm = layer.get('renorm')
        if renorm:
            with torch.no_grad():
                sigma = torch.sqrt(rv.reshape(view) + eps)
                r = (torch.sqrt(var + eps) / sigma).clamp(1 / renorm['rMax'], renorm['rMax'])
                d = ((mean - rm.reshape(view)) / sigma).clamp(-renorm['dMax'], renorm['dMax'])
            xhat = xhat * r + d
        if update_running:
            with torch.no_grad():
                m = x.numel() // c
                if v.get('m_is_batch') and spatial:
                    m = x.shape[0]
                bm, bv = mean.reshape(-1), var.reshape(-1)
                if bm.numel() != c:  # per-position mutant: average positions for the statistics
                    bm, bv = mean.reshape(c, -1).mean(1), var.reshape(c, -1).mean(1)
                if layer['runningVariance'] == 'unbiased':
                    bv = bv * m / (m - 1)
                t = self.tracked[i] = self.tracked.get(i, 0) + 1
                if layer['statistics'] == 'cumulative':
                    past = (t - 1) / t
                    rm.mul_(past).add_((1 - past) * bm)
                    rv.mul_(past).add_((1 - past) * bv)
                elif layer.get('biasCorrection'):
                    mom = layer['momentum']
                    raw_m, raw_v = self.raw[i]
                    raw_m.mul_(mom).add_((1 - mom) * bm)
                    raw_v.mul_(mom).add_((1 - mom) * bv)
                    rm.copy_(raw_m / (1 - mom ** t))
                    rv.copy_(raw_v / (1 - mom ** t))
                else:
                    mom = layer['momentum']
                    rm.mul_(mom).add_((1 - mom) * bm)
                    rv.mul_(mom).add_((1 - mom) * bv)
        return xhat * gamma + beta

    def forward(self, x, train, update_running=True):
        h = x
        for i, layer in enumerate(self.config['layers']):
            t = layer['type']
            if t == 'batchNorm':
                h = self.batch_norm(i, layer, h, train, update_running)
            elif t in ('conv2d', 'dense'):
                w, b = self.tensors[(i, 'weight')], self.tensors.get((i, 'bias'))
                if t == 'dense':
                    h = h.reshape(len(h), -1) @ w.T + (b if b is not None else 0)
                else:
                    h = conv_layer_forward(layer, h, w, b, self.variant)
            else:
                if t == 'relu' and train:
                    self.relu_inputs.append(h.detach().clone())
                h = conv_layer_forward(layer, h, None, None, self.variant)
        return h

    def predict(self, x):
        with torch.no_grad():
            return torch.softmax(self.forward(x, train=False), 1)


def run_conv_reference(case, batches, x_infer, initial, dtype=F64, variant=None, reload=None):
    variant = variant or {}
    net = ConvNetwork(case.config, initial, dtype, variant)
    opt = make_optimizer(case.config, net.params(), variant)
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(net.forward(x.to(dtype), train=True), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = [(layer, name, net.tensors[(layer, name)].detach().to(F64).clone())
             for layer, name, _ in initial]
    outputs = net.predict(x_infer.to(dtype)).to(F64)
    reloaded = outputs
    if reload is not None:
        reloaded = ConvNetwork(case.config, reload, dtype, variant).predict(
            x_infer.to(dtype)).to(F64)
    return {'losses': losses, 'final': final, 'outputs': outputs, 'reloaded': reloaded,
            'relu': list(net.relu_inputs)}


def check_conv_against_torch(case, batches, x_infer, initial, ref):
    """nn.Conv2d/nn.BatchNorm2d/nn pooling modules, when every batch norm is torch's."""
    bns = [l for l in case.config['layers'] if l['type'] == 'batchNorm']
    if any(l['runningVariance'] != 'unbiased' or l['statistics'] != 'ema'
           or l.get('biasCorrection') or l.get('renorm') for l in bns):
        return 'not expressible with torch modules (biased/cumulative/bias-corrected/renorm)'
    t = {(layer, name): v.clone() for layer, name, v in initial}
    modules = []
    for i, layer, shape, out in conv_shapes(case.config):
        k = layer['type']
        if k == 'conv2d':
            m = torch.nn.Conv2d(shape[0], layer['filters'], layer['kernelSize'],
                                stride=layer['stride'], padding=layer['padding'] if
                                layer['padding'] == 'same' else tuple(layer['padding']),
                                bias=layer['useBias']).double()
            m.weight.data.copy_(t[(i, 'weight')])
            if layer['useBias']:
                m.bias.data.copy_(t[(i, 'bias')])
        elif k == 'dense':
            lin = torch.nn.Linear(math.prod(shape), layer['units'],
                                  bias=layer.get('useBias', True)).double()
            lin.weight.data.copy_(t[(i, 'weight')])
            if layer.get('useBias', True):
                lin.bias.data.copy_(t[(i, 'bias')])
            m = torch.nn.Sequential(torch.nn.Flatten(), lin)
        elif k == 'batchNorm':
            cls = torch.nn.BatchNorm2d if len(shape) == 3 else torch.nn.BatchNorm1d
            m = cls(shape[0], eps=layer['epsilon'], momentum=1 - layer['momentum']).double()
            m.weight.data.copy_(t[(i, 'gamma')])
            m.bias.data.copy_(t[(i, 'beta')])
            m.running_mean.copy_(t[(i, 'runningMean')])
            m.running_var.copy_(t[(i, 'runningVariance')])
        elif k == 'maxPool2d':
            m = torch.nn.MaxPool2d(layer['poolSize'], layer['stride'])
        elif k == 'avgPool2d':
            m = torch.nn.AvgPool2d(layer['poolSize'], layer['stride'])
        elif k == 'flatten':
            m = torch.nn.Flatten()
        elif k == 'globalAvgPool':
            m = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        else:
            m = {'relu': torch.nn.ReLU, 'sigmoid': torch.nn.Sigmoid, 'tanh': torch.nn.Tanh}[k]()
        modules.append(m)
    model = torch.nn.Sequential(*modules)
    opt = make_optimizer(case.config, model.parameters(), {})
    losses = []
    model.train()
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        outputs = torch.softmax(model(x_infer), 1)
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(losses, ref['losses']))
    worst = max(worst, (outputs - ref['outputs']).abs().max().item())
    names = {'weight': 'weight', 'bias': 'bias', 'gamma': 'weight', 'beta': 'bias',
             'runningMean': 'running_mean', 'runningVariance': 'running_var'}
    for layer, name, expected in ref['final']:
        m = modules[layer]
        if isinstance(m, torch.nn.Sequential):
            m = m[1]
        got = getattr(m, names[name]).detach()
        worst = max(worst, ((got - expected).abs() / expected.abs().clamp(min=1.0)).max().item())
    if not worst < TORCH_AGREEMENT:
        for layer, name, expected in ref['final']:
            m = modules[layer]
            if isinstance(m, torch.nn.Sequential):
                m = m[1]
            got = getattr(m, names[name]).detach()
            print(layer, name, ((got - expected).abs() / expected.abs().clamp(min=1.0)).max().item())
        print(losses, ref['losses'], (outputs - ref['outputs']).abs().max().item())
        sys.exit('%s: torch modules disagree with the reference by %g' % (case.name, worst))
    return 'agrees with nn.Conv2d/nn.BatchNorm2d/pooling modules to %g (%.2g of it used)' % (
        TORCH_AGREEMENT, worst / TORCH_AGREEMENT)


def conv_float32_shadow(case, batches, x_infer, initial, ref):
    """As float32_shadow: float32 runs with reordered rows and 1-ulp nudged weights."""
    worst = {}
    relu_err = [torch.zeros_like(h) for h in ref['relu']]
    n_relu = sum(1 for layer in case.config['layers'] if layer['type'] == 'relu')
    for k in range(SHADOW_SAMPLES):
        g = torch.Generator().manual_seed(k)
        orders = [torch.arange(len(x)) if k == 0 else torch.randperm(len(x), generator=g)
                  for x, _ in batches]
        permuted = [(x[o], y[o]) for (x, y), o in zip(batches, orders)]
        nudged = []
        for layer, name, value in initial:
            if k > 0 and name in TRAINABLE:
                v32 = value.to(torch.float32)
                up = torch.rand(v32.shape, generator=g) < 0.5
                target = torch.where(up, torch.tensor(math.inf), torch.tensor(-math.inf))
                value = torch.nextafter(v32, target).to(F64)
            nudged.append((layer, name, value))
        run = run_conv_reference(case, permuted, x_infer, nudged, dtype=torch.float32,
                                 reload=ref['final'])
        for kind, ratio in compare_runs(case, ref, run).items():
            worst[kind] = max(worst.get(kind, 0.0), ratio)
        for j, (h32, h64) in enumerate(zip(run['relu'], ref['relu'])):
            h32 = h32.to(F64)[torch.argsort(orders[j // n_relu])]
            relu_err[j] = torch.maximum(relu_err[j], (h32 - h64).abs())
    margin = math.inf
    for h64, err in zip(ref['relu'], relu_err):
        margin = min(margin, h64.abs().min().item() / max(err.max().item(), 1e-300))
    return worst, margin


def conv_fixture_json(case, batches, x_infer, initial, ref):
    shapes = {(layer, name): shape for layer, name, shape in conv_tensor_shapes(case.config)}

    def tensors(ts):
        return [{'layer': layer, 'name': name, 'shape': shapes[(layer, name)],
                 'values': v.reshape(-1).tolist()} for layer, name, v in ts]
    assert [(l, n) for l, n, _ in initial] == list(shapes), case.name
    return {
        'name': case.name,
        'description': case.description,
        'config': case.config,
        'initialWeights': tensors(initial),
        'steps': [{'x': x.reshape(-1).tolist(), 'y': y.reshape(-1).tolist(), 'loss': loss}
                  for (x, y), loss in zip(batches, ref['losses'])],
        'finalWeights': tensors(ref['final']),
        'inference': {'x': x_infer.reshape(-1).tolist(),
                      'outputs': ref['outputs'].reshape(-1).tolist()},
    }


def build_conv_fixtures(problems):
    """Reference, checks and JSON of every CONV_CASES entry; appends to problems."""
    caught = {m: [] for m in CONV_MUTANTS}
    fixtures = []
    for case in CONV_CASES:
        batches, x_infer = conv_data(case)
        initial = conv_initial_weights(case)
        ref = run_conv_reference(case, batches, x_infer, initial)
        torch_note = check_conv_against_torch(case, batches, x_infer, initial, ref)
        shadow, margin = conv_float32_shadow(case, batches, x_infer, initial, ref)
        if margin <= RELU_MARGIN:
            problems.append('%s: a ReLU input is only %.3g float32 errors from the kink'
                            % (case.name, margin))
        for kind, ratio in shadow.items():
            if not ratio < SHADOW_BUDGET:
                problems.append('%s: float32 rounding alone uses %.3g of the %s tolerance'
                                % (case.name, ratio, kind))
        for mutant, variant in CONV_MUTANTS.items():
            ratios = compare_runs(case, ref, run_conv_reference(
                case, batches, x_infer, initial, variant=variant, reload=ref['final']))
            kind = max(ratios, key=ratios.get)
            if ratios[kind] > 1.0:
                caught[mutant].append((ratios[kind], case.name, kind))
        fixtures.append((case, conv_fixture_json(case, batches, x_infer, initial, ref)))
        print('%-50s batch %2d x %d steps; losses %s' % (
            case.name, case.batch, case.steps, ' '.join('%.5f' % l for l in ref['losses'])))
        print('    torch: %s' % torch_note)
        print('    smallest |ReLU input| / its float32 error: %.3g' % margin)
        print('    float32 error / allowed (worst of %d runs): %s' % (
            SHADOW_SAMPLES, ', '.join('%s %.2g' % kv for kv in shadow.items())))
    print('conv mutants: fixtures that catch them; the strongest catch')
    for mutant, where in caught.items():
        if where:
            ratio, name, kind = max(where)
            print('    %-56s %d fixtures; %s %.2g (%s)' % (mutant, len(where), name, ratio, kind))
        else:
            print('    %-56s NOT CAUGHT' % mutant)
            problems.append('no conv fixture catches the mutant: ' + mutant)
    return fixtures


def main():
    torch.use_deterministic_algorithms(True)
    names = [c.name for c in CASES] + [c.name for c in CONV_CASES]
    assert len(set(names)) == len(names)

    problems = []
    caught = {m: [] for m in MUTANTS}
    fixtures = []
    for case in CASES:
        batches, x_infer, probe = make_data(case)
        initial = make_initial_weights(case, probe)
        ref = run_reference(case, batches, x_infer, initial)
        torch_note = check_against_torch(case, batches, x_infer, initial, ref)
        shadow, margin = float32_shadow(case, batches, x_infer, initial, ref)
        if margin <= RELU_MARGIN:
            problems.append('%s: a ReLU input is only %.3g float32 errors from the kink'
                            % (case.name, margin))
        for kind, ratio in shadow.items():
            if not ratio < SHADOW_BUDGET:
                problems.append('%s: float32 rounding alone uses %.3g of the %s tolerance'
                                % (case.name, ratio, kind))

        for mutant, variant in MUTANTS.items():
            ratios = compare_runs(case, ref, run_reference(case, batches, x_infer, initial,
                                                           variant=variant, reload=ref['final']))
            kind = max(ratios, key=ratios.get)
            if ratios[kind] > 1.0:
                caught[mutant].append((ratios[kind], case.name, kind))

        fixtures.append((case, fixture_json(case, batches, x_infer, initial, ref)))
        print('%-30s batch %2d x %d steps, %d inference rows; losses %s' % (
            case.name, case.batch, case.steps, case.n_infer,
            ' '.join('%.5f' % loss for loss in ref['losses'])))
        print('    torch: %s' % torch_note)
        print('    smallest |ReLU input| / its float32 error: %.3g' % margin)
        print('    float32 error / allowed (worst of %d runs): %s' % (
            SHADOW_SAMPLES, ', '.join('%s %.2g' % kv for kv in shadow.items())))

    conv_fixtures = build_conv_fixtures(problems)

    print('mutants: fixtures that catch them; the strongest catch (error / allowed, quantity)')
    for mutant, where in caught.items():
        if where:
            ratio, name, kind = max(where)
            print('    %-44s %d fixtures; %s %.2g (%s)' % (mutant, len(where), name, ratio, kind))
        else:
            print('    %-44s NOT CAUGHT' % mutant)
            problems.append('no fixture catches the mutant: ' + mutant)
    if problems:
        sys.exit('nothing written:\n  ' + '\n  '.join(problems))

    os.makedirs(OUT_DIR, exist_ok=True)
    for f in os.listdir(OUT_DIR):
        if f.endswith('.json') and f[:-5] not in names:
            os.remove(os.path.join(OUT_DIR, f))
    for case, fx in fixtures:
        path = os.path.join(OUT_DIR, case.name + '.json')
        with open(path, 'w') as f:
            json.dump(fx, f, separators=(',', ':'))
            f.write('\n')
        fx, size = validate_fixture(path, case)
        print('wrote %s (%.1f KB)' % (os.path.relpath(path), size / 1024))
    for case, fx in conv_fixtures:
        path = os.path.join(OUT_DIR, case.name + '.json')
        with open(path, 'w') as f:
            json.dump(fx, f, separators=(',', ':'))
            f.write('\n')
        size = os.path.getsize(path)
        assert size < MAX_FILE_BYTES, (path, size)
        print('wrote %s (%.1f KB)' % (os.path.relpath(path), size / 1024))


if __name__ == '__main__':
    main()
