/**
 * Units of measure are translated in Odoo (uom.uom `name`, `translate=True` in 16-19), and the
 * consumption profiles name them in English ("Units", "mL"). A lab whose Odoo company is French
 * reads them in French over Odoo 19's JSON-2 ("Unités": ir.http._pre_dispatch takes the company's
 * language when the call gives none); over JSON-RPC (16-18) a call without context.lang reads the
 * English source whatever the user's language (test/odoo-emulator/translations.ts).
 *
 * Was: the relay read units and products without a language, so on 19 a French site's consumption
 * in "Units" matched no unit ("'Units' matches no Odoo unit of measure") and every reagent use was
 * dead-lettered. Now the reads the relay matches by name ask for en_US.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BOT, makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, productId } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe.each([16, 17, 18, 19] as const)('units of a French lab (Odoo %i)', (version: OdooVersion) => {
  it('consumption in "Units" is posted when the company and the bot user are French', async () => {
    const started = await startEmulator(version);
    const { emu } = started;
    // The site's Odoo in French: the company's language and the bot user's preference.
    const company = emu.records('res.company')[0]!;
    emu.call('res.partner', 'write', [[company['partner_id']], { lang: 'fr_FR' }]);
    const bot = emu.records('res.users', [['login', '=', BOT.login]])[0]!;
    emu.call('res.users', 'write', [[bot.id], { lang: 'fr_FR' }]);
    // What the site's buyers see in Odoo: the unit under its French name (19 reads it that way for the bot too).
    const unit = emu.records('uom.uom', [['name', '=', 'Units']])[0]!;
    expect(emu.call('uom.uom', 'read', [[unit.id], ['name']], { context: { lang: 'fr_FR' } })).toEqual([{ id: unit.id, name: 'Unités' }]);
    rig = await makeRig(version, { emu: started });
    try {
      const [id] = await rig.commit([consumableUsed('an-fr', 'RGT-GLU', 2, 1)]);
      await rig.waitDrained();
      const stored = await rig.store.getEvent(id!);
      expect({ state: stored?.state, error: stored?.lastError }).toEqual({ state: 'delivered', error: undefined });
      const moves = emu.records('stock.move', [['product_id', '=', productId(emu, 'RGT-GLU')], ['origin', '=like', 'lab-gateway:cons:%']]);
      expect(moves.map((m) => m['product_uom_qty'])).toEqual([2]);
    } finally {
      await emu.close();
    }
  });
});
