/**
 * The models a server serves, by name: loaded once at start (the first is the default), their
 * model.json read for the validation context of every request, disposed at close.
 */
import { readModelJson } from '../model/config.js';
import { type LoadModelOptions, loadModel, type StableDiffusionModel } from '../model/model.js';
import { contextOf, type ValidationContext } from '../options/resolve.js';
import type { Limits } from '../options/schema.js';
import { HttpError } from './errors.js';

export interface ServedModel {
  name: string;
  path: string;
  model: StableDiffusionModel;
  context(extra?: Limits): ValidationContext;
}

export class ModelRegistry {
  private readonly models = new Map<string, ServedModel>();
  private defaultName = '';

  async load(models: Record<string, string>, options: Pick<LoadModelOptions, 'device' | 'dtype'> = {}): Promise<void> {
    for (const [name, path] of Object.entries(models)) {
      await readModelJson(path); // a clear error for a folder that is not a bundle, before loading
      const model = await loadModel(path, options);
      this.models.set(name, { name, path, model, context: (extra) => contextOf(model, extra) });
      if (this.defaultName === '') this.defaultName = name;
    }
  }

  /** The model of a request (`undefined`: the default); 400 for an unknown name. */
  get(name: unknown): ServedModel {
    if (name === undefined || name === null) return this.models.get(this.defaultName)!;
    const model = typeof name === 'string' ? this.models.get(name) : undefined;
    if (!model) {
      throw new HttpError(
        400,
        'ERR_MODEL_NOT_FOUND',
        `Unknown model ${JSON.stringify(name)}; this server has ${[...this.models.keys()].join(', ')}`,
      );
    }
    return model;
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  get defaultModel(): string {
    return this.defaultName;
  }

  dispose(): void {
    for (const m of this.models.values()) m.model.dispose();
    this.models.clear();
  }
}
