/**
 * The tensor handle: native memory owned by libtorch. `shape`, `dtype` and `device` are
 * synchronous; data moves only when asked (`await t.data()`, `Tensor.from(array, shape)`).
 * Dispose handles you no longer need; a FinalizationRegistry frees forgotten ones eventually.
 */
import { native, type NativeTensor } from './binding.js';
import { resolveDevice, type Device } from './device.js';
import { TorchEditError, callNative, invalidOption } from './errors.js';
import { NativeHandle } from './handle.js';
import { runJob, type JobOptions } from './jobs.js';
import { seed as seedOption } from './options/validate.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'bool';

/** The TypedArray holding each dtype's elements; float16 and bfloat16 come as raw 16-bit patterns. */
export interface DTypeArrays {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type TypedArray = DTypeArrays[DType];

const arrayDtypes: Array<[new (...args: never[]) => TypedArray, DType[]]> = [
  [Float32Array, ['float32']],
  [Float64Array, ['float64']],
  [Uint16Array, ['float16', 'bfloat16']],
  [Int8Array, ['int8']],
  [Int16Array, ['int16']],
  [Int32Array, ['int32']],
  [BigInt64Array, ['int64']],
  [Uint8Array, ['uint8', 'bool']],
];
const allDtypes = arrayDtypes.flatMap(([, d]) => d);
const floatDtypes: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

function checkShape(shape: unknown): number[] {
  if (!Array.isArray(shape))
    throw new TorchEditError('ERR_SHAPE', `Expected an array of non-negative integers for shape but received ${typeof shape}`);
  for (const [i, d] of shape.entries()) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new TorchEditError('ERR_SHAPE', `Expected non-negative integers for shape but dimension ${i} is ${String(d)}`);
    }
  }
  return shape as number[];
}

function checkDtype(dtype: unknown, allowed: readonly DType[] = allDtypes): DType {
  if (typeof dtype !== 'string' || !allowed.includes(dtype as DType)) {
    throw new TorchEditError('ERR_DTYPE', `Expected one of ${allowed.join(', ')} for dtype but received ${String(dtype)}`);
  }
  return dtype as DType;
}

export class Tensor extends NativeHandle {
  private constructor(handle: NativeTensor) {
    super('tensor', handle);
  }

  /** @internal Wraps a handle the binding returned. */
  static fromNative(handle: NativeTensor): Tensor {
    return new Tensor(handle);
  }

  /**
   * A tensor holding a copy of `data`, on the CPU. The dtype follows the array type
   * (Float32Array → float32, BigInt64Array → int64, …); a Uint16Array needs
   * `dtype: 'float16' | 'bfloat16'` and a Uint8Array may say `dtype: 'bool'`.
   */
  static from(data: TypedArray, shape: readonly number[], options: { dtype?: DType } = {}): Tensor {
    const entry = arrayDtypes.find(([ctor]) => data instanceof ctor);
    if (!entry)
      throw new TorchEditError(
        'ERR_DTYPE',
        'Expected a TypedArray (Float32Array, Float64Array, Int32Array, BigInt64Array, Uint8Array, …) for data',
      );
    const dtype = options.dtype === undefined ? entry[1][0] : checkDtype(options.dtype, entry[1]);
    if (dtype === 'float16' || dtype === 'bfloat16') {
      if (options.dtype === undefined) throw new TorchEditError('ERR_DTYPE', "A Uint16Array needs dtype 'float16' or 'bfloat16'");
    }
    const dims = checkShape(shape);
    const numel = dims.reduce((a, b) => a * b, 1);
    if (numel !== data.length) {
      throw new TorchEditError('ERR_SHAPE', `Shape [${dims.join(', ')}] holds ${numel} elements but the data has ${data.length}`);
    }
    return new Tensor(callNative(() => native().NativeTensor.fromTypedArray(data, dtype, dims)));
  }

  /** A CPU tensor of zeros. `dtype` defaults to `'float32'`. */
  static zeros(shape: readonly number[], options: { dtype?: DType } = {}): Tensor {
    const dtype = checkDtype(options.dtype ?? 'float32');
    return new Tensor(callNative(() => native().NativeTensor.zeros(checkShape(shape), dtype)));
  }

  /**
   * Standard normal samples on the CPU: the same numbers as `torch.manual_seed(seed);
   * torch.randn(shape)` in Python, then cast to `dtype` (default `'float32'`).
   */
  static randn(shape: readonly number[], options: { seed: number | bigint; dtype?: DType }): Tensor {
    const dtype = checkDtype(options?.dtype ?? 'float32', floatDtypes);
    const seed = seedOption('seed', options?.seed);
    return new Tensor(callNative(() => native().NativeTensor.randn(checkShape(shape), seed, dtype)));
  }

  /** @internal The native handle, for passing to the binding. Throws ERR_DISPOSED. */
  get native(): NativeTensor {
    return this.handle<NativeTensor>();
  }

  get shape(): number[] {
    return callNative(() => this.native.shape);
  }
  get dtype(): DType {
    return callNative(() => this.native.dtype) as DType;
  }
  get device(): string {
    return callNative(() => this.native.device);
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Copies the elements out, as the TypedArray of this dtype (see {@link DTypeArrays}). */
  async data(options: JobOptions = {}): Promise<TypedArray> {
    const handle = this.native;
    return runJob(() => handle.data(), options) as Promise<TypedArray>;
  }

  /** A converted copy: `to('float16')`, `to('cuda')`, or `to({ dtype, device })`. */
  async to(target: DType | Device | { dtype?: DType; device?: Device }, options: JobOptions = {}): Promise<Tensor> {
    const spec =
      typeof target === 'string'
        ? allDtypes.includes(target as DType)
          ? { dtype: target as DType }
          : { device: target as Device }
        : target;
    if (typeof spec !== 'object' || spec === null) throw invalidOption('target', 'dtype, device or { dtype, device }', target);
    const dtype = spec.dtype === undefined ? null : checkDtype(spec.dtype);
    const device = spec.device === undefined ? null : resolveDevice(spec.device);
    const handle = this.native;
    return Tensor.fromNative(await runJob(() => handle.to(dtype, device), options));
  }

  /** @internal Accepts only Tensor handles where a tensor is expected. */
  static handleOf(value: unknown, what: string): NativeTensor {
    if (!(value instanceof Tensor)) {
      throw new TorchEditError(
        'ERR_INVALID_HANDLE',
        `Expected a Tensor for ${what} but received ${value === null ? 'null' : typeof value}`,
      );
    }
    return value.native;
  }
}
