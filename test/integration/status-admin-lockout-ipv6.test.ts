import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

/**
 * The admin lockout on a dual-stack listener (`status.listen.host: '::'`), over the IPv6 loopback
 * and IPv4: IPv4 clients arrive as IPv4-mapped addresses (`::ffff:127.0.0.1`), which lie in ::/64
 * with ::1. Counted per /64 without care, one guesser would lock every IPv4 client out.
 */
const TOKEN = 'ipv6-lockout-token-7f21';

describe('admin lockout over ::1 and IPv4 on one dual-stack listener', () => {
  const tmp = tempDir('status-lockout-v6-');
  let store: EventStore;
  let server: StatusServer;
  let port = 0;

  beforeAll(async () => {
    const tokenFile = path.join(tmp.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN);
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-v6', status: { listen: { host: '::', port: 0 }, adminTokenFile: tokenFile } });
    store = await openStore(config.gateway.dataDir);
    server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    port = server.address().port;
  });

  afterAll(async () => {
    await server?.stop();
    await store?.close();
    tmp.cleanup();
  });

  const check = (host: string, token: string): Promise<number> =>
    new Promise((resolve, reject) => {
      http
        .get({ host, port, path: '/api/admin/check', agent: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });

  // Kept: a program guessing over ::1 is locked out after 10 wrong tokens, as on 127.0.0.1; the
  // technician's tray and lab-gateway on IPv4 (another address, though inside ::/64 as an
  // IPv4-mapped one) keep working with the right token.
  it('locks ::1 out after 10 wrong tokens and not the IPv4 clients', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 11; i++) codes.push(await check('::1', `guess-${i}`));
    expect(codes).toEqual([...Array<number>(10).fill(401), 429]);
    expect(await check('::1', TOKEN), 'the right token from the locked address, within the minute').toBe(429);
    expect(await check('127.0.0.1', TOKEN), 'an IPv4 client of the same listener').toBe(200);
  });
});
