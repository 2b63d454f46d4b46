/**
 * Loads the native addon once, lazily: loading links libtorch, which costs ~0.5 s and ~160 MB,
 * so importing torchedit stays cheap until the first tensor or model.
 *
 * Which binary and which libtorch is decided by lib/loader/ (not node-gyp-build, which cannot
 * tell builds for different libtorches apart): the libtorch found first (explicit option,
 * TORCHEDIT_LIBTORCH, LIBTORCH, Python's torch, system paths), the addon that fits it (a source
 * build in build/Release, else a prebuild from prebuilds/ tagged with libtorch's version, C++ ABI
 * and cpu/cuda), libtorch preloaded by absolute path, then the addon.
 *
 * `NativeBinding` is the whole native surface, so the rest of lib/ is typed against it.
 */
import { fileURLToPath } from 'node:url';
import { TorchEditError } from './errors.js';
import type { MemoryReport, RuntimeInfo } from './runtime.js';
import { describeLibtorch } from './loader/libtorch.js';
import { inspectLoad, loadPlan, type LoadPlan } from './loader/load.js';

export interface NativeProgress {
  phase: string;
  step: number;
  total: number;
  value?: number;
}
export type NativeProgressCallback = (progress: NativeProgress) => void;

/** A queued native job: settles once; cancel() rejects a queued job at once. */
export interface NativeJob<T> {
  promise: Promise<T>;
  cancel(): boolean;
}

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  readonly disposed: boolean;
  data(): NativeJob<ArrayBufferView>;
  to(dtype: string | null, device: string | null): NativeJob<NativeTensor>;
  dispose(): void;
}

export interface NativeTensorClass {
  fromTypedArray(data: ArrayBufferView, dtype: string, shape: readonly number[]): NativeTensor;
  zeros(shape: readonly number[], dtype: string): NativeTensor;
  randn(shape: readonly number[], seed: bigint, dtype: string): NativeTensor;
}

export type NativeValue = NativeTensor | number | boolean | string | null | NativeValue[];
export type NativeArgument = NativeTensor | number | bigint | boolean | null | NativeTensor[];

export interface NativeModule {
  readonly path: string;
  readonly device: string;
  readonly parameterCount: number;
  readonly parameterNames: string[];
  readonly fusedAttentionSites: number;
  readonly disposed: boolean;
  forward(args: NativeArgument[], onProgress?: NativeProgressCallback): NativeJob<NativeValue>;
  setTraining(on: boolean): NativeJob<void>;
  save(path: string): NativeJob<void>;
  parameters(names?: readonly string[]): NativeJob<Record<string, NativeTensor>>;
  withParameters(names: readonly string[], tensors: readonly NativeTensor[]): NativeJob<NativeModule>;
  dispose(): void;
}

export interface NativeModuleClass {
  load(path: string, device: string, onProgress?: NativeProgressCallback): NativeJob<NativeModule>;
}

export interface NativeModelConfig {
  sampleSize: number;
  latentChannels: number;
  vaeScaleFactor: number;
  scalingFactor: number;
  predictionType: string;
  textEncoder: { maxLength: number; hiddenSize: number };
  /** model.json `crossAttentionMaps.downsample`; 0 when the UNet gives no maps. */
  attentionMapDownsample: number;
  scheduler: {
    numTrainTimesteps: number;
    betaSchedule: string;
    betaStart: number;
    betaEnd: number;
    stepsOffset: number;
    setAlphaToOne: boolean;
    timestepSpacing: string;
  };
}

export interface NativeTextToImageOptions {
  steps: number;
  guidanceScale: number;
  eta: number;
  seed: bigint;
  latentHeight: number;
  latentWidth: number;
}

/** The sampler of an inversion, given to both the inversion and its edits (native SamplerOptions). */
export interface NativeSamplerOptions {
  scheduler: 'ddpm' | 'dpmsolver++';
  steps: number;
  skipNoisiest: number;
  eta: number;
}

export interface NativeInversionOptions extends NativeSamplerOptions {
  sourceGuidanceScale: number;
  seed: bigint;
}

/** SEGA's part of the edit options. */
export interface NativeGuidanceOptions {
  momentumScale: number;
  momentumBeta: number;
  maskMode: 'channel' | 'sum';
  concepts: Array<{
    scale: number;
    remove: boolean;
    warmup: number;
    cooldown: number | null;
    threshold: number;
    weight: number;
    implicitMask: 'off' | 'attention' | 'intersect';
    /** The concept prompt's tokens, without BOS/EOS (M¹ reads their maps). */
    tokenCount: number;
  }>;
}

export interface NativeEditOptions extends NativeGuidanceOptions, NativeSamplerOptions {
  skip: number;
  guidanceScale: number;
  returnMasks: boolean;
}

export interface NativeImagicTrainOptions {
  embedding: { steps: number; lr: number };
  /** `parameters`: the dotted names of the UNet parameters stage B trains. */
  finetune: { steps: number; lr: number; parameters: readonly string[] };
  seed: bigint;
}

export interface NativeImagicGenerateOptions {
  /** η of ē = η·e_tgt + (1−η)·e_opt. */
  eta: number;
  /** The DDIM sampler's options (its own `eta` is the sampler's η). */
  sampling: NativeTextToImageOptions;
}

export interface NativeModel {
  readonly device: string;
  readonly dtype: string;
  readonly disposed: boolean;
  encodeText(ids: NativeTensor): NativeJob<NativeTensor>;
  encodeImage(image: NativeTensor, sample: boolean, seed: bigint | null): NativeJob<NativeTensor>;
  decodeLatents(latents: NativeTensor): NativeJob<NativeTensor>;
  modules(): { textEncoder: NativeModule; unet: NativeModule; vaeEncoder: NativeModule; vaeDecoder: NativeModule };
  dispose(): void;
}

export interface NativeModelClass {
  load(
    dir: string,
    config: NativeModelConfig,
    device: string,
    dtype: string | null,
    autocast: string | null,
    onProgress?: NativeProgressCallback,
  ): NativeJob<NativeModel>;
}

/** runtimeInfo() and memory() return lib/runtime.ts's public types as they are (documented there). */
export type NativeRuntimeInfo = RuntimeInfo;

export interface NativeBinding {
  NativeTensor: NativeTensorClass;
  NativeModule: NativeModuleClass;
  NativeModel: NativeModelClass;
  runtimeInfo(): NativeRuntimeInfo;
  resolveDevice(name: string): { name: string; fallback?: string };
  setThreads(threads: number): void;
  memory(): MemoryReport;
  setCpuCache(enabled: boolean, limitBytes?: number): void;
  emptyCpuCache(): void;
  setFusedAttention(enabled: boolean): void;
  /**
   * Every pipeline is one job on the model's queue, called one way: (model, tensors…, options,
   * onProgress?). Every option field is required (the native structs have no defaults).
   */
  pipelines: {
    textToImage(
      model: NativeModel,
      context: NativeTensor,
      unconditional: NativeTensor,
      options: NativeTextToImageOptions,
      onProgress?: NativeProgressCallback,
    ): NativeJob<NativeTensor>;
    invert(
      model: NativeModel,
      x0: NativeTensor,
      unconditional: NativeTensor,
      source: NativeTensor | null,
      options: NativeInversionOptions,
      onProgress?: NativeProgressCallback,
    ): NativeJob<[NativeTensor, NativeTensor, NativeTensor]>;
    /** Returns the edited latents and, with `returnMasks`, the masks `[steps, concepts, h, w]`. */
    edit(
      model: NativeModel,
      x0: NativeTensor,
      timesteps: NativeTensor,
      xts: NativeTensor,
      zs: NativeTensor,
      unconditional: NativeTensor,
      target: NativeTensor | null,
      concepts: NativeTensor | null,
      userMask: NativeTensor | null,
      options: NativeEditOptions,
      onProgress?: NativeProgressCallback,
    ): NativeJob<[NativeTensor, NativeTensor | null]>;
    imagicTrain(
      model: NativeModel,
      x0: NativeTensor,
      targetEmbedding: NativeTensor,
      options: NativeImagicTrainOptions,
      onProgress?: NativeProgressCallback,
    ): NativeJob<{
      targetEmbedding: NativeTensor;
      optimizedEmbedding: NativeTensor;
      unet: NativeModule;
      embeddingLosses: Float32Array;
      finetuneLosses: Float32Array;
    }>;
    imagicGenerate(
      model: NativeModel,
      unet: NativeModule,
      targetEmbedding: NativeTensor,
      optimizedEmbedding: NativeTensor,
      unconditional: NativeTensor,
      options: NativeImagicGenerateOptions,
      onProgress?: NativeProgressCallback,
    ): NativeJob<NativeTensor>;
    /** Each candidate's [gain, distance] (float64 `[N, 2]`) for chooseEta's built-in criterion. */
    imagicEtaScores(
      model: NativeModel,
      unet: NativeModule,
      targetEmbedding: NativeTensor,
      optimizedEmbedding: NativeTensor,
      candidates: NativeTensor,
      x0: NativeTensor,
      options: { pairs: number; seed: bigint },
      onProgress?: NativeProgressCallback,
    ): NativeJob<NativeTensor>;
  };
  /** Test support. */
  testing: {
    /** A job of `steps` sleeps of `msPerStep`, checking for abort between steps. */
    stepJob(device: string, steps: number, msPerStep: number, onProgress?: NativeProgressCallback): NativeJob<number>;
    /** The SEGA term of each of `steps` edit steps for fixed ε_∅ and concept ε's. */
    semanticGuidance(epsUncond: NativeTensor, epsConcepts: NativeTensor, options: NativeGuidanceOptions, steps: number): NativeTensor[];
    /** Imagic's loss and its gradient with respect to the embedding, with the bundle's UNet. */
    imagicLossGradient(
      model: NativeModel,
      x0: NativeTensor,
      embedding: NativeTensor,
      noise: NativeTensor,
      t: number,
    ): NativeJob<[NativeTensor, NativeTensor]>;
    /** Imagic's stage-B loss and its gradient with respect to the named UNet parameters, made trainable as stage B does. */
    imagicParameterGradients(
      model: NativeModel,
      x0: NativeTensor,
      embedding: NativeTensor,
      noise: NativeTensor,
      t: number,
      names: readonly string[],
    ): NativeJob<[NativeTensor, Record<string, NativeTensor>]>;
    /**
     * The fused attention kernel on one SIMD path (`'auto'`, `'avx512'`, `'avx2'`, `'scalar'`) and
     * softmax(q·kt·scale)·v composed by torch in float64 (returned as float32): [fused, reference].
     */
    attention(q: NativeTensor, kt: NativeTensor, v: NativeTensor, scale: number, simd: string): [NativeTensor, NativeTensor];
    /**
     * The best of `reps` runs, in ms, of the fused kernel and of torch's unfused chain on the same
     * inputs; `clock` 'cpu' counts the calling thread's CPU time (one thread) instead of wall time.
     */
    attentionTimes(
      q: NativeTensor,
      kt: NativeTensor,
      v: NativeTensor,
      scale: number,
      simd: string,
      reps: number,
      clock?: 'wall' | 'cpu',
    ): [number, number];
    /** [fused-clone parameters sharing the module's storage, fused-clone parameters]; [0, 0] without a clone. */
    fusedSharesParameters(module: NativeModule): [number, number];
    /** `calls` timed UNet calls through the model's predictNoise: [ε̂ of the last, seconds of each (float64)]. */
    unetCalls(
      model: NativeModel,
      sample: NativeTensor,
      context: NativeTensor,
      t: number,
      calls: number,
    ): NativeJob<[NativeTensor, NativeTensor]>;
    /** Sets the kernel's SIMD path for the process; returns the one in effect. */
    setAttentionSimd(path: string): string;
  };
}

/** The package root: dist/lib/binding.js sits two folders below it. */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

let binding: NativeBinding | undefined;
let plan: LoadPlan | undefined;
let libtorchOption: string | undefined;

/**
 * An explicit libtorch folder for the next load (its root, its lib/ folder, or Python's torch
 * package): the only place looked at, ahead of TORCHEDIT_LIBTORCH and LIBTORCH. Throws once
 * the addon is loaded — a process links one libtorch.
 */
export function setLibtorchPath(path: string | undefined): void {
  if (binding && path !== libtorchOption) {
    throw new TorchEditError(
      'ERR_INVALID_OPTION',
      `libtorch is already loaded from ${plan?.libtorch.libDir}; set the libtorch path before the first tensor or model`,
    );
  }
  libtorchOption = path;
}

/** The libtorch and addon the loaded binding uses; undefined before the first load. */
export function loadedPlan(): LoadPlan | undefined {
  return plan;
}

export function native(): NativeBinding {
  if (binding) return binding;
  const inspection = inspectLoad({ root: packageRoot, libtorch: libtorchOption });
  if (!inspection.plan) throw inspection.error!;
  binding = loadPlan(inspection.plan, import.meta.url) as NativeBinding;
  plan = inspection.plan;
  for (const skipped of plan.passedOver) {
    process.emitWarning(
      `libtorch ${describeLibtorch(skipped)} in ${skipped.libDir} (${skipped.origin}) has no matching torchedit addon; ` +
        `using libtorch ${describeLibtorch(plan.libtorch)} in ${plan.libtorch.libDir} instead. ` +
        'To use the first one, build for it: npm rebuild torchedit --build-from-source.',
      { code: 'TORCHEDIT_LIBTORCH_PASSED_OVER' },
    );
  }
  return binding;
}
