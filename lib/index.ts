// Public exports only. Pipelines are methods: model.generate(), model.invert() → inversion.edit(),
// model.imagic() → result.generate()/sweep(); the functions behind them are internal.
export { TorchEditError, type ErrorCode } from './errors.js';
export { TorchEditWarning, type WarningCode } from './warnings.js';
export { Tensor, type DType, type DTypeArrays, type TypedArray } from './tensor.js';
export { Module, loadModule, type LoadModuleOptions, type ModuleArgument, type ModuleOutput } from './module.js';
export { type Device, resolveDevice } from './device.js';
export type { JobOptions, JobProgress } from './jobs.js';
export { configure, runtimeInfo, memory, emptyCache, type RuntimeOptions, type RuntimeInfo, type MemoryReport } from './runtime.js';
export {
  readImage,
  checkImageSize,
  type ImageInput,
  type ResizeMode,
  type ReadImageOptions,
  type ImageData,
  type RgbColor,
} from './image/read.js';
export { ImageResult, type ImageFormat, type EncodeOptions, type ImageResultInit } from './image/write.js';
export type { ModelDefaults, RecommendedSettings } from './options/defaults.js';
export { StableDiffusionModel, loadModel, defaultModelPath, type LoadModelOptions, type EncodeImageOptions } from './model/model.js';
export type { BundleConfig, CrossAttentionMapsConfig, SchedulerConfig, TextEncoderConfig } from './model/config.js';
export type { TextToImageOptions } from './pipelines/textToImage.js';
export { GenerationResult } from './pipelines/result.js';
export { ClipTokenizer, type ClipTokenizerOptions, type TokenizedWord } from './tokenizer/clipTokenizer.js';
export type { InvertOptions } from './pipelines/ledits/invert.js';
export { Inversion, loadInversion, type InversionTensors, type InversionSettings } from './pipelines/ledits/inversion.js';
export type { EditOptions, EditConcept, ImplicitMaskMode, MaskInput } from './pipelines/ledits/edit.js';
export { EditResult } from './pipelines/ledits/editResult.js';
export type { FinetuneParameters, ImagicFinetuneOptions, ImagicOptions, ImagicStageOptions } from './pipelines/imagic/train.js';
export type {
  ImagicChooseEtaOptions,
  ImagicEtaCandidate,
  ImagicEtaChoice,
  ImagicEtaScorer,
  ImagicModelCriterion,
} from './pipelines/imagic/chooseEta.js';
export { ImagicResult, loadImagic, type ImagicGenerateOptions, type ImagicSettings } from './pipelines/imagic/result.js';
