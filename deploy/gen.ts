// Writes deploy/base/ (the kustomize base) from agent/manifests.ts: `npm run gen:deploy`.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKustomizeBase } from '../agent/manifests.js';

const dir = join(import.meta.dirname, 'base');
mkdirSync(dir, { recursive: true });
const files = renderKustomizeBase();
// Files of parts that no longer exist would linger unreferenced: remove them.
for (const name of readdirSync(dir)) if (!files.has(name)) rmSync(join(dir, name));
for (const [name, text] of files) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote deploy/base/${name}`);
}
