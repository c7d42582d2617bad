/**
 * Why a codec refused bytes. Parsers return one of these (never throw); the layer that
 * drops the packet counts it under `<component>_rx_dropped_<reason>` with '-' as '_'.
 */
export type WireError =
  | 'truncated' // shorter than a header or a length field says
  | 'bad-length' // a length field is impossible (smaller than its header, say)
  | 'bad-checksum'
  | 'bad-version'
  | 'bad-header-length'
  | 'bad-flags' // reserved or required flag bits wrong (VXLAN I flag, say)
  | 'bad-option' // an option's length runs past its area or is below its minimum
  | 'fragmented' // IPv4 fragment: recognised and refused (shoal sets DF and never reassembles)
  | 'unsupported'; // a well-formed packet of a kind shoal does not handle (ARP over non-Ethernet, say)

export const WIRE_ERRORS: readonly WireError[] = [
  'truncated',
  'bad-length',
  'bad-checksum',
  'bad-version',
  'bad-header-length',
  'bad-flags',
  'bad-option',
  'fragmented',
  'unsupported',
];
