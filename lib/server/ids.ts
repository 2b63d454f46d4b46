/** Ids of everything the service stores: 128 random bits as 32 lowercase hex digits. */
import { randomBytes } from 'node:crypto';

export function newId(): string {
  return randomBytes(16).toString('hex');
}

/** True for a well-formed id; anything else (a path, `..`, a long string) never reaches the file system. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{32}$/.test(value);
}
