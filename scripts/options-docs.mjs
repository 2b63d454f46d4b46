#!/usr/bin/env node
// Writes the option tables generated from lib/options/schema.ts: docs/options.md, and the README's
// sections between <!-- options:NAME --> and <!-- /options:NAME -->. Run after `npm run build:ts`
// (`npm run docs:options` does both); test/unit/optionsDocs.test.ts fails when they are stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { optionsMarkdown, readmeSections, updateReadme } from '../dist/lib/options/docs.js';

const root = fileURLToPath(new URL('../', import.meta.url));
writeFileSync(`${root}docs/options.md`, optionsMarkdown());
const readme = readFileSync(`${root}README.md`, 'utf8');
writeFileSync(`${root}README.md`, updateReadme(readme));
console.log(`wrote docs/options.md and README.md sections: ${readmeSections(readme).join(', ') || '(none)'}`);
