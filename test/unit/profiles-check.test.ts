import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { checkProfile, defaultProfilesDir } from '../../gateway/src/profiles/check.ts';
import { profileFingerprint } from '../../gateway/src/profiles/fingerprint.ts';
import { applyOverrides, checkSiteAnalyzers, listProfiles, loadProfile, profileNames, resolveAnalyzerProfile } from '../../gateway/src/profiles/load.ts';
import { fingerprintProfiles, renderProfile, renderProfileCheck, renderProfileList } from '../../gateway/src/profiles/render.ts';
import { repoRoot } from '../fixtures/astm/corpus.ts';

const shipped = path.join(repoRoot, 'firmware-profiles');
const tmp = mkdtempSync(path.join(tmpdir(), 'profiles-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function raw(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(shipped, `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/** Re-stamp after an edit so that only the intended issue shows. */
function stamped(obj: Record<string, unknown>): Record<string, unknown> {
  return { ...obj, revision: profileFingerprint(obj) };
}

describe('shipped profiles', () => {
  it('the default directory is the repository firmware-profiles/', () => {
    expect(defaultProfilesDir()).toBe(shipped);
  });

  it('there are a generic profile and at least ten model profiles, all valid with no warnings', () => {
    const names = profileNames();
    expect(names).toContain('generic-astm');
    expect(names.length).toBeGreaterThanOrEqual(11);
    for (const p of listProfiles()) {
      expect({ name: p.name, errors: p.errors, warnings: p.warnings }).toEqual({ name: p.name, errors: 0, warnings: 0 });
      const json = raw(p.name);
      expect(json.$schema).toBe('./schema.json');
      expect(json.revision).toBe(profileFingerprint(json));
    }
  });

  it('loadProfile fills LIS1-A defaults into quirks', () => {
    const p = loadProfile('generic-astm');
    expect(p.quirks).toMatchObject({
      establishmentTimeoutMs: 15_000,
      frameTimeoutMs: 30_000,
      replyTimeoutMs: 15_000,
      nakRetryDelayMs: 10_000,
      interruptHoldoffMs: 15_000,
      contentionTimeoutMs: 20_000,
      maxRetries: 6,
      maxFrameText: 240,
      delimiters: '|\\^&',
      lowLevel: 'e1381',
    });
    expect(loadProfile('cepheid-genexpert').quirks.delimiters).toBe('|@^\\');
    expect(loadProfile('roche-cobas-c111').quirks.etbAfterEveryRecord).toBe(true);
  });

  it('covers the models the gateway promises', () => {
    const protocols = Object.fromEntries(listProfiles().map((p) => [p.name, p.protocol]));
    for (const name of ['sysmex-xn-l', 'sysmex-xp', 'roche-cobas-e411', 'roche-cobas-c111', 'abbott-afinion-2', 'siemens-advia-centaur-xp', 'beckman-unicel-dxh', 'horiba-pentra-xlr', 'horiba-yumizen-h500', 'cepheid-genexpert']) {
      expect(protocols[name], name).toBe('astm-e1381');
    }
    expect(protocols['mindray-bc-5380']).toBe('hl7-mllp');
    expect(protocols['mindray-bs-series']).toBe('hl7-mllp');
  });

  it('an unknown name is GW_PROFILE_UNKNOWN with a suggestion', () => {
    try {
      loadProfile('sysmex-xnl');
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err, 'GW_PROFILE_UNKNOWN')).toBe(true);
      expect((err as Error).message).toMatch(/did you mean "sysmex-xn-l"/);
    }
  });
});

describe('checkProfile', () => {
  it('names an unknown field precisely, with a suggestion', () => {
    const p = raw('sysmex-xn-l');
    const issues = checkProfile(stamped({ ...p, quirks: { ...(p.quirks as object), frameTimeoutMS: 1000 }, runTypeRule: [] }));
    expect(issues).toContainEqual({ severity: 'error', path: 'quirks.frameTimeoutMS', message: 'unknown field "frameTimeoutMS" (did you mean "frameTimeoutMs"?)' });
    expect(issues).toContainEqual({ severity: 'error', path: 'runTypeRule', message: 'unknown field "runTypeRule" (did you mean "runTypeRules"?)' });
  });

  it('reports consumption rows that name no mapped test, and bad rows', () => {
    const p = raw('roche-cobas-e411');
    const consumption = [
      ...(p.consumption as object[]),
      { per: 'test', test: 'TSHH', productCode: 'X', quantity: 1, uom: 'Units' },
      { per: 'test', productCode: 'Y', quantity: 1, uom: 'Units' },
      { per: 'test', test: '*', productCode: 'Z', quantity: 1, uom: 'mL', deadVolume: true },
      { per: 'run', productCode: 'W', quantity: 0, uom: 'mL' },
    ];
    const issues = checkProfile(stamped({ ...p, consumption }));
    const n = (p.consumption as object[]).length;
    expect(issues).toContainEqual({ severity: 'error', path: `consumption[${n}].test`, message: 'test "TSHH" is not the canonical code of any mapping in "tests" (did you mean "TSH"?)' });
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: `consumption[${n + 1}].test` }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: `consumption[${n + 2}].deadVolume` }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: `consumption[${n + 3}].quantity` }));
  });

  it('reports test mappings without a canonical code, bad LOINC, bad patterns and delimiters', () => {
    const p = raw('generic-astm');
    const issues = checkProfile(
      stamped({
        ...p,
        tests: { GLU: { name: 'glucose' }, K: { code: 'K', loinc: 'abc' } },
        runTypeRules: [{ runType: 'qc', when: [{ field: 'O.3.1', pattern: '([' }] }],
        quirks: { delimiters: '|^^&' },
      }),
    );
    expect(issues).toContainEqual({ severity: 'error', path: 'tests.GLU.code', message: 'required field is missing' });
    expect(issues).toContainEqual(expect.objectContaining({ path: 'tests.K.loinc' }));
    expect(issues).toContainEqual(expect.objectContaining({ path: 'runTypeRules[0].when[0].pattern', message: expect.stringMatching(/not a valid regular expression/) }));
    expect(issues).toContainEqual(expect.objectContaining({ path: 'quirks.delimiters', message: expect.stringMatching(/distinct/) }));
  });

  it('catches an edit made without re-fingerprinting', () => {
    const p = raw('sysmex-xp');
    const issues = checkProfile({ ...p, description: 'edited by hand' });
    expect(issues).toEqual([expect.objectContaining({ severity: 'error', path: 'revision', message: expect.stringMatching(/changed since its revision was recorded/) })]);
  });

  it('warns when two analyzer codes are orderable for one canonical test', () => {
    const p = raw('generic-astm');
    const issues = checkProfile(stamped({ ...p, tests: { GLU: { code: 'GLU' }, GLUC: { code: 'GLU' } } }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'warning', path: 'tests.GLUC' }));
  });

  it('requires the hl7 section for hl7-mllp profiles and refuses serial for them', () => {
    const p = raw('mindray-bs-series');
    delete p.hl7;
    const issues = checkProfile(stamped({ ...p, transport: { supported: ['tcp-server', 'serial'], default: 'tcp-server' } }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'hl7' }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'transport.supported' }));
  });

  it('compares the name with the file name', () => {
    expect(checkProfile(raw('sysmex-xp'), { fileName: 'sysmex-xp-300' })).toContainEqual(expect.objectContaining({ path: 'name' }));
  });
});

describe('site analyzers and overrides (lab-gateway check)', () => {
  it('reports unknown profiles, unknown override keys and unsupported transports', () => {
    const issues = checkSiteAnalyzers([
      { id: 'xn', profile: 'sysmex-xnl', tcp: { listen: { host: '127.0.0.1', port: 9994 } } },
      { id: 'e411', profile: 'roche-cobas-e411', serial: { path: '/dev/ttyUSB0', baudRate: 4800 }, overrides: { frameTimeoutMs: 60_000, frameTimeout: 1 } },
      { id: 'bs', profile: 'mindray-bs-series', serial: { path: '/dev/ttyUSB1' } },
      { id: 'gx', profile: 'cepheid-genexpert', tcp: { connect: { host: '10.0.0.5', port: 12000 } }, overrides: { maxFrameText: 5 } },
    ]);
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[0].profile', message: expect.stringMatching(/unknown profile "sysmex-xnl" \(did you mean "sysmex-xn-l"\?\)/) }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[1].overrides.frameTimeout', message: expect.stringMatching(/unknown override key "frameTimeout" \(did you mean "frameTimeoutMs"\?\)/) }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'warning', path: 'analyzers[1].serial.baudRate' }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[2].serial' }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[3].overrides.maxFrameText' }));
    expect(issues.filter((i) => i.path.startsWith('analyzers[3].tcp'))).toEqual([]);
  });

  it('order push is refused, naming the key, where the analyzer cannot take it', () => {
    const issues = checkSiteAnalyzers([
      { id: 'bs', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 9995 } }, pushOrders: true },
      { id: 'xp', profile: 'sysmex-xp', serial: { path: '/dev/ttyUSB2' }, pushOrders: true },
      { id: 'xn', profile: 'sysmex-xn-l', tcp: { listen: { host: '127.0.0.1', port: 9996 } }, pushOrders: true },
    ]);
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[0].pushOrders', message: expect.stringMatching(/speaks HL7.*host query, answered by the gateway/) }));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'error', path: 'analyzers[1].pushOrders', message: expect.stringMatching(/does not describe order download/) }));
    expect(issues.filter((i) => i.path.startsWith('analyzers[2]'))).toEqual([]);
  });

  it('a clean site has no issues', () => {
    expect(checkSiteAnalyzers([{ id: 'xn', profile: 'sysmex-xn-l', tcp: { listen: { host: '127.0.0.1', port: 9994 } }, overrides: { frameTimeoutMs: 45_000, timers: { trailerGraceMs: 100 } } }])).toEqual([]);
  });

  it('overrides change the quirks of the effective profile only', () => {
    const base = loadProfile('sysmex-xn-l');
    const effective = resolveAnalyzerProfile({ id: 'xn', profile: 'sysmex-xn-l', overrides: { frameTimeoutMs: 45_000 } });
    expect(effective.quirks.frameTimeoutMs).toBe(45_000);
    expect(base.quirks.frameTimeoutMs).toBe(30_000);
    expect(() => applyOverrides(base, { nonsense: true })).toThrow(/unknown override key "nonsense"/);
  });
});

describe('renderers and fingerprints', () => {
  it('list, show and check render every profile', () => {
    const list = renderProfileList();
    for (const name of profileNames()) expect(list).toContain(name);
    const show = renderProfile(loadProfile('siemens-advia-centaur-xp'));
    expect(show).toMatch(/VitD\^DOSE\s+VITD/);
    expect(show).toMatch(/O\.26 O\\Q/);
    const check = renderProfileCheck();
    expect(check.exitCode).toBe(0);
    expect(check.text).toMatch(/0 error\(s\)/);
  });

  it('check of a broken copy exits 1 and fingerprint --write repairs a stale revision', () => {
    for (const f of ['schema.json', 'sysmex-xp.json']) copyFileSync(path.join(shipped, f), path.join(tmp, f));
    const file = path.join(tmp, 'sysmex-xp.json');
    const obj = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...obj, firmware: '00-14' }));
    const before = renderProfileCheck('sysmex-xp', tmp);
    expect(before.exitCode).toBe(1);
    expect(before.text).toMatch(/revision/);
    expect(fingerprintProfiles(['sysmex-xp'], { dir: tmp, write: true }).changed).toEqual(['sysmex-xp']);
    expect(renderProfileCheck('sysmex-xp', tmp).exitCode).toBe(0);
    expect(renderProfileCheck(file).exitCode).toBe(0);
    expect(loadProfile('sysmex-xp', tmp).firmware).toBe('00-14');
  });
});
