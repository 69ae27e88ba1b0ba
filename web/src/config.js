// Network configs. The core checks them (cpp/src/spec.cpp) and knows every layer type's
// options, defaults, ranges and tensors (its registry, cpp/src/ops/): this module asks it.
import { describe, lastError, schema as coreSchema } from './core.js';
import { coreError } from './core-errors.js';
import { loadModule, moduleFor } from './module.js';
import { decodeValue, encodeValue } from './value.js';

let schema = null;

/**
 * The core's registry (the full build's: loads bnwasm.wasm): every layer type with its options (kind, default, range, doc), its
 * inputs and its tensors (and their PyTorch and TF.js names); each optimizer's options; the
 * network's own options. What the docs and index.d.ts are held to.
 * @returns {Promise<object>}
 */
export async function networkSchema() {
  const mod = await loadModule();
  schema ??= decodeValue(coreSchema(mod));
  return structuredClone(schema);
}

/**
 * What createNetwork(config) would build, without building it: the config with every
 * default filled in, and per layer its index, type, name, inputs (layer indices, -1 the
 * network's input), input and output shapes, tensors (name, shape, trainable, PyTorch and
 * TF.js names) and multiply-adds per example. Throws the ConfigError createNetwork would.
 * @param {object} config
 * @param {string} [fn] the public function, for messages
 * @returns {Promise<{config: object, layers: object[]}>}
 */
export async function describeNetwork(config, fn = 'describeNetwork') {
  const mod = await moduleFor(config);
  const bytes = describe(mod, encodeValue(config));
  if (bytes === null) throw coreError(fn, lastError(mod));
  return decodeValue(bytes);
}

/**
 * describeNetwork without the wait, for converters that ask about many partial configs in
 * a row: resolves to a function that describes a config at once. @internal
 */
export async function describer(fn) {
  const mod = await loadModule();
  return (config) => {
    const bytes = describe(mod, encodeValue(config));
    if (bytes === null) throw coreError(fn, lastError(mod));
    return decodeValue(bytes);
  };
}
