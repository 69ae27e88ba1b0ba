// Error classes of the public API. Every error bnwasm throws is a BnwasmError
// with a stable `code`; messages name the call, the argument, what was
// expected and what came. Each class sets a literal `name`: minifiers rename
// classes, so `new.target.name` would read "E" in a production bundle. Errors
// cross from the worker as plain data and are rebuilt by `code` (reviveError).

export class BnwasmError extends Error {
  /**
   * @param {string} message
   * @param {string} code stable, machine-readable
   * @param {object} [details] extra fields copied onto the error (index, value, ...)
   */
  constructor(message, code, details) {
    super(message);
    this.name = 'BnwasmError';
    this.code = code;
    if (details) Object.assign(this, details);
  }
}

/** A createNetwork/loadNetwork config that is not valid. code: BNWASM_INVALID_CONFIG */
export class ConfigError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_INVALID_CONFIG', details);
    this.name = 'ConfigError';
  }
}

/**
 * Bad data passed to a method. code is one of BNWASM_WRONG_TYPE, BNWASM_WRONG_LENGTH,
 * BNWASM_NON_FINITE, BNWASM_LABEL_OUT_OF_RANGE, BNWASM_BATCH_TOO_SMALL, BNWASM_INVALID_ARGUMENT.
 */
export class InputError extends BnwasmError {
  constructor(message, code, details) {
    super(message, code, details);
    this.name = 'InputError';
  }
}

/** A training step that would make the loss or a parameter non-finite; nothing was changed. */
export class DivergenceError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_DIVERGED', details);
    this.name = 'DivergenceError';
  }
}

/** Model bytes that are not a valid bnwasm model. code: BNWASM_CORRUPT_MODEL */
export class ModelFormatError extends BnwasmError {
  constructor(message, details) {
    super(message, 'BNWASM_CORRUPT_MODEL', details);
    this.name = 'ModelFormatError';
  }
}

/** A call on a network (or trainer) after dispose()/terminate(). code: BNWASM_DISPOSED */
export class DisposedError extends BnwasmError {
  constructor(message) {
    super(message, 'BNWASM_DISPOSED');
    this.name = 'DisposedError';
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
    this.name = 'WorkerError';
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

// ---- Errors across the worker boundary --------------------------------------------------

/** How each `code` is rebuilt (message, code, details) => Error; codes not listed here are plain BnwasmErrors. */
const input = (message, code, details) => new InputError(message, code, details);
const REVIVE_BY_CODE = {
  BNWASM_INVALID_CONFIG: (message, code, details) => new ConfigError(message, details),
  BNWASM_WRONG_TYPE: input,
  BNWASM_WRONG_LENGTH: input,
  BNWASM_NON_FINITE: input,
  BNWASM_LABEL_OUT_OF_RANGE: input,
  BNWASM_BATCH_TOO_SMALL: input,
  BNWASM_INVALID_ARGUMENT: input,
  BNWASM_DIVERGED: (message, code, details) => new DivergenceError(message, details),
  BNWASM_CORRUPT_MODEL: (message, code, details) => new ModelFormatError(message, details),
  BNWASM_DISPOSED: (message) => new DisposedError(message),
  BNWASM_WORKER_FAILED: (message, code, details) => new WorkerError(message, details),
};
/** Built-in errors keep their names through minification, so those are revived by name. */
const BUILTIN_ERRORS = { TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };
/** Extra fields a bnwasm error may carry (see the constructors' `details`). */
const DETAILS = ['index', 'value', 'path'];

/**
 * An error as plain data for postMessage (structured clone drops `code` and the details
 * bnwasm errors carry).
 * @internal
 */
export function serializeError(error) {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: `non-Error thrown in the worker: ${String(error)}` };
  }
  const { name, message, code } = error;
  const details = {};
  for (const key of DETAILS) if (key in error) details[key] = error[key];
  return { name, message, code, details };
}

/**
 * The Error instance a serialized error stood for: a bnwasm error is rebuilt from its `code`
 * (the one name that survives every bundler and minifier), with its class's literal name.
 * @internal
 */
export function reviveError({ name, message, code, details }) {
  if (typeof code === 'string' && code.startsWith('BNWASM_')) {
    return (REVIVE_BY_CODE[code] ?? ((m, c, d) => new BnwasmError(m, c, d)))(message, code, details);
  }
  const error = new (BUILTIN_ERRORS[name] ?? Error)(message);
  if (!(name in BUILTIN_ERRORS) && name) error.name = name;
  if (code !== undefined) error.code = code;
  return error;
}
