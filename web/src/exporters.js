// Network methods whose code lives in 'bnwasm/interop' (toONNX, toSafetensors,
// toTfjsLayers): importing that entry registers them here, so the core's
// download carries none of the converters.
import { BnwasmError } from './errors.js';

const table = new Map();

/** @internal Called by 'bnwasm/interop' when it is imported. */
export function registerExporter(name, fn) {
  table.set(name, fn);
}

/** The registered converter, or a clear error saying which import brings it. */
export function exporter(name) {
  const fn = table.get(name);
  if (fn === undefined) {
    throw new BnwasmError(
      `${name}(): the interop converters are not loaded; add \`import 'bnwasm/interop'\` (or import { ${name} } from it) first`,
      'BNWASM_INTEROP_NOT_LOADED',
    );
  }
  return fn;
}
