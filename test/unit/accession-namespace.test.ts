/**
 * Two LIS systems on one gateway (README.md "Two LIS systems"): `hl7[].accessionPrefix` and the
 * `check` warning about LIS links without one. Before, nothing told a site with a hospital LIS
 * and an outreach LIS that their accessions collide, and there was no way to keep them apart.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../gateway/src/config/validate.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { applyAccessionPrefix } from '../../gateway/src/hl7/accession-namespace.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-accession-ns-'));
  await writeFile(path.join(dir, 'odoo.key'), 'secret-key\n');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const link = (id: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, listen: { host: '127.0.0.1', port }, ...extra });
const issuesOf = (hl7: unknown[]) => validateConfig({ hl7, odoo: { url: 'https://lab.example.com', database: 'lab', login: 'gw', apiKeyFile: 'odoo.key' } }, dir).issues.filter((i) => i.path.startsWith('hl7'));

describe('check: two LIS links', () => {
  it('warns when two LIS links have no accessionPrefix, naming both and the fix', () => {
    const issues = issuesOf([link('lis', 2575), link('outreach', 2576)]);
    expect(issues.map((i) => [i.severity, i.path])).toEqual([['warning', 'hl7[1].accessionPrefix']]);
    expect(issues[0]!.message).toContain('lis, outreach');
    expect(issues[0]!.message).toContain('accessionPrefix');
  });

  it('is quiet with one LIS link, with a prefix on all but one, and for an analyzer endpoint', () => {
    expect(issuesOf([link('lis', 2575)])).toEqual([]);
    expect(issuesOf([link('lis', 2575), link('outreach', 2576, { accessionPrefix: 'OUT' })])).toEqual([]);
    expect(issuesOf([link('lis', 2575), link('bc', 2577, { analyzer: 'bc-1' })]).filter((i) => i.path.endsWith('accessionPrefix'))).toEqual([]);
  });

  it('refuses a prefix that is not letters and digits, and one on an analyzer endpoint', () => {
    const errors = issuesOf([link('lis', 2575), link('outreach', 2576, { accessionPrefix: 'OUT-' }), link('bc', 2577, { analyzer: 'bc-1', accessionPrefix: 'BC' })]).filter((i) => i.severity === 'error');
    expect(errors.map((i) => i.path)).toEqual(['hl7[1].accessionPrefix', 'hl7[2].accessionPrefix']);
  });

  it('keeps a valid prefix in the configuration', () => {
    const { config } = validateConfig({ hl7: [link('lis', 2575), link('outreach', 2576, { accessionPrefix: 'OUT' })] }, dir);
    expect(config?.hl7.map((h) => h.accessionPrefix)).toEqual([undefined, 'OUT']);
  });
});

describe('accession prefix of a LIS link', () => {
  const normalized = (text: string): { events: DraftEvent[]; searchTerms: string[]; warnings: string[] } => {
    const raw = Buffer.from(text.replace(/\n/g, '\r'), 'latin1');
    const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
    if (!r.message) throw new Error(r.problem?.text);
    const events = normalizeLis({ message: r.message, endpoint: 'outreach', receivedAt: '2026-03-02T09:30:00.000Z', notes: [] });
    return { events, searchTerms: ['12345'], warnings: [] };
  };

  it('keys orders and results OUT-<accession> (correlation, partition, data) and keeps the tube barcode as printed', () => {
    const order = normalized(['MSH|^~\\&|OUT|F|GW|LAB|20260302093000||ORM^O01|M1|P|2.5.1', 'PID|1||O-9', 'ORC|NW|12345||||||||||||||||||||CLINIC-B', 'OBR|1|12345||TSH^TSH'].join('\n'));
    const [created] = applyAccessionPrefix(order, 'OUT').events;
    expect(created).toMatchObject({ type: 'order.created', correlationId: 'OUT-12345', partitionKey: 'order:OUT-12345', data: { accession: 'OUT-12345', specimenId: '12345' } });
    expect(created!.idempotencyKey).toBe(order.events[0]!.idempotencyKey);
    expect(applyAccessionPrefix(order, 'OUT').searchTerms).toEqual(['12345', 'OUT-12345']);

    const result = normalized(['MSH|^~\\&|OUT|F|GW|LAB|20260302100000||ORU^R01|R1|P|2.5.1', 'PID|1||O-9', 'ORC|RE|12345', 'OBR|1|12345||TSH^TSH|||||||||||||||||||||F', 'OBX|1|NM|TSH^TSH||1.2|mU/L|||||F'].join('\n'));
    const validated = applyAccessionPrefix(result, 'OUT').events.find((e) => e.type === 'result.validated');
    expect(validated).toMatchObject({ correlationId: 'OUT-12345', partitionKey: 'order:OUT-12345', data: { accession: 'OUT-12345', specimenId: '12345' } });
  });
});
