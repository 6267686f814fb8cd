// Public surface of the hybrid logical clock: values, the member's clock, and the replicated revision-at-time index.
export {
  HLC_BYTES,
  HLC_LOGICAL_BITS,
  HLC_LOGICAL_MAX,
  HLC_WALL_MS_MAX,
  HLC_ZERO,
  decodeHlc,
  encodeHlc,
  formatHlc,
  hlcCeiling,
  hlcLogical,
  hlcMax,
  hlcOf,
  hlcWallMs,
  isHlc,
  type Hlc,
} from './hlc.js';
export { HLC_RESERVATION_KEY, HYBRID_CLOCK_DEFAULTS, HybridClock, validateHybridClockConfig, type HybridClockConfig } from './clock.js';
export { REVISION_INDEX_CHUNK_RECORDS, REVISION_INDEX_ENTRIES_MAX, REVISION_INDEX_PREFIX, RevisionTimeIndex, revisionIndexImagePairs, type RevisionTimeIndexConfig } from './revision-index.js';
export { HlcError, type HlcErrorCode } from './errors.js';
export type { Pair } from './section.js';
