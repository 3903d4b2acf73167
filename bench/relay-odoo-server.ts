/**
 * The Odoo side of the relay benchmark in its own process (Odoo is a separate server; sharing one
 * event loop with the gateway would make each slow the other down). Prints `{"url": …}` once
 * listening; exits when stdin closes.
 */
import { OdooEmulator } from '../test/odoo-emulator/index.ts';

const latencyMs = Number(process.argv[2] ?? 20);
const emu = new OdooEmulator({
  version: 17,
  seed: 'lab-demo',
  users: [
    { login: 'admin', password: 'admin', rights: 'admin' },
    { login: 'gateway-bot', password: 'x', apiKeys: [{ key: '6578616d706c65206a736f6e20617069206b6579' }], rights: 'bot' },
  ],
});
emu.faults.latencyMs = latencyMs;
const { url } = await emu.listen(0);
process.stdout.write(JSON.stringify({ url }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void emu.close().then(() => process.exit(0));
});
