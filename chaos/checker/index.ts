// The linearizability checker's public surface: what the chaos harness and the `fulcrum-check` command use.
export type { HistoryEvent, NemesisEvent } from '../history.js';
export { checkHistory } from './check.js';
export type { CheckOptions, CheckResult, KeyResult, Verdict, Violation } from './check.js';
export type { Model } from './models.js';
export { MODELS, describeOperation } from './models.js';
export { HistoryError, toOperations } from './operations.js';
export type { Operation, Outcome } from './operations.js';
export {
  detectFormat,
  parseEdn,
  parseHistory,
  parseJepsenLog,
  parseJsonl,
  splitIndependentKeys,
} from './parse.js';
export type { HistoryFormat, ParsedHistory } from './parse.js';
export { renderReport, writeReport, VIOLATION_MARKER } from './report.js';
