// Runs in every test file (vitest setupFiles): after the file, drop the databases
// it created on the shared servers (databases.ts).

import { afterAll } from 'vitest';
import { dropCreatedDatabases } from './databases.js';

afterAll(async () => {
  await dropCreatedDatabases();
});
