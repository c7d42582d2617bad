/**
 * CRC-32/IEEE (the zlib/Ethernet CRC, Go's `crc32.ChecksumIEEE`), which memberlist's `hasCrc`
 * wrapper carries (spec §4, `ML net.go:344-354, 781-789`): reflected polynomial 0xEDB88320,
 * initial value and final xor 0xFFFFFFFF. Check value for ASCII "123456789": 0xCBF43926.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** The CRC-32/IEEE of `data` as an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
