import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSandboxSummary, OdooEmulator, sandboxSummary } from '../odoo-emulator/index.ts';
import { executeKw } from '../odoo-emulator/http-client.ts';

type Envelope = { result?: unknown; error?: { data: { name: string; message: string } } };

const dir = mkdtempSync(join(tmpdir(), 'odoo-sandbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sandbox persistence', () => {
  it('records, sequences and external ids survive a restart', async () => {
    const file = join(dir, 'round-trip', 'odoo.json');
    const first = new OdooEmulator({ version: 17, persistFile: file });
    const { url } = await first.listen();
    const auth = { db: 'lab', uid: 2, secret: 'admin' };
    const clinic = first.records('res.partner', [['ref', '=', 'CLINIC-A']])[0]!.id;
    const glu = first.records('product.product', [['default_code', '=', 'GLU']])[0]!.id;
    const loaded = ((await executeKw(url, auth, 'sale.order', 'load', [['id', 'partner_id/.id', 'client_order_ref', 'order_line/product_id/.id'], [['lab_gw.acc_1', String(clinic), 'ACC-1', String(glu)]]])).body as Envelope).result as { ids: number[] };
    expect(loaded.ids).toHaveLength(1);
    const lot = ((await executeKw(url, auth, 'stock.lot', 'create', [{ name: 'NEW-LOT', product_id: first.records('product.product', [['default_code', '=', 'RGT-GLU']])[0]!.id, company_id: 1 }])).body as Envelope).result as number;
    await first.close();
    expect(existsSync(file)).toBe(true);
    expect(readdirSync(join(dir, 'round-trip'))).toEqual(['odoo.json']); // the temp file was renamed away

    const second = new OdooEmulator({ version: 17, persistFile: file });
    try {
      expect(second.records('sale.order', [['client_order_ref', '=', 'ACC-1']])).toEqual([expect.objectContaining({ id: loaded.ids[0], name: 'S00001', partner_id: clinic })]);
      expect(second.count('sale.order.line', [['order_id', '=', loaded.ids[0]!]])).toBe(1);
      expect(second.externalIds()).toContainEqual({ xmlid: 'lab_gw.acc_1', model: 'sale.order', resId: loaded.ids[0] });
      expect(second.records('stock.lot', [['id', '=', lot]])[0]?.name).toBe('NEW-LOT');
      expect(second.records('stock.lot', [['id', '=', lot]], { fields: ['product_id'], load: '_classic_read' })).toEqual([{ id: lot, product_id: [expect.any(Number), '[RGT-GLU] Glucose reagent cartridge (500 tests)'] }]);
      const next = second.call('sale.order', 'create', [{ partner_id: clinic }]) as number;
      expect(next).toBe(loaded.ids[0]! + 1);
      expect(second.records('sale.order', [['id', '=', next]])[0]?.name).toBe('S00002');
      expect(second.call('ir.model.data', 'check_object_reference', ['lab_gw', 'acc_1'])).toEqual(['sale.order', loaded.ids[0]]);
    } finally {
      await second.close();
    }
  });

  it('flush() writes pending changes without closing; reset() goes back to the seed', async () => {
    const file = join(dir, 'flush.json');
    const odoo = new OdooEmulator({ version: 18, persistFile: file, persistDebounceMs: 60_000 });
    try {
      odoo.call('res.partner', 'create', [{ name: 'Flushed Clinic', ref: 'CLINIC-F' }]);
      odoo.flush();
      expect(readFileSync(file, 'utf8')).toContain('CLINIC-F');
      odoo.reset();
      expect(odoo.count('res.partner', [['ref', '=', 'CLINIC-F']])).toBe(0);
      expect(readFileSync(file, 'utf8')).not.toContain('CLINIC-F');
    } finally {
      await odoo.close();
    }
  });

  it('sandboxSummary lists records per model from the file alone', async () => {
    const file = join(dir, 'summary.json');
    const odoo = new OdooEmulator({ version: 17, persistFile: file });
    const clinic = odoo.records('res.partner', [['ref', '=', 'CLINIC-B']])[0]!.id;
    odoo.call('sale.order', 'create', [{ partner_id: clinic, client_order_ref: 'ACC-9' }]);
    await odoo.close();
    const s = sandboxSummary(file);
    expect(s).toMatchObject({ exists: true, version: 17, database: 'lab' });
    expect(s.models.find((m) => m.model === 'sale.order')).toEqual({ model: 'sale.order', count: 1, records: [{ id: expect.any(Number), name: 'S00001', state: 'draft' }] });
    expect(s.models.find((m) => m.model === 'stock.lot')?.count).toBe(9);
    expect(s.externalIds).toBeGreaterThan(20);
    const text = formatSandboxSummary(s);
    expect(text).toContain('sale.order (1)');
    expect(text).toContain('S00001  [draft]');
    expect(sandboxSummary(join(dir, 'absent.json'))).toMatchObject({ exists: false, models: [] });
    expect(formatSandboxSummary(sandboxSummary(join(dir, 'absent.json')))).toContain('No sandbox at');
  });

  it('a file that is not a sandbox is refused rather than overwritten', () => {
    const file = join(dir, 'foreign.json');
    writeFileSync(file, '{"hello": "world"}');
    expect(() => new OdooEmulator({ version: 17, persistFile: file })).toThrow(/not an Odoo sandbox file/);
    expect(readFileSync(file, 'utf8')).toBe('{"hello": "world"}');
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"kind": "lab-gateway-odoo-sandb');
    expect(() => new OdooEmulator({ version: 17, persistFile: broken })).toThrow(/not an Odoo sandbox file \(unreadable JSON/);
  });

  it('an empty seed has master data but no lab records', () => {
    const odoo = new OdooEmulator({ version: 16, seed: 'empty' });
    expect(odoo.count('product.product')).toBe(0);
    expect(odoo.count('stock.location', [['usage', '=', 'internal']])).toBe(1);
    expect(odoo.externalIds().map((x) => x.xmlid)).toContain('stock.picking_type_internal');
  });
});
