/** Python `repr()` of JSON values, for error messages that Odoo builds with `%r`. */
export function pyRepr(v: unknown, tuple = false): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'string') {
    if (v.includes("'") && !v.includes('"')) return `"${v.replace(/\\/g, '\\\\')}"`;
    return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  }
  if (Array.isArray(v)) {
    const inner = v.map((x) => pyRepr(x)).join(', ');
    return tuple ? `(${inner}${v.length === 1 ? ',' : ''})` : `[${inner}]`;
  }
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  }
  return String(v);
}
