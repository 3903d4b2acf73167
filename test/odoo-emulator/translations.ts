/**
 * Translated fields (`translate=True`) and the language a request reads them in.
 *
 * Odoo 16-19 keep a translated field's values per language (jsonb) and read and search them in
 * `env.lang`, falling back to the en_US source. Which language an external call gets:
 * - JSON-RPC `execute_kw` (16-19): `odoo/service/model.py` builds `Environment(cr, uid, {})` and
 *   adds only the call's `context`; without `context.lang` the source (en_US) is read, whatever
 *   the user's own language.
 * - JSON-2 (19): `ir.http._pre_dispatch` sets `lang = get_lang(env).code`: the context's lang
 *   when installed, else the language of the user's company's partner, else en_US. A French
 *   company's bot reads "Unités" where a profile says "Units".
 *
 * The emulator knows Odoo's shipped fr_FR terms of the units it seeds (uom/i18n/fr.po); other
 * values read as their source. Installed languages: en_US and fr_FR.
 */
export const INSTALLED_LANGS: readonly string[] = ['en_US', 'fr_FR'];

const TERMS: Record<string, Record<string, string>> = {
  fr_FR: { Units: 'Unités', Dozens: 'Douzaines', Hours: 'Heures', Days: 'Jours' },
};

/** `value` (an en_US source) as `lang` shows it. */
export function translateTerm(value: string, lang: string): string {
  return TERMS[lang]?.[value] ?? value;
}

/** A context's language when it is installed, else undefined. */
export function contextLang(context: Record<string, unknown>): string | undefined {
  const lang = context.lang;
  return typeof lang === 'string' && INSTALLED_LANGS.includes(lang) ? lang : undefined;
}
