/**
 * `lab-gateway check --config` says up front what `start` would refuse: gateway.dataDir is the
 * demo's store and odoo.url is set (relay/odoo-target.ts checkStoreUse, the same words, exit 1).
 * The store is read without being written; one a running gateway holds is left to start's check.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { adoptOdooTarget, checkStoreUse, DEMO_ANALYZER_ID, DEMO_GATEWAY_ID, ODOO_TARGET_NAMESPACE, odooTargetOf, type StoreUse } from '../../gateway/src/relay/odoo-target.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { startGatewayProcess, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { inboundMessage, specimenReceived } from '../fixtures/store/inbound.ts';

const { dir, configFile } = useConfigDir('lgw-demo-store-check-');
const check = (file: string) => runCli(cliSource, ['check', '--config', file]);
const odoo = { url: 'https://odoo.lab.example', database: 'lab' };

beforeAll(async () => {
  await writeFile(path.join(dir, 'odoo.key'), 'k'.repeat(40) + '\n');
});

function config(dataDir: string, withOdoo = true): Promise<string> {
  return configFile(
    [
      `gateway: { id: lab-1, dataDir: ${JSON.stringify(dataDir)} }`,
      withOdoo ? `odoo: { url: ${odoo.url}, database: ${odoo.database}, login: gateway, apiKeyFile: ${JSON.stringify(path.join(dir, 'odoo.key'))} }` : '',
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
    ].join('\n'),
  );
}

async function openStore(dataDir: string): Promise<EventStore> {
  return EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
}

/** A store as `lab-gateway demo` leaves it: marked, one message and its event waiting. */
async function demoStore(dataDir: string): Promise<void> {
  const store = await openStore(dataDir);
  const use: StoreUse = { gatewayId: DEMO_GATEWAY_ID, demo: true, dataDir };
  const { demoStore: mark } = await checkStoreUse(store, odooTargetOf({}), use);
  await adoptOdooTarget(store, odooTargetOf({}), undefined, { ...use, demoStore: mark });
  await store.commit(inboundMessage('DEMO-1'), [specimenReceived('DEMO-ACC-1', 'k1')]);
  await store.close();
}

/** The words start refuses the store with. */
async function startRefusal(dataDir: string): Promise<string> {
  const store = await openStore(dataDir);
  try {
    const err = await checkStoreUse(store, odooTargetOf(odoo), { gatewayId: 'lab-1', demo: false, dataDir, endpoints: [] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isGatewayError(err) && err.code).toBe('GW_CONFIG_INVALID');
    return (err as Error).message;
  } finally {
    await store.close();
  }
}

describe('check --config and the demo\'s data dir', () => {
  it('with odoo.url on the demo\'s store: an error at gateway.dataDir in start\'s words, exit 1, the store unchanged', async () => {
    const dataDir = path.join(dir, 'demo-var');
    await demoStore(dataDir);
    const res = await check(await config(dataDir));
    expect(res.code, res.out + res.err).toBe(1);
    const words = await startRefusal(dataDir);
    expect(words).toContain('(1 events not delivered)');
    expect(res.out).toMatch(/error +gateway\.dataDir: /);
    expect(res.out).toContain(`gateway.dataDir: ${words}`);
    const store = await openStore(dataDir);
    expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toEqual({ target: { sandbox: true }, since: expect.any(String), demo: true });
    await store.close();
  }, 60_000);

  it('an earlier release\'s demo store (only its links spoke there) is reported too; a site\'s store where the demo once ran is not', async () => {
    const earlier = path.join(dir, 'earlier-demo');
    let store = await openStore(earlier);
    await store.commit(inboundMessage('ORM1'), [specimenReceived('DEMO1', 'k1')]);
    await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
    await store.close();
    const res = await check(await config(earlier));
    expect(res.code, res.out + res.err).toBe(1);
    expect(res.out).toMatch(/error +gateway\.dataDir: .*an earlier release's demo ran on it/);

    const site = path.join(dir, 'site-var');
    store = await openStore(site);
    await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
    await store.commit(inboundMessage('RUN2', { endpoint: 'cobas-pure-1', dedupKey: 'pure|RUN2' }), []);
    await store.close();
    const ok = await check(await config(site));
    expect(ok.out).not.toContain('gateway.dataDir');
    expect(ok.code, ok.out + ok.err).toBe(0);
  }, 60_000);

  it('on the sandbox, on a store a running gateway holds, or on a data dir not made yet: nothing said, nothing created', async () => {
    const dataDir = path.join(dir, 'held-var');
    await demoStore(dataDir);
    const sandbox = await check(await config(dataDir, false));
    expect(sandbox.out).not.toMatch(/error +gateway\.dataDir/);

    const held = await openStore(dataDir);
    try {
      const res = await check(await config(dataDir));
      expect(res.out).not.toContain('gateway.dataDir');
      expect(res.code, res.out + res.err).toBe(0);
    } finally {
      await held.close();
    }

    const fresh = path.join(dir, 'not-yet');
    const res = await check(await config(fresh));
    expect(res.code, res.out + res.err).toBe(0);
    expect(existsSync(fresh)).toBe(false);
  }, 60_000);

  it('start on a site\'s store where an earlier demo ran: not refused, and the tray and MQTT get a warning alert, once', async () => {
    const dataDir = path.join(dir, 'site-mixed');
    const store = await openStore(dataDir);
    await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
    await store.commit(inboundMessage('RUN2', { endpoint: 'cobas-pure-1', dedupKey: 'pure|RUN2' }), []);
    await store.close();
    const file = await configFile([`gateway: { id: lab-1, dataDir: ${JSON.stringify(dataDir)} }`, TEST_LISTENERS, ''].join('\n'));
    for (const expected of [1, 0]) {
      const gw = startGatewayProcess(file);
      try {
        expect(await gw.ready, gw.err()).toBeDefined();
        const alerts = gw.err().split('\n').filter((l) => l.includes('"code":"DEMO_DATA_IN_STORE"'));
        expect(alerts.length, gw.err()).toBe(expected);
        if (expected) expect(alerts[0]).toMatch(/"severity":"warning".*an earlier release's demo ran on gateway\.dataDir/);
      } finally {
        await gw.stop();
      }
    }
  }, 60_000);
});
