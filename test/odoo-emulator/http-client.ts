/**
 * A deliberately thin client for tests of the emulator (and manual probing): it returns what came
 * over the wire — status, headers, parsed body — and interprets nothing.
 */
export interface WireResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  body: unknown;
}

export async function post(url: string, body: string, headers: Record<string, string>): Promise<WireResponse> {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

let nextId = 1;

/** POST /jsonrpc {service, method, args}. */
export async function jsonRpc(baseUrl: string, service: string, method: string, args: unknown[]): Promise<WireResponse> {
  return post(`${baseUrl}/jsonrpc`, JSON.stringify({ jsonrpc: '2.0', method: 'call', id: nextId++, params: { service, method, args } }), { 'Content-Type': 'application/json' });
}

/** object.execute_kw(db, uid, secret, model, method, args, kwargs). */
export async function executeKw(baseUrl: string, auth: { db: string; uid: number; secret: string }, model: string, method: string, args: unknown[] = [], kwargs?: Record<string, unknown>): Promise<WireResponse> {
  const a: unknown[] = [auth.db, auth.uid, auth.secret, model, method, args];
  if (kwargs) a.push(kwargs);
  return jsonRpc(baseUrl, 'object', 'execute_kw', a);
}

/** POST /json/2/<model>/<method> with a bearer key (Odoo 19). */
export async function json2(baseUrl: string, key: string | undefined, model: string, method: string, body: Record<string, unknown>, extraHeaders: Record<string, string> = {}): Promise<WireResponse> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8', ...extraHeaders };
  if (key !== undefined) headers.Authorization = `bearer ${key}`;
  return post(`${baseUrl}/json/2/${model}/${method}`, JSON.stringify(body), headers);
}
