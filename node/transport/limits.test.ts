import { describe, expect, it } from 'vitest';
import { SEND_ACK_EVERY, shouldAck, validateTransportLimits } from './limits.js';

describe('send acks', () => {
  it('acks the first batch (the sender resets its back-off on it) and then every SEND_ACK_EVERY-th', () => {
    const acked = Array.from({ length: 40 }, (_, i) => i + 1).filter(shouldAck);
    expect(acked).toEqual([1, 8, 16, 24, 32, 40]);
    expect(SEND_ACK_EVERY).toBe(8);
  });

  it('refuses an in-flight window that could stall between acks', () => {
    expect(() => validateTransportLimits({ inflightBatchesMax: 2 * SEND_ACK_EVERY - 1 })).toThrow(/inflightBatchesMax must be >= 16/);
    expect(validateTransportLimits({ inflightBatchesMax: 2 * SEND_ACK_EVERY }).inflightBatchesMax).toBe(16);
  });
});
