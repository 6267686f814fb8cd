// The replicated state machine of a simulated member. It does not keep the values: the safety checker keeps
// the one global committed sequence, so a member only needs its applied index and a hash chain over every
// payload it applied. Two members with the same (index, chain) applied the same sequence; a snapshot carries
// the pair, so a member restored from a snapshot can be checked against the global sequence too.
import { chainHash, dataFingerprint } from './digest.js';

const IMAGE_BYTES = 16;

export interface MachineImage {
  readonly index: number;
  readonly chain: number;
}

export class RegisterMachine {
  constructor(
    public index: number,
    public chain: number,
  ) {}

  /** Apply the payload of entry `index` (any type: conf changes and no-ops are part of the sequence too). */
  apply(index: number, data: Uint8Array): void {
    this.index = index;
    this.chain = chainHash(this.chain, index, dataFingerprint(data));
  }

  image(): Uint8Array {
    const out = new Uint8Array(IMAGE_BYTES);
    const view = new DataView(out.buffer);
    view.setFloat64(0, this.index);
    view.setUint32(8, this.chain);
    return out;
  }

  static decode(data: Uint8Array): MachineImage {
    if (data.byteLength !== IMAGE_BYTES) throw new RangeError(`state machine image: ${data.byteLength} bytes, want ${IMAGE_BYTES}`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return { index: view.getFloat64(0), chain: view.getUint32(8) };
  }

  static restore(data: Uint8Array): RegisterMachine {
    const img = RegisterMachine.decode(data);
    return new RegisterMachine(img.index, img.chain);
  }
}

/** Client writes are unique 8-byte ids: never empty, so a write is never mistaken for a leader's no-op. */
export function encodeWrite(id: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, id);
  return out;
}
