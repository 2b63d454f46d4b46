/** A job's environment in the server's own queue: inputs and outputs in its Storage, live objects pinned there. */
import type { JobEnv } from './jobSpec.js';
import type { ServedModel } from './models.js';
import type { Storage } from './storage.js';
import { HttpError } from './errors.js';

export function storageEnv(storage: Storage, served: ServedModel, prefix: string): JobEnv {
  return {
    model: served.model,
    modelName: served.name,
    prefix,
    imageBytes: async (id) => {
      const found = await storage.getBytes('image', id);
      if (!found) throw new HttpError(404, 'ERR_NOT_FOUND', `The image ${id} was deleted before the job ran`);
      return found.bytes;
    },
    acquireInversion: (id) => storage.acquireInversion(id, served.model),
    acquireImagic: (id) => storage.acquireImagic(id, served.model),
    putInversion: async (inversion, info) => {
      try {
        return await storage.putInversion(inversion, served.name, info);
      } catch (error) {
        inversion.dispose();
        throw error;
      }
    },
    putImagic: async (result, info) => {
      try {
        return await storage.putImagic(result, served.name, info);
      } catch (error) {
        result.dispose();
        throw error;
      }
    },
    putResult: (png, meta) => storage.putBytes('result', png, { format: 'png', ...meta }),
  };
}
