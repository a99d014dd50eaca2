// Redundant audio (RED, RFC 2198) as the media worker sees it: Chrome hands the encryption
// transform Opus already wrapped in RED (each packet also carries the previous one). The worker
// encrypts each block on its own and leaves the block headers in the clear, so the server can
// hand a receiver without RED the primary block alone, which that receiver decrypts as plain
// Opus. No DOM: runs in the worker and in node (tests/unit).

/** Longest block a RED header can describe (10-bit length). */
export const MAX_BLOCK = 0x3ff;
/** Largest timestamp offset a RED header can carry (14 bits). */
const MAX_OFFSET = 0x3fff;

/**
 * One block of a RED payload: the primary (last, offset 0) or an earlier, redundant one.
 * @typedef {{pt: number, offset: number, data: Uint8Array}} RedBlock
 */

/**
 * Split a RED payload into its blocks, redundant ones first, the primary last; null when it is
 * not a well-formed RED payload.
 * @param {Uint8Array} buf
 * @returns {RedBlock[] | null}
 */
export function parseRed(buf) {
  /** @type {{pt: number, offset: number, len: number}[]} */
  const heads = [];
  let i = 0;
  for (;;) {
    if (i >= buf.length) return null;
    const b = buf[i];
    if ((b & 0x80) === 0) {
      i += 1;
      break;
    }
    if (i + 4 > buf.length) return null;
    heads.push({
      pt: b & 0x7f,
      offset: (buf[i + 1] << 6) | (buf[i + 2] >> 2),
      len: ((buf[i + 2] & 0x03) << 8) | buf[i + 3],
    });
    i += 4;
  }
  const primaryPt = buf[i - 1] & 0x7f;
  /** @type {RedBlock[]} */
  const blocks = [];
  for (const h of heads) {
    if (i + h.len > buf.length) return null;
    blocks.push({ pt: h.pt, offset: h.offset, data: buf.subarray(i, i + h.len) });
    i += h.len;
  }
  blocks.push({ pt: primaryPt, offset: 0, data: buf.subarray(i) });
  return blocks;
}

/**
 * Join blocks (redundant first, primary last) into a RED payload. A redundant block that no
 * longer fits a RED header (encryption made it longer) is left out: the packet loses that
 * redundancy, never its primary.
 * @param {RedBlock[]} blocks
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function buildRed(blocks) {
  const primary = blocks[blocks.length - 1];
  const redundant = blocks.slice(0, -1).filter((b) => b.data.length <= MAX_BLOCK && b.offset <= MAX_OFFSET);
  const size = redundant.reduce((n, b) => n + 4 + b.data.length, 1 + primary.data.length);
  const out = new Uint8Array(size);
  let i = 0;
  for (const b of redundant) {
    out[i++] = 0x80 | (b.pt & 0x7f);
    out[i++] = b.offset >> 6;
    out[i++] = ((b.offset & 0x3f) << 2) | (b.data.length >> 8);
    out[i++] = b.data.length & 0xff;
  }
  out[i++] = primary.pt & 0x7f;
  for (const b of [...redundant, primary]) {
    out.set(b.data, i);
    i += b.data.length;
  }
  return out;
}
