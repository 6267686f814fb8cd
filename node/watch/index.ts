// Public API of the watch hub (see docs/watch.md).
export { WatchHub, WATCH_HUB_DEFAULTS, CANCEL_REASONS, WatchError, type WatchHubOptions } from './hub.js';
export { Watcher, eventBytes, type WatchSpec, type EventGroup, type CancelInfo, type WatcherListener } from './watcher.js';
export { KeyRangeIndex } from './interval-index.js';
export { keyRangeOf, keyString, rangeContains, isEmptyRange, type KeyRange } from './key-range.js';
