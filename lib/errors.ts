/**
 * Every failure torchedit reports is a {@link TorchEditError} with a stable `code`.
 * Codes are shared with the native layer (native/core/runtime/error.h); add, never rename.
 */
export type ErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_HANDLE'
  | 'ERR_DISPOSED'
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_DEVICE_UNAVAILABLE'
  | 'ERR_FILE_NOT_FOUND'
  | 'ERR_FILE_FORMAT'
  | 'ERR_MODULE_LOAD'
  | 'ERR_MODEL_LOAD'
  | 'ERR_MODEL_NOT_FOUND'
  | 'ERR_MODEL_CONFIG'
  | 'ERR_MODEL_VERSION'
  | 'ERR_MODEL_MISMATCH'
  | 'ERR_MODEL_TORCH_VERSION'
  | 'ERR_IMAGE_READ'
  | 'ERR_IMAGE_WRITE'
  | 'ERR_FORWARD'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_ABORTED'
  | 'ERR_UNSUPPORTED'
  | 'ERR_NO_ATTENTION_MAPS'
  | 'ERR_BINDING_LOAD'
  | 'ERR_LIBTORCH_NOT_FOUND'
  | 'ERR_LIBTORCH_MISMATCH'
  | 'ERR_INTERNAL';

export class TorchEditError extends Error {
  readonly code: ErrorCode;
  /**
   * With `ERR_INVALID_OPTION` from a pipeline's options: the path of the offending option in the
   * options object, e.g. `'steps'`, `'embedding.lr'` or `'concepts[0].threshold'`.
   */
  declare readonly option?: string;

  constructor(code: ErrorCode | string, message: string, options?: { cause?: unknown; option?: string }) {
    super(message, options);
    this.name = code === 'ERR_ABORTED' ? 'AbortError' : 'TorchEditError';
    this.code = code as ErrorCode;
    if (options?.option !== undefined) Object.defineProperty(this, 'option', { value: options.option, enumerable: true });
  }
}

/** Describes a received value the way every option error does: `0 of type number`. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}' of type string`;
  if (typeof value === 'object' || typeof value === 'function') return `value of type ${typeof value}`;
  return `${String(value)} of type ${typeof value}`;
}

/**
 * The one wording for a bad option (after sharp): "Expected X for name but received Y". `option`
 * is the option's path when `name` is not it (the CLI names its flags).
 */
export function invalidOption(name: string, expected: string, actual: unknown, option?: string): TorchEditError {
  return new TorchEditError(
    'ERR_INVALID_OPTION',
    `Expected ${expected} for ${name} but received ${describe(actual)}`,
    option === undefined ? undefined : { option },
  );
}

/**
 * Re-throws an error from the native layer as a TorchEditError carrying the stack captured
 * when the caller's call started (after sharp's `nativeError`): native code has no JS stack.
 */
export function fromNative(error: unknown, callerStack?: Error): TorchEditError {
  const native = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof native?.code === 'string' && native.code.startsWith('ERR_') ? native.code : 'ERR_INTERNAL';
  const message = typeof native?.message === 'string' ? native.message : String(error);
  const wrapped = new TorchEditError(code, message, { cause: error });
  if (callerStack?.stack) {
    const frames = callerStack.stack.split('\n').slice(1).join('\n');
    wrapped.stack = `${wrapped.name} [${code}]: ${message}\n${frames}`;
  }
  return wrapped;
}

/** Calls into the binding synchronously, turning a native throw into a TorchEditError. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof TorchEditError) throw error;
    const wrapped = fromNative(error);
    Error.captureStackTrace?.(wrapped, callNative);
    throw wrapped;
  }
}
