// The registry of lint rules: one rule a file.

import type { LintRule } from '../rule.js';
import { requireConcurrentIndex } from './require-concurrent-index.js';
import { constraintNotValid } from './constraint-not-valid.js';
import { setNotNull } from './set-not-null.js';
import { rewritingTypeChange } from './rewriting-type-change.js';
import { volatileDefault } from './volatile-default.js';
import { renameColumnOrTable } from './rename-column-or-table.js';
import { dropInExpand } from './drop-in-expand.js';
import { uniqueConstraintDirect } from './unique-constraint-direct.js';
import { missingLockTimeout } from './missing-lock-timeout.js';
import { backfillInExpand } from './backfill-in-expand.js';
import { preferJsonb } from './prefer-jsonb.js';
import { mysqlNonInstantAlter } from './mysql-non-instant-alter.js';

export const RULES: LintRule[] = [
  requireConcurrentIndex,
  constraintNotValid,
  setNotNull,
  rewritingTypeChange,
  volatileDefault,
  renameColumnOrTable,
  dropInExpand,
  uniqueConstraintDirect,
  missingLockTimeout,
  backfillInExpand,
  preferJsonb,
  mysqlNonInstantAlter,
];
