// customers.name becomes customers.full_name without breaking the running
// application: expand adds full_name and triggers that keep both columns in
// sync; the new application version reads and writes full_name; contract
// drops the triggers and name.
import { defineMigration, renameColumn } from '../../src/migrations/define-migration.js';

export default defineMigration({
  operations: [renameColumn({ table: 'customers', from: 'name', to: 'full_name' })],
});
