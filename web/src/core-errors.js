// The one table from a core status (cpp/include/bnwasm/network.h, enum Status) to the
// error the user gets, and the message of a core error in the caller's terms.
import { BnwasmError, ConfigError, DivergenceError, InputError, ModelFormatError } from './errors.js';
import { showValue } from './value.js';

const CORE_ERRORS = {
  1: (message, details) => new ConfigError(message, details),
  2: (message, details) => new InputError(message, 'BNWASM_NON_FINITE', details),
  3: (message, details) => new InputError(message, 'BNWASM_LABEL_OUT_OF_RANGE', details),
  4: (message, details) => new InputError(message, 'BNWASM_BATCH_TOO_SMALL', details),
  5: (message, details) => new DivergenceError(message, details),
  6: (message, details) => new ModelFormatError(message, details),
  7: (message, details) => new InputError(message, 'BNWASM_INVALID_ARGUMENT', details),
};
// What a core error is about (enum Argument).
const INPUT = 1;
const TARGET = 2;
const SPEC = 3;

/**
 * The Error for a core ErrorInfo ({status, argument, index, value, message, where, detail}).
 * `names` says what the call calls its input and targets, `offsets` where the staged rows
 * start in them. A config error reads "<fn>(): <where>: <message>, got <detail>", and
 * carries `path` (where: 'config', 'optimizer', 'layers[2]', ...).
 * @internal
 */
export function coreError(fn, e, { x = 'x', y = 'y', offsets = [0, 0, 0] } = {}) {
  const make = CORE_ERRORS[e.status] ?? ((message) => new BnwasmError(message, 'BNWASM_INTERNAL'));
  if (e.argument === INPUT || e.argument === TARGET) {
    const index = e.index + offsets[e.argument];
    const name = e.argument === INPUT ? x : y;
    return make(`${fn}(): ${name}[${index}] is ${e.value}, ${e.message}`, { index, value: e.value });
  }
  if (e.argument === SPEC) {
    const prefix = e.status === 6 ? 'invalid network configuration: ' : '';
    const got = 'detail' in e ? `, got ${showValue(e.detail)}` : '';
    return make(`${fn}(): ${prefix}${e.where ? `${e.where}: ` : ''}${e.message}${got}`, { path: e.where });
  }
  return make(`${fn}(): ${e.message}`, e.status === 4 ? { value: e.value } : undefined);
}
