// What the node/h2 tests share.

/**
 * A frame's bytes, encoded by hand, independently of FrameWriter: for frames FrameWriter cannot make (padding,
 * priority, malformed ones) and for checking FrameWriter itself.
 */
export function rawFrame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([header, payload]);
}
