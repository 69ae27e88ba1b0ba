// Error classes of the public API. Every error bnwasm throws is a BnwasmError
// with a stable `code`; messages name the call, the argument, what was
// expected and what came.

export class BnwasmError extends Error {
  /**
   * @param {string} message
   * @param {string} code stable, machine-readable
   * @param {object} [details] extra fields copied onto the error (index, value, ...)
   */
  constructor(message, code, details) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    if (details) Object.assign(this, details);
  }
}

/** A createNetwork/loadNetwork config that is not valid. code: BNWASM_INVALID_CONFIG */
export class ConfigError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_INVALID_CONFIG', details);
  }
}

/**
 * Bad data passed to a method. code is one of BNWASM_WRONG_TYPE, BNWASM_WRONG_LENGTH,
 * BNWASM_NON_FINITE, BNWASM_LABEL_OUT_OF_RANGE, BNWASM_BATCH_TOO_SMALL, BNWASM_INVALID_ARGUMENT.
 */
export class InputError extends BnwasmError {}

/** A training step that would make the loss or a parameter non-finite; nothing was changed. */
export class DivergenceError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_DIVERGED', details);
  }
}

/** Model bytes that are not a valid bnwasm model. code: BNWASM_CORRUPT_MODEL */
export class ModelFormatError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_CORRUPT_MODEL', details);
  }
}

/** A call on a network (or trainer) after dispose()/terminate(). code: BNWASM_DISPOSED */
export class DisposedError extends BnwasmError {
  constructor(message) {
    super(message, 'BNWASM_DISPOSED');
  }
}

/**
 * The trainer's worker died without being asked to (it threw outside a request, ran out of
 * memory, or exited). Every pending call and every later one rejects with it.
 * code: BNWASM_WORKER_FAILED; `exitCode` when the worker exited, `cause` when it threw.
 */
export class WorkerError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_WORKER_FAILED', details);
  }
}

/** Describes a value for an error message: its type and, for arrays, its length. */
export function describe(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.length})`;
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (typeof value === 'object') return value.constructor ? value.constructor.name : 'object';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}
