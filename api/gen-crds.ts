// Writes deploy/crds/ from the schemas: `npm run gen:crds`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCRDs } from './crd.js';

const dir = join(import.meta.dirname, '..', 'deploy', 'crds');
mkdirSync(dir, { recursive: true });
for (const [name, text] of renderCRDs()) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote deploy/crds/${name}`);
}
