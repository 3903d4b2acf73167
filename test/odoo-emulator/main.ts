/**
 * Standalone Odoo emulator for manual use:
 *
 *   npx node test/odoo-emulator/main.ts --version 17 --port 8069 [--host 127.0.0.1] [--database lab]
 *       [--seed lab-demo|empty] [--persist FILE] [--user login:password[:apikey[:bot]]]...
 */
import { parseArgs } from 'node:util';
import { OdooEmulator, type EmulatorUser, type OdooVersion } from './emulator.ts';

const { values } = parseArgs({
  options: {
    version: { type: 'string', default: '17' },
    port: { type: 'string', default: '8069' },
    host: { type: 'string', default: '127.0.0.1' },
    database: { type: 'string', default: 'lab' },
    seed: { type: 'string', default: 'lab-demo' },
    persist: { type: 'string' },
    user: { type: 'string', multiple: true },
  },
});

const version = Number(values.version);
if (![16, 17, 18, 19].includes(version)) {
  process.stderr.write(`--version must be 16, 17, 18 or 19 (got ${values.version})\n`);
  process.exit(2);
}
if (values.seed !== 'lab-demo' && values.seed !== 'empty') {
  process.stderr.write(`--seed must be lab-demo or empty (got ${values.seed})\n`);
  process.exit(2);
}
const users: EmulatorUser[] | undefined = values.user?.map((spec) => {
  const [login = 'admin', password = '', key, rights] = spec.split(':');
  return { login, password, apiKeys: key ? [{ key }] : [], rights: rights === 'bot' ? 'bot' : 'admin' };
});

const emulator = new OdooEmulator({
  version: version as OdooVersion,
  database: values.database,
  seed: values.seed,
  ...(users ? { users } : {}),
  ...(values.persist ? { persistFile: values.persist } : {}),
});
const { url } = await emulator.listen(Number(values.port), values.host);
process.stdout.write(`Odoo ${version} emulator on ${url} (database "${emulator.database}", ${emulator.version >= 19 ? 'JSON-2 + ' : ''}JSON-RPC)\n`);

const stop = (): void => {
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
