/**
 * The demo and a real gateway never share a store (relay/odoo-target.ts checkStoreUse, run by the
 * gateway at start-up before anything is written). Real LevelDB in a temp dir; the whole story
 * with real processes and the Odoo emulator is in test/e2e/demo-store-shared-audit.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { adoptOdooTarget, checkStoreUse, DEMO_ANALYZER_ID, DEMO_GATEWAY_ID, ODOO_TARGET_NAMESPACE, odooTargetOf, type StoreUse } from '../../gateway/src/relay/odoo-target.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, specimenReceived } from '../fixtures/store/inbound.ts';

const temp = useTempStore('lgw-demo-store-use-');

const sandbox = odooTargetOf({});
const real = odooTargetOf({ url: 'https://odoo.lab.example', database: 'lab' });
const demo: StoreUse = { gatewayId: DEMO_GATEWAY_ID, demo: true, dataDir: './var' };
const site: StoreUse = { gatewayId: 'lab-1', demo: false, dataDir: '/opt/lab-gateway/var' };

/** What the gateway does at start-up: check, then record. */
async function startOn(store: EventStore, target: typeof sandbox, use: StoreUse): Promise<string | undefined> {
  const { warning, demoStore } = await checkStoreUse(store, target, use);
  await adoptOdooTarget(store, target, undefined, { ...use, demoStore });
  return warning;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isGatewayError(err) && err.code, 'refused as a config error').toBe('GW_CONFIG_INVALID');
  return (err as Error).message;
}

describe('the demo\'s store and a real gateway\'s', () => {
  it('a gateway with a real Odoo refuses the demo\'s store, naming gateway.dataDir and the events that would go, and writes nothing', async () => {
    const store = await temp.open();
    await startOn(store, sandbox, demo);
    await store.commit(inboundMessage('DEMO-1'), [specimenReceived('DEMO-ACC-1', 'k1')]);
    const message = await refusal(startOn(store, real, site));
    expect(message).toContain('gateway.dataDir /opt/lab-gateway/var holds the demo\'s data');
    expect(message).toContain('(1 events not delivered)');
    expect(message).toContain('https://odoo.lab.example (database lab)');
    expect(message).toMatch(/Point gateway\.dataDir to another folder/);
    expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toEqual({ target: { sandbox: true }, since: expect.any(String), demo: true });
  });

  it('on the sandbox a gateway starts on the demo\'s store with a warning; the mark stays, so the switch to a real Odoo is still refused, and the demo no longer takes the store', async () => {
    const store = await temp.open();
    await startOn(store, sandbox, demo);
    expect(await startOn(store, sandbox, site)).toMatch(/before setting odoo\.url, point gateway\.dataDir to another folder/);
    await refusal(startOn(store, real, site));
    // Even under the demo's own id, a gateway that is not the demo gets no pass.
    await refusal(startOn(store, real, { ...site, gatewayId: DEMO_GATEWAY_ID }));
    expect(await refusal(startOn(store, sandbox, demo))).toMatch(/--data-dir \.\/var holds data of the demo and of a gateway started on it since \(gateway\.id lab-1/);
  });

  it('a gateway that is not the demo, under the demo\'s gateway.id on its store, still keeps the demo off it', async () => {
    const store = await temp.open();
    await startOn(store, sandbox, demo);
    expect(await startOn(store, sandbox, { ...site, gatewayId: DEMO_GATEWAY_ID })).toBeDefined();
    expect(await refusal(startOn(store, sandbox, demo))).toMatch(/gateway\.id lab-demo/);
  });

  it('the demo refuses a store a gateway used, on its Odoo or on the sandbox, naming --data-dir, and writes nothing', async () => {
    for (const target of [real, sandbox]) {
      const store = await temp.open();
      await startOn(store, target, site);
      const before = await store.getDoc(ODOO_TARGET_NAMESPACE, 'current');
      const message = await refusal(startOn(store, sandbox, demo));
      expect(message).toContain('--data-dir ./var holds a gateway\'s data (gateway.id lab-1');
      expect(message).toMatch(/Run the demo with --data-dir on another folder/);
      expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toEqual(before);
      await store.close();
    }
  });

  it('the demo refuses a store with messages and no record (an earlier release\'s gateway), and takes an empty one', async () => {
    const store = await temp.open();
    await store.commit(inboundMessage('SITE-1'), [specimenReceived('ACC-1', 'k1')]);
    await store.close();
    const reopened = await temp.open();
    expect(await refusal(startOn(reopened, sandbox, demo))).toMatch(/messages and events of a gateway of an earlier release/);
    expect(await reopened.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toBeUndefined();
    await reopened.close();
  });

  it('the demo starts again on its own store; a real gateway\'s sandbox → real Odoo switch is untouched', async () => {
    const store = await temp.open();
    expect(await startOn(store, sandbox, demo)).toBeUndefined();
    await store.commit(inboundMessage('DEMO-1'), [specimenReceived('DEMO-ACC-1', 'k1')]);
    expect(await startOn(store, sandbox, demo)).toBeUndefined();
    await store.close();

    const siteStore = await temp.open({ dataDir: `${temp.dir}/site` });
    expect(await startOn(siteStore, sandbox, site)).toBeUndefined();
    await siteStore.commit(inboundMessage('SITE-1'), [specimenReceived('ACC-1', 'k1')]);
    expect(await startOn(siteStore, real, site)).toBeUndefined();
    expect(await siteStore.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toMatchObject({ target: real, gatewayIds: ['lab-1'] });
  });

  describe('a store an earlier release\'s demo wrote (no mark then: its analyzer c111-demo spoke on it)', () => {
    /** The demo of a release that recorded the Odoo target but not the demo: its analyzer's run and the LIS's order in, the sandbox recorded. */
    async function earlierDemo(dataDir = temp.dir): Promise<EventStore> {
      const store = await temp.open({ dataDir });
      await store.commit(inboundMessage('ORMDEMO1', { controlId: 'ORMDEMO1' }), [specimenReceived('DEMO1', 'k1')]);
      await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
      await store.putDoc(ODOO_TARGET_NAMESPACE, 'current', { target: sandbox, since: '2026-11-01T08:00:00.000Z' });
      await store.close();
      return temp.open({ dataDir });
    }

    it('a gateway with a real Odoo refuses it; on the sandbox it warns and marks it, so the switch later is refused too', async () => {
      const store = await earlierDemo();
      expect(await refusal(startOn(store, real, site))).toMatch(/holds the demo's data \(`lab-gateway demo`, what `npm start` runs, an earlier release's demo ran on it: its analyzer c111-demo sent there\).*\(1 events not delivered\)/);
      expect(await startOn(store, sandbox, site)).toMatch(/an earlier release's demo ran on it/);
      expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toMatchObject({ demo: true, gatewayIds: ['lab-1'] });
      await refusal(startOn(store, real, site));
    });

    it('the demo takes it as its own and marks it', async () => {
      const store = await earlierDemo();
      expect(await startOn(store, sandbox, demo)).toBeUndefined();
      expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toEqual({ target: sandbox, since: '2026-11-01T08:00:00.000Z', demo: true });
      await refusal(startOn(store, real, site));
    });

    /** A site's own store an earlier release wrote, without the record: the demo ran in it once (c111-demo spoke), and so did the site's own links. */
    async function siteStoreWithEarlierDemo(dataDir: string): Promise<EventStore> {
      const store = await temp.open({ dataDir });
      await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1' }), []);
      await store.commit(inboundMessage('ORM1', { controlId: 'ORM1' }), [specimenReceived('ACC-1', 'k1')]);
      await store.commit(inboundMessage('RUN2', { endpoint: 'cobas-pure-1', dedupKey: 'pure|RUN2' }), []);
      await store.close();
      return temp.open({ dataDir });
    }

    it('a site whose own links spoke there too (the demo ran in its folder once, it went live since) is not stopped at the upgrade, nor marked on the sandbox', async () => {
      const live = await siteStoreWithEarlierDemo(`${temp.dir}/live`);
      // Said once, at this release's first start: not again.
      expect(await startOn(live, real, { ...site, endpoints: ['lis', 'cobas-pure-1'] })).toMatch(/an earlier release's demo ran on gateway\.dataDir \/opt\/lab-gateway\/var \(its analyzer c111-demo last sent there at .*\); the store is taken as this gateway's.*go to https:\/\/odoo\.lab\.example/);
      expect(await startOn(live, real, { ...site, endpoints: ['lis', 'cobas-pure-1'] })).toBeUndefined();
      expect(await live.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toMatchObject({ target: real, gatewayIds: ['lab-1'] });
      expect(await live.getDoc<{ demo?: true }>(ODOO_TARGET_NAMESPACE, 'current')).not.toHaveProperty('demo');
      await live.close();

      const commissioning = await siteStoreWithEarlierDemo(`${temp.dir}/commissioning`);
      expect(await startOn(commissioning, sandbox, { ...site, endpoints: ['lis', 'cobas-pure-1'] })).toMatch(/the store is taken as this gateway's/);
      expect(await commissioning.getDoc<{ demo?: true }>(ODOO_TARGET_NAMESPACE, 'current')).not.toHaveProperty('demo');
      expect(await startOn(commissioning, real, { ...site, endpoints: ['lis', 'cobas-pure-1'] })).toBeUndefined();
    });

    it('a site whose LIS link is named lis and alone spoke there since the demo ran (days later) is not stopped, and the demo keeps off it', async () => {
      const dataDir = `${temp.dir}/lis-only`;
      let store = await temp.open({ dataDir });
      await store.commit(inboundMessage('RUN1', { endpoint: DEMO_ANALYZER_ID, dedupKey: 'c111|RUN1', receivedAt: '2026-09-01T08:00:00.000Z' }), []);
      await store.commit(inboundMessage('ORM1', { controlId: 'ORM1', receivedAt: '2026-09-01T08:00:06.000Z' }), [specimenReceived('DEMO1', 'k1')]);
      await store.commit(inboundMessage('ORM2', { controlId: 'ORM2', receivedAt: '2026-11-20T08:00:00.000Z' }), [specimenReceived('ACC-2', 'k2')]);
      await store.close();
      store = await temp.open({ dataDir });
      expect(await refusal(startOn(store, sandbox, demo))).toMatch(/--data-dir \.\/var holds messages and events of a gateway of an earlier release/);
      expect(await startOn(store, real, { ...site, endpoints: ['lis'] })).toMatch(/the store is taken as this gateway's/);
      expect(await store.getDoc<{ demo?: true }>(ODOO_TARGET_NAMESPACE, 'current')).toMatchObject({ target: real, gatewayIds: ['lab-1'] });
    });

    it('a site whose real analyzer is configured with the id c111-demo is not taken for the demo', async () => {
      const own = { ...site, endpoints: ['lis', DEMO_ANALYZER_ID] };
      const live = await earlierDemo(`${temp.dir}/live`);
      await live.deleteDoc(ODOO_TARGET_NAMESPACE, 'current');
      expect(await startOn(live, real, own)).toBeUndefined();
      await live.close();

      const commissioning = await earlierDemo(`${temp.dir}/commissioning`);
      expect(await startOn(commissioning, sandbox, own)).toBeUndefined();
      expect(await commissioning.getDoc<{ demo?: true }>(ODOO_TARGET_NAMESPACE, 'current')).not.toHaveProperty('demo');
      expect(await startOn(commissioning, real, own)).toBeUndefined();
    });

    it('a site already live on its real Odoo with such a store is not stopped at the upgrade', async () => {
      const store = await earlierDemo();
      await store.putDoc(ODOO_TARGET_NAMESPACE, 'current', { target: real, since: '2026-11-02T08:00:00.000Z' });
      expect(await startOn(store, real, site)).toBeUndefined();
      expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toEqual({ target: real, since: '2026-11-02T08:00:00.000Z', gatewayIds: ['lab-1'] });
    });
  });
});
