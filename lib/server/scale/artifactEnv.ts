/**
 * A job's environment on a worker: inputs fetched from the shared ArtifactStore (through the
 * worker's cache), outputs written there. Inversions and Imagic results are checked against this
 * worker's model fingerprint before they are loaded (ERR_MODEL_MISMATCH), and travel as files
 * through a private temporary folder because the library loads and saves them as files.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TorchEditError } from '../../errors.js';
import type { StableDiffusionModel } from '../../model/model.js';
import { loadImagic } from '../../pipelines/imagic/result.js';
import { loadInversion } from '../../pipelines/ledits/inversion.js';
import { HttpError } from '../errors.js';
import type { JobEnv } from '../jobSpec.js';
import type { StoredKind } from '../storage.js';
import { type ArtifactMeta, type ArtifactStore, packFolder, unpackFolder } from './artifactStore.js';

export interface ArtifactEnvOptions {
  store: ArtifactStore;
  model: StableDiffusionModel;
  modelName: string;
  fingerprint: string;
  prefix: string;
  /** A folder of the worker's own for files in transit. */
  tmpDir: string;
}

export function artifactEnv(o: ArtifactEnvOptions): JobEnv {
  const temp = (ext: string) => join(o.tmpDir, `${randomBytes(8).toString('hex')}${ext}`);
  const fetch = async (kind: StoredKind, id: string, what: string): Promise<{ bytes: Buffer; meta: ArtifactMeta }> => {
    const found = await o.store.get(kind, id);
    if (!found) throw new HttpError(404, 'ERR_NOT_FOUND', `The ${what} ${id} is not in the artifact store (expired or never stored)`);
    if ((kind === 'inversion' || kind === 'imagic') && found.meta.fingerprint !== o.fingerprint)
      throw new TorchEditError(
        'ERR_MODEL_MISMATCH',
        `The ${what} ${id} was made with model ${found.meta.model ?? '?'} (fingerprint ${String(found.meta.fingerprint).slice(0, 12)}); ` +
          `this worker runs ${o.modelName} (${o.fingerprint.slice(0, 12)})`,
      );
    return found;
  };
  return {
    model: o.model,
    modelName: o.modelName,
    prefix: o.prefix,
    imageBytes: async (id) => (await fetch('image', id, 'image')).bytes,
    acquireInversion: async (id) => {
      const { bytes } = await fetch('inversion', id, 'inversion');
      const path = temp('.safetensors');
      await writeFile(path, bytes);
      try {
        const value = await loadInversion(path, o.model);
        return { value, release: () => value.dispose() };
      } finally {
        await rm(path, { force: true });
      }
    },
    acquireImagic: async (id) => {
      const { bytes } = await fetch('imagic', id, 'Imagic result');
      const dir = temp('');
      try {
        await unpackFolder(bytes, dir);
        const value = await loadImagic(dir, o.model);
        return { value, release: () => value.dispose() };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    putInversion: async (inversion, info) => {
      const path = temp('.safetensors');
      try {
        await inversion.save(path);
        const bytes = await readFile(path);
        const { width, height } = inversion.settings;
        return await o.store.put('inversion', bytes, { model: o.modelName, fingerprint: o.fingerprint, width, height, info });
      } finally {
        inversion.dispose();
        await rm(path, { force: true });
      }
    },
    putImagic: async (result, info) => {
      const dir = temp('');
      try {
        await result.save(dir);
        const bytes = await packFolder(dir);
        const { width, height } = result.settings;
        return await o.store.put('imagic', bytes, { model: o.modelName, fingerprint: o.fingerprint, width, height, info });
      } finally {
        result.dispose();
        await rm(dir, { recursive: true, force: true });
      }
    },
    putResult: (png, meta) => o.store.put('result', png, { format: 'png', ...meta }),
  };
}
