/**
 * The tray's adminTokenFile holding a person's named line. The gateway reads `status.adminTokenFile`
 * as one bare token or `<name> <token>` lines (gateway/src/config/admin-tokens.ts); IT copies a
 * person's line to the PC they use. Before, the tray sent the whole line as the token and every
 * pause or resume from its menu was refused 401. Here: the tray reads a file as the gateway does,
 * and the token it finds is one the gateway's own reader accepts for that person.
 */
import { describe, expect, it } from 'vitest';
import { adminTokenOf } from '../../desktop/src/tray-config.ts';
import { readAdminTokens } from '../../gateway/src/config/admin-tokens.ts';

const TOKEN = 'b7c1e0f4a9d2c8e6f1a3b5d7';

describe("the tray's admin token file", () => {
  it('a bare token, as before (trailing newline, Windows line end)', () => {
    expect(adminTokenOf(`${TOKEN}\n`)).toBe(TOKEN);
    expect(adminTokenOf(`${TOKEN}\r\n`)).toBe(TOKEN);
  });

  it("one person's named line, with comments and blank lines: that person's token, as the gateway reads it", () => {
    const text = `# the lab's day shift PC\n\nalice.smith ${TOKEN}\r\n`;
    expect(adminTokenOf(text)).toBe(TOKEN);
    expect(readAdminTokens(text).tokens).toEqual([expect.objectContaining({ name: 'alice.smith', token: TOKEN })]);
  });

  it('the lines of several people, or none: no token (the menu keeps its admin entries hidden)', () => {
    expect(adminTokenOf(`alice ${TOKEN}\nbob ${TOKEN}x\n`)).toBeUndefined();
    expect(adminTokenOf('# nobody yet\n')).toBeUndefined();
    expect(adminTokenOf('   \n')).toBeUndefined();
    expect(adminTokenOf(`alice ${TOKEN} extra\n`)).toBeUndefined();
  });
});
