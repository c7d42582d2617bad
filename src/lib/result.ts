/**
 * The return type of everything that judges untrusted input: a value, or the reason it was
 * refused. Parsers return this instead of throwing (CONVENTIONS.md §1).
 */
export type Result<T, E = string> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
