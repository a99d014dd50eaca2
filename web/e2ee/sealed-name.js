// Sealed names: a display name encrypted under a key derived from the room secret, for the one
// place a name must travel before the key exchange can run: a lobby knock. The knocker puts it in
// `join.sealed_name`; the server passes it unread to moderators in `knock.sealed_name`; a
// moderator's client that holds the secret opens it. No DOM: also runs in the node unit tests.
//
// Format: base64url(iv ‖ AES-GCM ciphertext ‖ tag), iv 12 random bytes, key
// `HKDF-SHA256(secret, info="conclave sealed name|<room>")` (128 bits), AAD
// `conclave sealed name|<room>`. A sealed name proves that whoever made it had the secret; the
// server could replay one it saw earlier in the same room (docs/e2ee.md).

import { hkdf, concat } from './sframe.js';

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The server accepts sealed names of up to this many characters. */
export const MAX_SEALED_NAME = 1024;
/** Names longer than this (in characters) are cut before sealing. */
const MAX_NAME_CHARS = 64;

/**
 * @param {Uint8Array} b
 * @returns {string}
 */
function b64url(b) {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @param {string} s
 * @returns {Uint8Array|null}
 */
function unb64url(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  try {
    return Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/**
 * @param {string} secret
 * @param {string} room
 */
async function nameKey(secret, room) {
  const raw = await hkdf(te.encode(secret), te.encode(`conclave sealed name|${room}`), 16);
  return crypto.subtle.importKey('raw', /** @type {BufferSource} */ (raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
}

/**
 * Encrypt a display name for the members of `room` (those who hold `secret`).
 * @param {string} secret
 * @param {string} room
 * @param {string} name
 * @returns {Promise<string>}
 */
export async function sealName(secret, room, name) {
  const text = [...name].slice(0, MAX_NAME_CHARS).join('');
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: te.encode(`conclave sealed name|${room}`) },
      await nameKey(secret, room),
      te.encode(text),
    ),
  );
  return b64url(concat(iv, ct));
}

/**
 * Decrypt a sealed name; null when it is malformed or was not made with this secret and room.
 * @param {string} secret
 * @param {string} room
 * @param {string} sealed
 * @returns {Promise<string|null>}
 */
export async function openSealedName(secret, room, sealed) {
  if (typeof sealed !== 'string' || sealed.length > MAX_SEALED_NAME) return null;
  const b = unb64url(sealed);
  if (!b || b.length < IV_BYTES + TAG_BYTES) return null;
  try {
    const pt = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: /** @type {BufferSource} */ (b.subarray(0, IV_BYTES)), additionalData: te.encode(`conclave sealed name|${room}`) },
      await nameKey(secret, room),
      /** @type {BufferSource} */ (b.subarray(IV_BYTES)),
    );
    const name = td.decode(pt).trim();
    return name ? [...name].slice(0, MAX_NAME_CHARS).join('') : null;
  } catch {
    return null;
  }
}
