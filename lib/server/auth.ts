/**
 * Optional bearer tokens. Tokens are compared as SHA-256 digests with `timingSafeEqual`, so the
 * comparison takes the same time whatever the guess; a client is known by a hash of its token
 * (for the per-client job cap and the job records), never by the token itself.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpError } from './errors.js';

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class Auth {
  private readonly digests: Buffer[];

  constructor(tokens: string[]) {
    this.digests = tokens.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /**
   * The client of a request's `Authorization` header (a short hash of its token), undefined when
   * authentication is off; throws 401 when it is on and the header is missing or wrong.
   */
  check(header: string | undefined): string | undefined {
    if (!this.enabled) return undefined;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    const unauthorized = new HttpError(
      401,
      'ERR_UNAUTHORIZED',
      match ? 'The token is not valid' : 'Expected an Authorization: Bearer <token> header',
      {
        'www-authenticate': 'Bearer realm="torchedit"',
      },
    );
    if (!match) throw unauthorized;
    const given = digest(match[1]);
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(given, known) || ok; // no early exit
    if (!ok) throw unauthorized;
    return given.subarray(0, 8).toString('hex');
  }
}
