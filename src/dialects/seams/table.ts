// What the engine knows of a table, its server, the ALTER, and the job's artefact names.
// Part of the seam between the engine and a database: see ../dialect.ts.

export type DialectName = 'mysql' | 'postgres';

/** A column value as the database sent it. `undefined` = unchanged (PostgreSQL unchanged TOAST). */
export type Value = string | Buffer | bigint | number | boolean | null | undefined;
export type Row = Record<string, Value>;

export interface TableRef {
  /** Database (MySQL) or schema (PostgreSQL). */
  schema: string;
  name: string;
}

export interface ColumnInfo {
  name: string;
  /** Full type as the server spells it, e.g. `varchar(255)`, `bigint unsigned`, `numeric(12,2)`. */
  type: string;
  nullable: boolean;
  /** Generated (virtual or stored) columns are never copied: the shadow recomputes them. */
  generated: boolean;
  /** When two of its values are equal; without it the engine takes any change of `type` for a new rule. */
  comparison?: ColumnComparison;
  /** Character set of a text column (MySQL), for converting values to it; absent otherwise. */
  charset?: string;
  /**
   * Collation of a text column (MySQL), or (PostgreSQL) one that equality depends on (a
   * nondeterministic one, citext's): a key compared across a collation change needs the original's.
   */
  collation?: string;
}

/**
 * What a unique index over a column enforces. Two values are equal exactly when
 * they are equal under `rule` (e.g. `collation utf8mb4_bin`, `integer`, `decimal`):
 * the same rule on both sides of an ALTER means the same equality. Within one
 * rule a higher `precision` (DECIMAL scale, fractional seconds) never merges
 * values a lower one keeps apart; absent means the finest the rule has.
 */
export interface ColumnComparison {
  rule: string;
  precision?: number;
  /** The group of rules this one belongs to, for `finestIn` (MySQL: a character set and its pad attribute). */
  family?: string;
  /**
   * Families in which this rule tells apart every two values any rule of the family does
   * (MySQL: a binary collation among its character set's collations), so changing a
   * column from such a rule to this one keeps every unique key unique.
   */
  finestIn?: string[];
}

export interface IndexInfo {
  name: string;
  columns: string[];
  unique: boolean;
  primary: boolean;
  /** Per column, how many leading characters (bytes for binary strings) the index compares; null = the whole value. */
  prefixLengths?: Array<number | null>;
}

export interface TableInfo {
  ref: TableRef;
  columns: ColumnInfo[];
  indexes: IndexInfo[];
  estimatedRows: number;
  estimatedBytes: number;
  /** Foreign keys this table declares (child side), by constraint name. */
  foreignKeys: string[];
  /** Foreign keys of other tables that point at this one (parent side), as `table.constraint`. */
  referencedBy: string[];
  triggers: string[];
  /**
   * PostgreSQL previews: the table's constraints and indexes as name-free definitions.
   * The cut-over refuses a shadow that does not enforce exactly these.
   */
  definitions?: string[];
}

export interface ServerInfo {
  dialect: DialectName;
  /** e.g. `10.11.19-MariaDB`, `8.0.36`, `15.19`. */
  version: string;
  flavor: 'mariadb' | 'mysql' | 'postgres';
}

/** What the ALTER text says about columns, so the engine can map data across. */
export interface AlterAnalysis {
  /** old name -> new name (CHANGE/RENAME COLUMN). */
  renamedColumns: Map<string, string>;
  droppedColumns: Set<string>;
  addedColumns: Set<string>;
  /** The ALTER renames the table itself: refused. */
  renamesTable: boolean;
  /** The --alter text goes on after a top-level `;` with another statement (this is its text): refused before anything runs it. */
  secondStatement?: string;
  /**
   * MySQL: a partition-maintenance clause (ADD/DROP/TRUNCATE/EXCHANGE ... PARTITION), its
   * text: refused, and never previewed (EXCHANGE or CONVERT would move rows of another table).
   */
  partitionMaintenance?: string;
  /** MySQL: a clause that adds or drops a foreign key (its text): refused, since the shadow's keys are the original's, moved at the cut-over. */
  foreignKeyClause?: string;
  /** MySQL: the ALTER sets the table option AUTO_INCREMENT (`AUTO_INCREMENT = 7`). */
  setsAutoIncrement?: boolean;
  /** Where index names are per schema (PostgreSQL): the names of the indexes the ALTER creates under a name of its own. */
  namedIndexes?: string[];
}

/** Names of every artefact one job may create; derived once from the table and job id. */
export interface ArtefactNames {
  shadow: string;
  /** Where the original ends up after cut-over (kept unless --drop-old-table). */
  backup: string;
  /** Marker/heartbeat table (MySQL) or publication (PostgreSQL) etc. */
  changelog: string;
  /** Replication slot (PostgreSQL), sentry table (MySQL). */
  extra: Record<string, string>;
}
