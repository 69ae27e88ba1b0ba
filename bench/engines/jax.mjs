// jax-js 0.1.25 (npm @jax-js/jax) on its wasm backend: the bench's models written from its
// primitives, the way a jax-js user writes them. It has no batch-norm layer and no optimizer
// on npm, so both are here: batch norm in training mode normalises with the mini-batch's mean
// and biased variance and returns them as aux outputs, from which the running averages are
// updated outside the gradient (running = momentum * running + (1 - momentum) * batch, the
// unbiased variance, as bnwasm keeps them); inference uses only the running averages. One
// training step is a single jit-compiled function: valueAndGrad of the loss, then Adam by hand
// (bias-corrected step size computed here and passed in). The same file runs in Node (one
// thread: jax-js's pool needs a global Worker and SharedArrayBuffer) and, bundled, in a page,
// where jax-js dispatches its kernels to a pool of navigator.hardwareConcurrency workers when the
// page has SharedArrayBuffer: every step is awaited through blockUntilReady, the async path
// that uses the pool (dataSync runs on the calling thread).
import { blockUntilReady, init, jit, lax, nn, numpy as np, random, tree, valueAndGrad } from '@jax-js/jax';
import { CLASSES, CNN_CONFIG, EPSILON, HIDDEN, INPUT, LEARNING_RATE, MOMENTUM } from '../model.mjs';

const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;

/** Uniform in +-sqrt(6 / fanIn) (He), as bnwasm initialises its weights. */
const he = (key, shape, fanIn) => random.uniform(key, shape, { minval: -Math.sqrt(6 / fanIn), maxval: Math.sqrt(6 / fanIn) });

// ---- the two models ----------------------------------------------------------------------------
// Each: init(key) -> {params, running}; forward(params, running | null, x) -> [logits, stats]
// (null: training mode, stats are the batch statistics per batch-norm layer; else inference).
// Every function takes ownership of its arrays (jax-js's reference counting): a value used
// again is passed as .ref.

/**
 * Batch norm over `axes` of h (the batch and any spatial axes); gamma and beta broadcast
 * against h. Training (running null): [out, {mean, var}] with the batch's statistics over
 * `count` values per feature; inference: [out, null] with the running ones.
 */
function batchNorm(h, gamma, beta, running, axes, shape, count) {
  if (running) {
    const scale = gamma.div(np.sqrt(running.var.add(EPSILON).reshape(shape)));
    return [h.sub(running.mean.reshape(shape)).mul(scale).add(beta), null];
  }
  const mean = np.mean(h.ref, axes, { keepdims: true });
  const centered = h.sub(mean.ref);
  const variance = np.mean(np.square(centered.ref), axes, { keepdims: true });
  const out = centered.div(np.sqrt(variance.ref.add(EPSILON))).mul(gamma).add(beta);
  const features = shape.reduce((a, b) => a * b, 1);
  return [out, { mean: mean.reshape([features]), var: variance.reshape([features]).mul(count / (count - 1)) }];
}

const MLP = {
  init(key) {
    const [k1, k2, k3] = random.split(key, 3);
    const ones = () => np.ones([HIDDEN]);
    const zeros = () => np.zeros([HIDDEN]);
    return {
      params: {
        w1: he(k1, [INPUT, HIDDEN], INPUT), g1: ones(), b1: zeros(),
        w2: he(k2, [HIDDEN, HIDDEN], HIDDEN), g2: ones(), b2: zeros(),
        w3: he(k3, [HIDDEN, CLASSES], HIDDEN), b3: np.zeros([CLASSES]),
      },
      running: [{ mean: zeros(), var: ones() }, { mean: zeros(), var: ones() }],
    };
  },
  forward(p, running, x) {
    const B = x.shape[0];
    const shape = [1, HIDDEN];
    const [h1, s1] = batchNorm(np.dot(x, p.w1), p.g1, p.b1, running?.[0], 0, shape, B);
    const [h2, s2] = batchNorm(np.dot(nn.relu(h1), p.w2), p.g2, p.b2, running?.[1], 0, shape, B);
    return [np.dot(nn.relu(h2), p.w3).add(p.b3), [s1, s2]];
  },
};

/** The CNN of bench/model.mjs (CNN_CONFIG), NCHW: conv 3x3 'same' without bias, BN, ReLU, 2x2 max pool, twice; dense 128 without bias, BN, ReLU; dense 10. */
const [C1, C2] = CNN_CONFIG.layers.filter((l) => l.type === 'conv2d').map((l) => l.filters);
const DENSE = CNN_CONFIG.layers.find((l) => l.type === 'dense').units;
const FLAT = C2 * 7 * 7;
const maxPool = (x) => lax.reduceWindow(x, np.max, [2, 2], [2, 2]);

const CNN = {
  init(key) {
    const [k1, k2, k3, k4] = random.split(key, 4);
    const stats = (n) => ({ mean: np.zeros([n]), var: np.ones([n]) });
    return {
      params: {
        k1: he(k1, [C1, 1, 3, 3], 9), g1: np.ones([1, C1, 1, 1]), b1: np.zeros([1, C1, 1, 1]),
        k2: he(k2, [C2, C1, 3, 3], 9 * C1), g2: np.ones([1, C2, 1, 1]), b2: np.zeros([1, C2, 1, 1]),
        w3: he(k3, [FLAT, DENSE], FLAT), g3: np.ones([DENSE]), b3: np.zeros([DENSE]),
        w4: he(k4, [DENSE, CLASSES], DENSE), b4: np.zeros([CLASSES]),
      },
      running: [stats(C1), stats(C2), stats(DENSE)],
    };
  },
  forward(p, running, x) {
    const B = x.shape[0];
    const image = x.reshape([B, 1, 28, 28]);
    const [h1, s1] = batchNorm(lax.conv(image, p.k1, [1, 1], 'SAME'), p.g1, p.b1, running?.[0], [0, 2, 3], [1, C1, 1, 1], B * 28 * 28);
    const [h2, s2] = batchNorm(lax.conv(maxPool(nn.relu(h1)), p.k2, [1, 1], 'SAME'), p.g2, p.b2, running?.[1], [0, 2, 3], [1, C2, 1, 1], B * 14 * 14);
    const flat = maxPool(nn.relu(h2)).reshape([B, FLAT]);
    const [h3, s3] = batchNorm(np.dot(flat, p.w3), p.g3, p.b3, running?.[2], 0, [1, DENSE], B);
    return [np.dot(nn.relu(h3), p.w4).add(p.b4), [s1, s2, s3]];
  },
};

// ---- training and inference ---------------------------------------------------------------------

/** Mean softmax cross-entropy over the batch; aux: the batch statistics. y is one-hot (B, 10). */
function lossFn(model) {
  return (params, x, y) => {
    const B = x.shape[0];
    const [logits, stats] = model.forward(params, null, x);
    const loss = nn.logSoftmax(logits, -1).mul(y).sum().mul(-1 / B);
    return [loss, stats];
  };
}

/** One step: gradients, Adam on every parameter, the running averages; returns the new state and the loss. */
function trainStep(model) {
  const lossAndGrad = valueAndGrad(lossFn(model), { hasAux: true });
  return jit((state, x, y, stepSize) => {
    const { params, m, v, running } = state;
    const [[loss, stats], grads] = lossAndGrad(tree.ref(params), x, y);
    const next = { params: {}, m: {}, v: {}, running: [] };
    for (const name of Object.keys(params)) {
      const g = grads[name];
      const m1 = m[name].mul(BETA1).add(g.ref.mul(1 - BETA1));
      const v1 = v[name].mul(BETA2).add(np.square(g).mul(1 - BETA2));
      next.params[name] = params[name].sub(m1.ref.div(np.sqrt(v1.ref).add(ADAM_EPSILON)).mul(stepSize.ref));
      next.m[name] = m1;
      next.v[name] = v1;
    }
    stepSize.dispose();
    running.forEach((r, i) => {
      next.running.push({
        mean: r.mean.mul(MOMENTUM).add(stats[i].mean.mul(1 - MOMENTUM)),
        var: r.var.mul(MOMENTUM).add(stats[i].var.mul(1 - MOMENTUM)),
      });
    });
    return [next, loss];
  });
}

/** Softmax probabilities in inference mode (running averages only). */
function inference(model) {
  return jit((params, running, x) => nn.softmax(model.forward(params, running, x)[0], -1));
}

let ready = null;

/** model 'mlp' or 'cnn' (bench/model.mjs). In a page the pool is jax-js's own: all cores. */
export async function createEngine(modelName = 'mlp') {
  ready ??= init('wasm');
  await ready;
  const model = modelName === 'cnn' ? CNN : MLP;
  const { params, running } = model.init(random.key(1));
  const zerosLike = (tree_) => Object.fromEntries(Object.entries(tree_).map(([k, a]) => [k, np.zerosLike(a.ref)]));
  let state = { params, m: zerosLike(params), v: zerosLike(params), running };
  await blockUntilReady(state);
  const step = trainStep(model);
  const predict = inference(model);
  let t = 0;
  const losses = [];
  return {
    name: 'jax-js',
    // Batches are jax arrays made once, labels one-hot, as its MNIST example feeds them.
    prepareBatches(x, y, batch, count) {
      const list = [];
      for (let b = 0; b < count; b++) {
        const oneHot = new Float32Array(batch * CLASSES);
        for (let i = 0; i < batch; i++) oneHot[i * CLASSES + y[b * batch + i]] = 1;
        list.push([np.array(x.slice(b * batch * INPUT, (b + 1) * batch * INPUT)).reshape([batch, INPUT]), np.array(oneHot).reshape([batch, CLASSES])]);
      }
      return list;
    },
    async trainBatch([xb, yb]) {
      t += 1;
      const stepSize = (LEARNING_RATE * Math.sqrt(1 - BETA2 ** t)) / (1 - BETA1 ** t);
      const [next, loss] = step(state, xb.ref, yb.ref, np.array(stepSize));
      state = next;
      await blockUntilReady(state);
      const value = (await loss.data())[0];
      losses.push(value);
      return value;
    },
    /** Training losses so far, one per step (for the bench's check that it learns). */
    losses,
    // One row, read synchronously: jax-js's fastest path for a single small call (no pool hop).
    predictOne(x) {
      return predict(tree.ref(state.params), tree.ref(state.running), np.array(x).reshape([1, INPUT])).dataSync();
    },
    async predictBatch(xs) {
      return predict(tree.ref(state.params), tree.ref(state.running), np.array(xs).reshape([xs.length / INPUT, INPUT])).data();
    },
    dispose() {
      tree.dispose(state);
      step.dispose();
      predict.dispose();
    },
  };
}
