// Spatial values from the binlog, exactly. zongji decodes a GEOMETRY column into
// plain {x, y} objects: the SRID (the value's first four bytes) is dropped and a
// MULTIPOINT cannot be told from a LINESTRING, so no value the applier could write
// back would be the one the application wrote. The server stores every spatial type
// in one internal format (4-byte little-endian SRID, then WKB) and accepts exactly
// those bytes back in a spatial column. So, on each table map of the migrated table,
// its spatial columns are declared to zongji as BLOBs (same length-prefixed layout
// in the row image): their values then arrive as those bytes, in a Buffer.
//
// zongji keeps the table map it decodes row events with (`tableMap[tableId]`) and
// emits the table map event before it reads the rows that follow it, so the change
// made here is in place for every row event of the table.

const MYSQL_TYPE_BLOB = 252;
const MYSQL_TYPE_GEOMETRY = 255;

export interface TableMapColumn {
  name: string;
  type?: number;
  charset?: unknown;
}

/** Makes zongji hand over the spatial columns of this table map as their stored bytes. */
export function keepSpatialBytes(map: { columns?: TableMapColumn[] } | undefined): void {
  for (const column of map?.columns ?? []) {
    if (column.type !== MYSQL_TYPE_GEOMETRY) continue;
    column.type = MYSQL_TYPE_BLOB;
    column.charset = null; // bytes, never text
  }
}
