// ConfChange entries carry their change as bytes: [type u8][nodeId f64][context...]. Fixed layout, no JSON,
// so that every member decodes exactly the same change from the same entry.
import { assert } from './errors.js';
import { ConfChangeType, type ConfChange } from './types.js';

const HEADER_BYTES = 9;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + cc.context.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, cc.type);
  view.setFloat64(1, cc.nodeId);
  out.set(cc.context, HEADER_BYTES);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  assert(data.byteLength >= HEADER_BYTES, () => `conf change entry too short: ${data.byteLength} bytes`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const type = view.getUint8(0) as ConfChangeType;
  assert(type in ConfChangeType, () => `unknown conf change type ${type}`);
  const nodeId = view.getFloat64(1);
  assert(Number.isSafeInteger(nodeId) && nodeId > 0, () => `bad conf change node id ${nodeId}`);
  return { type, nodeId, context: data.slice(HEADER_BYTES) };
}

export function describeConfChange(cc: ConfChange): string {
  const verb = cc.type === ConfChangeType.AddVoter ? 'add voter' : cc.type === ConfChangeType.AddLearner ? 'add learner' : 'remove';
  return `${verb} ${cc.nodeId}`;
}
