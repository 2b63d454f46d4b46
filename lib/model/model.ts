/**
 * A loaded Stable Diffusion bundle: tokenizer, text encoder, UNet and VAE on one device.
 * Prompts, images and latents go in and out as Tensor handles; pipelines (lib/pipelines/)
 * compose these with native loops.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { native, packageRoot, type NativeModel, type NativeModelConfig } from '../binding.js';
import { resolveDevice, type Device } from '../device.js';
import { TorchEditError, callNative, fromNative, invalidOption } from '../errors.js';
import { NativeHandle } from '../handle.js';
import { readImage, type ImageInput, type ResizeMode } from '../image/read.js';
import { runJob, type JobOptions } from '../jobs.js';
import { Module } from '../module.js';
import { defaultsFor, type ModelDefaults } from '../options/defaults.js';
import { oneOf, optionsObject, seed as seedOption } from '../options/validate.js';
import { runtimeInfo } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { ClipTokenizer } from '../tokenizer/clipTokenizer.js';
import { checkKnownTokenIds, compareVersions, readBundleConfig, type BundleConfig } from './config.js';
import { checkImageSize } from '../image/read.js';
import type { GenerationResult } from '../pipelines/result.js';
import { textToImage, type TextToImageOptions } from '../pipelines/textToImage.js';
import { invert, type InvertOptions } from '../pipelines/ledits/invert.js';
import type { Inversion } from '../pipelines/ledits/inversion.js';
import { bundleFingerprint } from './fingerprint.js';
import { notAZipArchive } from '../io/zipArchive.js';
import { imagic, type ImagicOptions } from '../pipelines/imagic/train.js';
import type { ImagicResult } from '../pipelines/imagic/result.js';
import { emitWarning, type TorchEditWarning } from '../warnings.js';
import { unknownWords, unknownWordsWarning } from './vocabulary.js';

/**
 * Bounds of the per-model prompt caches, least recently used out first: a service sees endless
 * distinct prompts, and each cached state is L × D floats (236 KB for SD 1.5).
 */
const PROMPT_CACHE_LIMIT = 64;
const CHECKED_PROMPTS_LIMIT = 4096;

/** Puts `key` last in `cache` (most recently used), dropping the oldest beyond `limit`; returns `value`. */
function remember<V>(cache: Map<string, V>, key: string, value: V, limit: number): V {
  cache.delete(key);
  cache.set(key, value);
  while (cache.size > limit) cache.delete(cache.keys().next().value!);
  return value;
}

/** The model shipped inside the package, used when loadModel() gets no path. */
export const defaultModelPath = join(packageRoot, 'models', 'shapes-64');

export interface LoadModelOptions extends JobOptions {
  /** Where the model runs. Defaults to `'cpu'`. */
  device?: Device;
  /** Cast the weights to this dtype after loading. Defaults to the bundle's own dtype. */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /**
   * Mixed precision for the UNet: its matrix products and convolutions run in this dtype under
   * libtorch's autocast, the rest in float32. `'bfloat16'` on CPU (about 1% relative error per
   * UNet call; see bench/RESULTS.md for speed and accuracy); `'float16'` only on CUDA.
   * Defaults to none (full precision).
   */
  autocast?: 'bfloat16' | 'float16';
  /**
   * Receives the model's warnings: results that may not be what was asked for. Today one kind,
   * `TORCHEDIT_UNKNOWN_WORDS`: a prompt (of any call: text-to-image and negative prompts, source
   * and target prompts, concepts, Imagic's target) holds words the model's text encoder was not
   * trained on, as its model.json `textEncoder.knownTokenIds` declares; given once per distinct
   * prompt text, naming the words. A warning it throws rejects the call that used the prompt.
   * Defaults to `process.emitWarning(warning)`.
   */
  onWarning?: (warning: TorchEditWarning) => void;
}

export interface EncodeImageOptions {
  /** Image width in pixels; a multiple of 8 × vaeScaleFactor. Defaults to the model's size. */
  width?: number;
  /** Image height in pixels; a multiple of 8 × vaeScaleFactor. Defaults to the model's size. */
  height?: number;
  /** How the image is fitted to the size: `'cover'` (center crop), `'contain'` (pad), `'fill'` (stretch). Defaults to `'cover'`. */
  resize?: ResizeMode;
  /** Sample the VAE posterior instead of taking its mean. Defaults to `false`. */
  sample?: boolean;
  /** Seed of the posterior sample (with `sample: true`). Defaults to 0. */
  seed?: number | bigint;
}

export class StableDiffusionModel extends NativeHandle {
  readonly config: BundleConfig;
  readonly path: string;
  readonly tokenizer: ClipTokenizer;
  /** The option defaults for this model: the library's, replaced by model.json `recommended`. */
  readonly defaults: ModelDefaults;
  /** Prompt → its [1, L, D] states, so repeated prompts skip the text encoder. */
  #promptCache = new Map<string, Float32Array>();
  #fingerprint: Promise<string> | undefined;
  /** model.json `textEncoder.knownTokenIds`; undefined when every id is known. */
  readonly #knownIds: ReadonlySet<number> | undefined;
  /** Prompts whose words were checked against #knownIds (each is warned about once). */
  readonly #checkedPrompts = new Map<string, string>();
  readonly #onWarning: (warning: TorchEditWarning) => void;

  private constructor(
    path: string,
    config: BundleConfig,
    tokenizer: ClipTokenizer,
    handle: NativeModel,
    onWarning: (warning: TorchEditWarning) => void,
  ) {
    super('model', handle);
    this.path = path;
    this.config = config;
    this.defaults = defaultsFor(config.recommended);
    this.tokenizer = tokenizer;
    const known = config.textEncoder.knownTokenIds;
    this.#knownIds = known === undefined ? undefined : new Set(known);
    this.#onWarning = onWarning;
  }

  /** @internal */
  static create(
    path: string,
    config: BundleConfig,
    tokenizer: ClipTokenizer,
    handle: NativeModel,
    onWarning: (warning: TorchEditWarning) => void = emitWarning,
  ): StableDiffusionModel {
    return new StableDiffusionModel(path, config, tokenizer, handle, onWarning);
  }

  // One getter per binding property, as Module and Tensor have: alike in shape only.
  /** @internal The native handle, for passing to the binding. Throws ERR_DISPOSED. */
  get native(): NativeModel {
    return this.handle<NativeModel>();
  }

  get device(): string {
    return callNative(() => this.native.device);
  }
  get dtype(): string {
    return callNative(() => this.native.dtype);
  }
  /** Default image side in pixels: sampleSize × vaeScaleFactor (512 for SD 1.5). */
  get imageSize(): number {
    return this.config.sampleSize * this.config.vaeScaleFactor;
  }
  /** Image sides must be multiples of this: 8 × vaeScaleFactor (64 for SD). */
  get sizeMultiple(): number {
    return 8 * this.config.vaeScaleFactor;
  }

  /** The four modules as handles sharing this model's weights (for custom loops and tests). */
  modules(): { textEncoder: Module; unet: Module; vaeEncoder: Module; vaeDecoder: Module } {
    const m = callNative(() => this.native.modules());
    return {
      textEncoder: Module.fromNative(m.textEncoder),
      unet: Module.fromNative(m.unet),
      vaeEncoder: Module.fromNative(m.vaeEncoder),
      vaeDecoder: Module.fromNative(m.vaeDecoder),
    };
  }

  /** Token ids `[B, maxLength]` (int64) for one prompt or several. */
  tokenize(prompts: string | string[]): Tensor {
    const list = promptList(prompts);
    const L = this.config.textEncoder.maxLength;
    const ids = new BigInt64Array(list.length * L);
    list.forEach((p, i) =>
      this.tokenizer.encode(p).forEach((id, j) => {
        ids[i * L + j] = BigInt(id);
      }),
    );
    return Tensor.from(ids, [list.length, L]);
  }

  /**
   * Text-encoder states `[B, L, D]` for one prompt or several. Repeated prompts are cached. A prompt
   * with words the model was not trained on gets a warning (see {@link LoadModelOptions.onWarning}).
   */
  async encodePrompt(prompts: string | string[], options: JobOptions = {}): Promise<Tensor> {
    const list = promptList(prompts);
    // This call's states, taken from the cache first: the cache may evict while this call fills it.
    const found = new Map<string, Float32Array>();
    for (const p of list) {
      const hit = this.#promptCache.get(p);
      if (hit) found.set(p, remember(this.#promptCache, p, hit, PROMPT_CACHE_LIMIT));
    }
    const missing = [...new Set(list.filter((p) => !found.has(p)))];
    if (missing.length > 0) {
      const handle = this.native; // ERR_DISPOSED before any warning
      for (const prompt of missing) this.#checkVocabulary(prompt);
      using ids = this.tokenize(missing);
      using states = Tensor.fromNative(await runJob(() => handle.encodeText(ids.native), options));
      const data = (await states.data()) as Float32Array;
      const size = data.length / missing.length;
      missing.forEach((p, i) => found.set(p, data.slice(i * size, (i + 1) * size)));
      if (!this.disposed) for (const p of missing) remember(this.#promptCache, p, found.get(p)!, PROMPT_CACHE_LIMIT);
    }
    const { maxLength, hiddenSize } = this.config.textEncoder;
    const out = new Float32Array(list.length * maxLength * hiddenSize);
    list.forEach((p, i) => out.set(found.get(p)!, i * maxLength * hiddenSize));
    return Tensor.from(out, [list.length, maxLength, hiddenSize]);
  }

  /** Warns, once per prompt text, when `prompt` has words outside model.json `textEncoder.knownTokenIds`. */
  #checkVocabulary(prompt: string): void {
    if (this.#knownIds === undefined || this.#checkedPrompts.has(prompt)) return;
    const words = unknownWords(this.tokenizer, prompt, this.#knownIds);
    if (words.length > 0) this.#onWarning(unknownWordsWarning(this.config.name, prompt, words));
    remember(this.#checkedPrompts, prompt, prompt, CHECKED_PROMPTS_LIMIT); // after onWarning: a warning it throws comes again next time
  }

  /** Reads an image (path, Buffer or sharp instance) into a `[1, 3, H, W]` tensor in [-1, 1] at a size the model accepts. */
  async readImage(input: ImageInput, given: Pick<EncodeImageOptions, 'width' | 'height' | 'resize'> = {}): Promise<Tensor> {
    const options = optionsObject(given);
    const width = options.width ?? this.imageSize;
    const height = options.height ?? this.imageSize;
    checkImageSize(width, height, this.sizeMultiple);
    const image = await readImage(input, {
      width,
      height,
      resize: options.resize === undefined ? 'cover' : oneOf('resize', options.resize, ['cover', 'contain', 'fill'] as const),
    });
    return Tensor.from(image.data, image.shape);
  }

  /** VAE latents × scalingFactor for an image (any input readImage takes) or a `[B, 3, H, W]` tensor. */
  async encodeImage(input: ImageInput | Tensor, given: EncodeImageOptions & JobOptions = {}): Promise<Tensor> {
    const options = optionsObject(given);
    const image = input instanceof Tensor ? input : await this.readImage(input, options);
    try {
      const seed = options.sample ? seedOption('seed', options.seed ?? 0) : null;
      const handle = this.native;
      return Tensor.fromNative(await runJob(() => handle.encodeImage(image.native, options.sample === true, seed), options));
    } finally {
      if (image !== input) image.dispose();
    }
  }

  /** Decodes latents (× scalingFactor) to images `[B, 3, H, W]` in about [-1, 1]. */
  async decodeLatents(latents: Tensor, options: JobOptions = {}): Promise<Tensor> {
    const handle = this.native;
    return Tensor.fromNative(await runJob(() => handle.decodeLatents(Tensor.handleOf(latents, 'latents')), options));
  }

  /** Text-to-image with DDIM and classifier-free guidance (see {@link TextToImageOptions}). */
  generate(prompt: string, options: TextToImageOptions = {}): Promise<GenerationResult> {
    return textToImage(this, prompt, options);
  }

  /** LEDITS step 1: edit-friendly DDPM inversion of an image; edit the result many times. */
  invert(image: ImageInput | Tensor, options: InvertOptions = {}): Promise<Inversion> {
    return invert(this, image, options);
  }

  /** Imagic stages A and B for an image and a target prompt; generate from the result at any η. */
  imagic(image: ImageInput | Tensor, targetPrompt: string, options: ImagicOptions = {}): Promise<ImagicResult> {
    return imagic(this, image, targetPrompt, options);
  }

  /** A content fingerprint of the bundle (computed once), stored in files made with this model. */
  fingerprint(): Promise<string> {
    this.#fingerprint ??= bundleFingerprint(this.path);
    return this.#fingerprint;
  }

  /** @internal Frees the prompt cache with the weights: jobs already queued finish first; new calls throw ERR_DISPOSED. */
  protected override release(): void {
    this.#promptCache.clear();
    this.#checkedPrompts.clear();
  }
}

function promptList(prompts: string | string[]): string[] {
  const list = typeof prompts === 'string' ? [prompts] : prompts;
  if (!Array.isArray(list) || list.length === 0 || list.some((p) => typeof p !== 'string')) {
    throw invalidOption('prompt', 'string or non-empty array of strings', prompts);
  }
  return list;
}

/**
 * Loads a model bundle (docs/bundle-format.md) from `path`, or the model shipped with the package when no
 * path is given. Validates model.json and every file, loads the four modules on the device, and
 * checks their output shapes against model.json.
 */
export async function loadModel(path?: string, given: LoadModelOptions = {}): Promise<StableDiffusionModel> {
  const options = optionsObject(given);
  if (path !== undefined && (typeof path !== 'string' || path.length === 0)) throw invalidOption('path', 'non-empty string', path);
  const dir = resolve(path ?? defaultModelPath);
  if (path === undefined && !existsSync(join(dir, 'model.json'))) {
    throw new TorchEditError(
      'ERR_MODEL_NOT_FOUND',
      `This build of torchedit ships no default model (expected at ${dir}); pass the path of a bundle`,
    );
  }
  const device = resolveDevice(options.device ?? 'cpu');
  // libtorch's CPU kernels lack float16 layer norms and convolutions: the load probe would fail.
  const dtypes = device === 'cpu' ? (['float32', 'bfloat16'] as const) : (['float32', 'float16', 'bfloat16'] as const);
  const dtype = options.dtype === undefined ? null : oneOf('dtype', options.dtype, dtypes);
  const autocast =
    options.autocast === undefined
      ? null
      : oneOf('autocast', options.autocast, device === 'cpu' ? (['bfloat16'] as const) : (['bfloat16', 'float16'] as const));
  if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
    throw invalidOption('onWarning', 'function', options.onWarning);
  }
  const config = await readBundleConfig(dir);
  const tokenizer = await ClipTokenizer.fromFolder(join(dir, 'tokenizer'), config.textEncoder);
  checkKnownTokenIds(dir, config, tokenizer.vocabSize);
  try {
    for (const name of ['text_encoder.pt', 'unet.pt', 'vae_encoder.pt', 'vae_decoder.pt']) {
      const notZip = await notAZipArchive(join(dir, name));
      if (notZip) throw new TorchEditError('ERR_MODULE_LOAD', `Cannot load TorchScript module ${join(dir, name)}: ${notZip}`);
    }
    const handle = await runJob(
      (onProgress) => native().NativeModel.load(dir, nativeConfig(config), device, dtype, autocast, onProgress),
      options,
    );
    return StableDiffusionModel.create(dir, config, tokenizer, handle, options.onWarning);
  } catch (error) {
    throw explainLoadError(error as TorchEditError, config);
  }
}

/** What the native loader reads of model.json: the config, with the maps' downsampling as a number (0: none). */
function nativeConfig(config: BundleConfig): NativeModelConfig {
  return { ...config, attentionMapDownsample: config.crossAttentionMaps?.downsample ?? 0 };
}

/** A module that fails to load and was exported by a newer torch gets a precise error. */
function explainLoadError(error: TorchEditError, config: BundleConfig): TorchEditError {
  const exported = config.exportedWith?.torch;
  const running = runtimeInfo().torchVersion;
  const tooNew =
    /too old|maximum supported version|newer version/i.test(error.message) ||
    (exported !== undefined && compareVersions(exported, running) > 0);
  if (error.code === 'ERR_MODULE_LOAD' && tooNew) {
    const wrapped = new TorchEditError(
      'ERR_MODEL_TORCH_VERSION',
      `${error.message} — the bundle was exported with torch ${exported ?? '(unknown)'} and this libtorch is ${running}; ` +
        're-export it with a torch no newer than the libtorch torchedit runs on, or install a newer libtorch',
      { cause: error },
    );
    wrapped.stack = error.stack?.replace(/^[^\n]*/, `${wrapped.name} [ERR_MODEL_TORCH_VERSION]: ${wrapped.message}`);
    return wrapped;
  }
  return error instanceof TorchEditError ? error : fromNative(error);
}
