import { describe, expect, it } from 'vitest';
import { classifyOdooException, cleanOdooMessage, failureOf, mappingMissing, odooError } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { parseMajorVersion } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { deadReason } from '../../gateway/src/relay/relay.ts';

describe('Odoo failure classes', () => {
  it.each([
    ['odoo.exceptions.AccessDenied', undefined, 'auth'],
    ['werkzeug.exceptions.Unauthorized', 401, 'auth'],
    ['odoo.exceptions.LockError', 409, 'transient'],
    ['psycopg2.errors.SerializationFailure', undefined, 'transient'],
    ['odoo.exceptions.AccessError', 403, 'permanent'],
    ['odoo.exceptions.ValidationError', 422, 'permanent'],
    ['odoo.exceptions.UserError', 422, 'permanent'],
    ['builtins.ValueError', 500, 'permanent'],
    ['odoo.exceptions.MissingError', 404, 'permanent'],
  ] as const)('%s (HTTP %s) is %s', (name, status, expected) => {
    expect(classifyOdooException(name, status)).toBe(expected);
  });

  it('a serialization failure hidden in a message is transient', () => {
    expect(classifyOdooException('builtins.Exception', undefined, 'could not serialize access due to concurrent update')).toBe('transient');
  });

  it('the failure class travels on the GatewayError; a mapping miss is permanent', () => {
    expect(failureOf(odooError('ambiguous', 'x'))).toBe('ambiguous');
    expect(failureOf(mappingMissing('test code GLU has no Odoo product with default_code GLU'))).toBe('permanent');
  });

  it('never shows database host details from psycopg2 errors (D)', () => {
    expect(cleanOdooMessage('psycopg2.OperationalError', 'connection to server at "10.0.0.5", port 5432 failed')).not.toMatch(/10\.0\.0\.5|5432/);
  });

  it('dead-letter reasons are readable', () => {
    expect(deadReason(mappingMissing('test code GLU has no Odoo product with default_code GLU'))).toBe('mapping missing: test code GLU has no Odoo product with default_code GLU');
  });
});

describe('version parsing', () => {
  it.each([
    [[17, 0, 0, 'final', 0, ''], undefined, 17],
    [['saas~18', 3, 0, 'final', 0, 'e'], undefined, 18],
    [undefined, '17.0-20240709', 17],
    [[19, 0, 0, 'final', 0, ''], '19.0', 19],
  ] as const)('%j / %s → %i', (info, text, major) => {
    expect(parseMajorVersion(info, text)).toBe(major);
  });
});
