import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { leftoversCheck } from '../../leftovers-check.js';
import { listLeftovers } from '../mysql-leftovers.js';

export function noLeftoversCheck(ctx: MyContext): PreflightCheck {
  // The table's own database, which may not be the URL's (`--table db.t`).
  return leftoversCheck((table) => listLeftovers(ctx, table.schema));
}
