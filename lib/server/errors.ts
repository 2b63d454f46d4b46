/**
 * How failures become HTTP answers: `{ error: { code, message, option? } }` with a status. Library
 * errors keep their TorchEditError code and message; the service adds codes of its own for what
 * only HTTP knows (not found, too large, queue full, unauthorized…).
 */
import { TorchEditError } from '../errors.js';

/** Codes only the service uses, beside the library's `ErrorCode`s. */
export type ServiceErrorCode =
  | 'ERR_NOT_FOUND'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_TOO_LARGE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'ERR_QUEUE_FULL'
  | 'ERR_TOO_MANY_JOBS'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_SHUTTING_DOWN'
  | 'ERR_TIMEOUT'
  | 'ERR_SERVER_RESTARTED'
  | 'ERR_BAD_REQUEST';

/** An error with the HTTP status it is answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ServiceErrorCode | string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what: string, id: string): HttpError =>
  new HttpError(404, 'ERR_NOT_FOUND', `No ${what} ${JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id)}`);

/** The status of a library error: bad input is the client's (400), the rest the server's. */
export function statusOfCode(code: string): number {
  switch (code) {
    case 'ERR_INVALID_OPTION':
    case 'ERR_INVALID_ARGUMENT':
    case 'ERR_IMAGE_READ':
    case 'ERR_FILE_FORMAT':
    case 'ERR_MODEL_MISMATCH':
    case 'ERR_NO_ATTENTION_MAPS':
    case 'ERR_SHAPE':
    case 'ERR_BAD_REQUEST':
      return 400;
    case 'ERR_UNSUPPORTED':
      return 422;
    case 'ERR_OUT_OF_MEMORY':
      return 503;
    default:
      return 500;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; option?: string };
}

/** The answer to any thrown value: status, headers and body. */
export function toHttp(error: unknown): { status: number; headers: Record<string, string>; body: ErrorBody } {
  if (error instanceof HttpError) {
    return { status: error.status, headers: error.headers, body: { error: { code: error.code, message: error.message } } };
  }
  if (error instanceof TorchEditError) {
    const body: ErrorBody = { error: { code: error.code, message: error.message } };
    if (error.option !== undefined) body.error.option = error.option;
    return { status: statusOfCode(error.code), headers: {}, body };
  }
  const e = error as { statusCode?: number; code?: string; message?: string };
  // fastify's own errors (body too large, bad JSON, unsupported media type…)
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code =
      e.statusCode === 413
        ? 'ERR_TOO_LARGE'
        : e.statusCode === 415
          ? 'ERR_UNSUPPORTED_MEDIA_TYPE'
          : e.statusCode === 404
            ? 'ERR_NOT_FOUND'
            : 'ERR_BAD_REQUEST';
    return { status: e.statusCode, headers: {}, body: { error: { code, message: e.message ?? 'Bad request' } } };
  }
  return { status: 500, headers: {}, body: { error: { code: 'ERR_INTERNAL', message: 'Internal server error' } } };
}
