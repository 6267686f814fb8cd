// A tiny gRPC service for the registry's tests: Who() answers the id of the instance that served the call.
// Hand-written service definition (JSON on the wire), so no .proto is needed. Test code only.
import * as grpc from '@grpc/grpc-js';

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString('utf8')),
};

export const WHO_SERVICE = {
  who: {
    path: '/fulcrum.test.Who/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

export const WhoClient = grpc.makeGenericClientConstructor(WHO_SERVICE, 'Who');

/** A Who server on 127.0.0.1:port answering `id`. */
export async function startWhoServer(id: string, port: number): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(WHO_SERVICE, { who: (_call: unknown, cb: grpc.sendUnaryData<{ id: string }>) => cb(null, { id }) });
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

/** One Who() call; resolves with the id that answered. */
export function callWho(client: grpc.Client, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as { who: (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { id: string }) => void) => void }).who({}, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r!.id)));
  });
}
