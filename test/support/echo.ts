/**
 * A tiny real gRPC service for tests: `/mizzen.test.Echo/Call`, JSON messages. Backends answer with their name, so a
 * test can count where calls land; behaviour hooks make one fail or stall.
 */
import * as grpc from '@grpc/grpc-js';

export interface EchoReply {
  backend: string;
  headers: Record<string, string>;
}

const json = {
  serialize: (o: unknown) => Buffer.from(JSON.stringify(o)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};

export const echoService = {
  Call: {
    path: '/mizzen.test.Echo/Call',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} as unknown as grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
export type EchoClientT = InstanceType<typeof EchoClient> & {
  Call(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): grpc.ClientUnaryCall;
};

export type Behaviour = (call: grpc.ServerUnaryCall<unknown, unknown>) => { code: grpc.status; details?: string } | { delayMs: number } | undefined;

export interface EchoBackend {
  name: string;
  port: number;
  calls: number;
  behaviour: Behaviour | undefined;
  stop(): Promise<void>;
}

export function echoHandlers(backend: { name: string; calls: number; behaviour: Behaviour | undefined }) {
  return {
    Call: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<EchoReply>) => {
      backend.calls++;
      const b = backend.behaviour?.(call);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) headers[k] = String(v);
      if (b && 'code' in b) return cb({ code: b.code, details: b.details ?? 'failing on purpose' } as grpc.ServiceError);
      const reply = () => cb(null, { backend: backend.name, headers });
      if (b && 'delayMs' in b) setTimeout(reply, b.delayMs);
      else reply();
    },
  };
}

export async function startEchoBackend(name: string, host = '127.0.0.1'): Promise<EchoBackend> {
  const server = new grpc.Server();
  const backend: EchoBackend = {
    name,
    port: 0,
    calls: 0,
    behaviour: undefined,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  server.addService(echoService, echoHandlers(backend));
  backend.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return backend;
}

/** One unary call; resolves with the reply or the error. */
export function call(client: EchoClientT, headers: Record<string, string> = {}, deadlineMs = 5000): Promise<{ reply?: EchoReply; error?: grpc.ServiceError }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.Call({}, md, { deadline: Date.now() + deadlineMs }, (err, res) => resolve(err ? { error: err } : { reply: res! }));
  });
}
