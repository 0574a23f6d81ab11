import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';
import { leftoversCheck } from '../../leftovers-check.js';
import { listLeftovers } from '../postgres-leftovers.js';

export function noLeftoversCheck(pg: PgContext): PreflightCheck {
  return leftoversCheck(() => listLeftovers(pg));
}
