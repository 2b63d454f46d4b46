/**
 * TorchScript module handles. Loading and every call run as jobs on the device's queue, never
 * on the main thread; outputs come back as Tensor handles (tuples and lists as arrays).
 */
import { resolve } from 'node:path';
import { notARegularFile } from './io/regularFile.js';
import { notAZipArchive } from './io/zipArchive.js';
import { native, type NativeArgument, type NativeModule, type NativeValue } from './binding.js';
import { resolveDevice, type Device } from './device.js';
import { TorchEditError, callNative, invalidOption } from './errors.js';
import { NativeHandle } from './handle.js';
import { runJob, type JobOptions } from './jobs.js';
import { Tensor } from './tensor.js';

/** An argument of forward(): tensors, numbers (TorchScript `float`), bigints (`int`), booleans, null (`None`), arrays of tensors (`List[Tensor]`). */
export type ModuleArgument = Tensor | number | bigint | boolean | null | Tensor[];
/** What forward() returns: a Tensor, or arrays of them for tuples and lists, or plain scalars. */
export type ModuleOutput = Tensor | number | boolean | string | null | ModuleOutput[];

export interface LoadModuleOptions extends JobOptions {
  /** Where the module's weights live and its calls run. Defaults to `'cpu'`. */
  device?: Device;
}

function toNativeArgument(value: ModuleArgument, index: number): NativeArgument {
  if (value instanceof Tensor) return value.native;
  if (Array.isArray(value)) return value.map((t, j) => Tensor.handleOf(t, `argument ${index}[${j}]`));
  if (value === null || ['number', 'bigint', 'boolean'].includes(typeof value)) return value;
  return Tensor.handleOf(value, `argument ${index}`);
}

function fromNativeValue(value: NativeValue): ModuleOutput {
  if (Array.isArray(value)) return value.map(fromNativeValue);
  if (value !== null && typeof value === 'object') return Tensor.fromNative(value);
  return value;
}

export class Module extends NativeHandle {
  private constructor(handle: NativeModule) {
    super('module', handle);
  }

  /** @internal */
  static fromNative(handle: NativeModule): Module {
    return new Module(handle);
  }

  // One getter per binding property, as StableDiffusionModel and Tensor have: alike in shape only.
  /** @internal The native handle, for passing to the binding. Throws ERR_DISPOSED. */
  get native(): NativeModule {
    return this.handle<NativeModule>();
  }

  get path(): string {
    return callNative(() => this.native.path);
  }
  get device(): string {
    return callNative(() => this.native.device);
  }
  /** Number of parameter elements (weights) in the module and its submodules. */
  get parameterCount(): number {
    return callNative(() => this.native.parameterCount);
  }
  /** Dotted names of every parameter, e.g. `'linear.weight'`. */
  get parameterNames(): string[] {
    return callNative(() => this.native.parameterNames);
  }
  /**
   * Attention chains (softmax(q·kᵀ·s)·v) that the load-time graph pass runs through torchedit's
   * fused kernel in calls without gradients: 0 when none matched or `configure({ fusedAttention:
   * false })` was in effect at load.
   */
  get fusedAttentionSites(): number {
    return callNative(() => this.native.fusedAttentionSites);
  }

  /** Calls the module's forward() on its device, without autograd. */
  forward(...args: ModuleArgument[]): Promise<ModuleOutput> {
    return this.run(args);
  }

  /** forward() with job options (abort signal, progress). */
  async run(args: ModuleArgument[], options: JobOptions = {}): Promise<ModuleOutput> {
    const handle = this.native;
    const nativeArgs = args.map(toNativeArgument);
    return fromNativeValue(await runJob((onProgress) => handle.forward(nativeArgs, onProgress), options));
  }

  /** Puts the module in training mode (dropout active, batch-norm statistics updated). */
  async train(on = true): Promise<void> {
    const handle = this.native;
    await runJob(() => handle.setTraining(on));
  }

  /** Writes the module with torch.jit.save (loadable by loadModule and by Python's torch.jit.load). */
  async save(path: string, options: JobOptions = {}): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) throw invalidOption('path', 'non-empty string', path);
    const handle = this.native;
    await runJob(() => handle.save(resolve(path)), options);
  }

  /**
   * Copies of every parameter by dotted name (e.g. to hash or inspect weights); with `names`, of
   * those only (names the module lacks are left out).
   */
  async parameters(options: JobOptions & { names?: readonly string[] } = {}): Promise<Map<string, Tensor>> {
    const handle = this.native;
    const names = options.names === undefined ? undefined : [...options.names];
    const params = await runJob(() => handle.parameters(names), options);
    return new Map(Object.entries(params).map(([name, t]) => [name, Tensor.fromNative(t)]));
  }

  /**
   * A module that holds `parameters` (dotted name → tensor of the same shape and dtype) in place
   * of its own and shares every other parameter and buffer with this one, which does not change.
   * ERR_MODEL_MISMATCH for a name this module lacks or a tensor of another shape or dtype.
   */
  async withParameters(parameters: ReadonlyMap<string, Tensor>, options: JobOptions = {}): Promise<Module> {
    const handle = this.native;
    const names = [...parameters.keys()];
    const tensors = names.map((name) => Tensor.handleOf(parameters.get(name), name));
    return Module.fromNative(await runJob(() => handle.withParameters(names, tensors), options));
  }

  /** Puts the module in evaluation mode, as it is after loading. */
  eval(): Promise<void> {
    return this.train(false);
  }
}

/** Loads a TorchScript file (`torch.jit.save`) off the main thread. */
export async function loadModule(path: string, options: LoadModuleOptions = {}): Promise<Module> {
  if (typeof path !== 'string' || path.length === 0) throw invalidOption('path', 'non-empty string', path);
  const device = resolveDevice(options.device ?? 'cpu');
  const absolute = resolve(path);
  const bad = await notARegularFile(absolute);
  if (bad)
    throw new TorchEditError(bad.missing || bad.directory ? 'ERR_FILE_NOT_FOUND' : 'ERR_MODULE_LOAD', `Cannot load a module: ${bad.why}`, {
      cause: bad.cause,
    });
  const notZip = await notAZipArchive(absolute);
  if (notZip) throw new TorchEditError('ERR_MODULE_LOAD', `Cannot load TorchScript module ${absolute}: ${notZip}`);
  return Module.fromNative(await runJob((onProgress) => native().NativeModule.load(absolute, device, onProgress), options));
}
