// sha256 over the sources an addon binary is compiled from (native/, cmake/, CMakeLists.txt):
// scripts/prebuild.mjs records it next to each prebuild, and scripts/install.mjs in a git
// checkout uses a prebuild only when it still matches (else the tests would run an old addon).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export function sourceHash(root) {
  const files = [];
  const walk = (path) => {
    if (statSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
    else files.push(path);
  };
  for (const entry of ['native', 'cmake', 'CMakeLists.txt']) walk(join(root, entry));
  const hash = createHash('sha256');
  for (const file of files.map((f) => relative(root, f).split(sep).join('/')).sort()) {
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(root, file)))
      .update('\0');
  }
  return hash.digest('hex');
}
