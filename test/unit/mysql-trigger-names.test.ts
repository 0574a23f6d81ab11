// The temporary names a table's triggers carry on the shadow (mysql-triggers.ts): always
// a valid identifier, always ending in the suffix that marks them, never shared by two
// triggers; and the DEFINER clause as information_schema's user@host becomes.

import { describe, it, expect } from 'vitest';
import { SHADOW_TRIGGER_SUFFIX, quoteDefiner, shadowTriggerName } from '../../src/dialects/mysql/mysql-triggers.js';

describe('shadow trigger names', () => {
  it('add the suffix, or cut a long name and add a hash of the whole, within 64 characters', () => {
    expect(shadowTriggerName('t_ai')).toBe('t_ai_ssnew');
    const long60 = 'trigger_long_name_padding_aaaaaaaaaaaaaaaaaaaaa_60chars_xxxx';
    const other60 = 'trigger_long_name_padding_aaaaaaaaaaaaaaaaaaaaa_60chars_yyyy';
    const a = shadowTriggerName(long60);
    const b = shadowTriggerName(other60);
    expect([...a].length).toBeLessThanOrEqual(64);
    expect(a.endsWith(SHADOW_TRIGGER_SUFFIX)).toBe(true);
    expect(a).not.toBe(b);
    expect([...shadowTriggerName('é'.repeat(64))].length).toBe(64);
  });

  it('quote the definer as user@host, the host after the last @, and a role alone', () => {
    expect(quoteDefiner('root@localhost')).toBe('`root`@`localhost`');
    expect(quoteDefiner('odd@name@%')).toBe('`odd@name`@`%`');
    expect(quoteDefiner('app_role')).toBe('`app_role`');
  });
});
