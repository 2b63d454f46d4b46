/**
 * The base of every object that owns native memory: Tensor, Module, StableDiffusionModel, and
 * the results made of them (Inversion, ImagicResult, GenerationResult). `dispose()` frees it now
 * and is safe to call twice, `using` calls it, and further use throws ERR_DISPOSED. An object
 * holding a binding handle itself also gets a FinalizationRegistry backstop that frees the handle
 * if the object is collected undisposed; results rely on their parts' backstops, so a tensor
 * taken out of a forgotten result stays usable.
 */
import { TorchEditError } from './errors.js';

/** What every binding handle (NativeTensor, NativeModule, NativeModel) has. */
export interface NativeObject {
  readonly disposed: boolean;
  dispose(): void;
}

/**
 * Awaits `next`, disposing `held` (what the caller already acquired) when it rejects: a pipeline
 * acquires its inputs one await after another, and one that fails must not leak the others.
 */
export async function orDispose<T>(next: Promise<T> | (() => Promise<T>), ...held: (Disposable | null | undefined)[]): Promise<T> {
  try {
    return await (typeof next === 'function' ? next() : next);
  } catch (error) {
    for (const h of held) h?.[Symbol.dispose]();
    throw error;
  }
}

/** Disposes handles whose owner was garbage-collected without dispose(): a backstop, not the plan. */
const registry = new FinalizationRegistry<NativeObject>((handle) => handle.dispose());

export abstract class NativeHandle implements Disposable {
  readonly #what: string;
  readonly #handle: NativeObject | undefined;
  #disposed = false;

  /** `what` names the object in ERR_DISPOSED ("The tensor was disposed"); `handle` is the binding object it owns, if any. */
  protected constructor(what: string, handle?: NativeObject) {
    this.#what = what;
    this.#handle = handle;
    if (handle) registry.register(this, handle, this);
  }

  /** Whether it was disposed: its native memory is freed and further use throws ERR_DISPOSED. */
  get disposed(): boolean {
    return this.#disposed || this.#handle?.disposed === true;
  }

  /**
   * Frees the native memory now (jobs already queued keep what they use until they finish).
   * Further use throws ERR_DISPOSED; disposing twice is fine.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#handle) {
      registry.unregister(this);
      this.#handle.dispose();
    }
    this.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal Throws ERR_DISPOSED once disposed. */
  protected assertLive(): void {
    if (this.disposed) throw new TorchEditError('ERR_DISPOSED', `The ${this.#what} was disposed`);
  }

  /** @internal The binding object, for passing to native calls. Throws ERR_DISPOSED once disposed. */
  protected handle<T extends NativeObject>(): T {
    this.assertLive();
    return this.#handle as T;
  }

  /** @internal Frees what a subclass owns besides its binding object (called once, by dispose()). */
  protected release(): void {}
}
