// Turns the Sessions view's quick facets into filter-language text and builds the sync command.
// The filter language itself is parsed and evaluated in Rust (labpipe-core); this only writes it.

export interface Facets {
  /** `YYYY-MM-DD`, inclusive. */
  from: string;
  /** `YYYY-MM-DD`, inclusive. */
  to: string;
  /** Upper-case statuses (`PROCESSED`), empty = any. */
  statuses: string[];
  /** Hardware models, empty = any. */
  models: string[];
}

export const emptyFacets = (): Facets => ({ from: "", to: "", statuses: [], models: [] });

/** A filter-language string literal. */
export function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The facets as filter-language conditions, joined with `and`. */
export function facetFilter(f: Facets): string {
  const parts: string[] = [];
  if (DAY.test(f.from)) parts.push(`date >= ${f.from}`);
  if (DAY.test(f.to)) parts.push(`date <= ${f.to}`);
  if (f.statuses.length === 1) parts.push(`status = ${f.statuses[0].toLowerCase()}`);
  else if (f.statuses.length > 1) parts.push(`status in (${f.statuses.map((s) => s.toLowerCase()).join(", ")})`);
  if (f.models.length === 1) parts.push(`hardware_model = ${quote(f.models[0])}`);
  else if (f.models.length > 1) parts.push(`hardware_model in (${f.models.map(quote).join(", ")})`);
  return parts.join(" and ");
}

/**
 * The typed filter and the facets as one filter. The typed text stays first and unchanged when
 * there are no facets, so error columns from the parser point into what the user typed.
 */
export function combine(typed: string, f: Facets): string {
  const t = typed.trim();
  const facets = facetFilter(f);
  if (!facets) return t;
  if (!t) return facets;
  return `(${t}) and ${facets}`;
}

/** Where in the typed text a column of the combined filter falls (or null when in the facets). */
export function typedColumn(typed: string, f: Facets, column: number): number | null {
  const t = typed.trim();
  const lead = typed.length - typed.trimStart().length;
  if (!facetFilter(f)) return column + lead;
  if (!t) return null;
  const inner = column - 1;
  return inner >= 0 && inner < t.length ? inner + lead : null;
}

/** Single-quotes for a POSIX shell. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function syncCommand(filter: string, dest = "./labpipe-data"): string {
  const where = filter.trim();
  return where
    ? `labpipe sync --where ${shellQuote(where)} --dest ${shellQuote(dest)}`
    : `labpipe sync --dest ${shellQuote(dest)}`;
}
