// A @grpc/grpc-js name resolver over the registry: a channel to `fulcrum:///payments` connects to the live
// instances of "payments", follows every change as it happens (a Discovery: snapshot + watch), and balances
// calls round-robin over them.
//
//   registerFulcrumResolver(new Registry(client));
//   const stub = new PaymentsClient('fulcrum:///payments', grpc.credentials.createInsecure());
//
// grpc-js keeps one resolver class per scheme for the whole process, so the registry given last for a scheme
// serves every channel of that scheme; use another scheme for a second registry (`{ scheme: 'fulcrum-eu' }`).
import * as grpc from '@grpc/grpc-js';
import type { Discovery, Instance, Registry } from './registry.js';

export const RESOLVER_SCHEME_DEFAULT = 'fulcrum';

/** What every channel of the scheme gets: round_robin over the instances (no method config: no retries here). */
const SERVICE_CONFIG = { loadBalancingConfig: [{ round_robin: {} }], methodConfig: [] };

export interface ResolverOptions {
  /** The target scheme (default "fulcrum": targets `fulcrum:///<service>`). */
  readonly scheme?: string;
}

/** The service a target names: `fulcrum:///payments` (or `fulcrum://any-authority/payments`) is "payments". */
export function serviceOfTarget(target: grpc.experimental.GrpcUri): string {
  return target.path.replace(/^\/+/, '');
}

/** A grpc-js endpoint for an instance's host:port. */
export function toGrpcEndpoint(i: Instance): grpc.experimental.Endpoint | undefined {
  const hp = grpc.experimental.splitHostPort(i.address);
  if (hp === null || hp.port === undefined) return undefined;
  return { addresses: [{ host: hp.host, port: hp.port }] };
}

/** Make `<scheme>:///<service>` targets resolve through this registry, in this process. */
export function registerFulcrumResolver(registry: Registry, o: ResolverOptions = {}): void {
  const scheme = o.scheme ?? RESOLVER_SCHEME_DEFAULT;

  class FulcrumResolver implements grpc.experimental.Resolver {
    private discovery: Discovery | undefined;
    private starting = false;
    private destroyed = false;
    private readonly service: string;

    constructor(
      target: grpc.experimental.GrpcUri,
      private readonly listener: grpc.experimental.ResolverListener,
    ) {
      this.service = serviceOfTarget(target);
    }

    static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
      return serviceOfTarget(target);
    }

    updateResolution(): void {
      this.destroyed = false;
      // A running discovery pushes every change as it happens, and it has reported the current list already:
      // nothing to do. (Reporting again here would loop: grpc-js asks again from inside the listener when a
      // subchannel is down.)
      if (this.discovery !== undefined || this.starting) return;
      this.starting = true;
      registry.discover(this.service).then(
        (d) => {
          this.starting = false;
          if (this.destroyed) return d.close();
          this.discovery = d;
          d.on('change', () => this.report(d));
          d.on('error', (e) => {
            this.discovery = undefined;
            this.fail(`fulcrum resolver: discovery of ${this.service} ended: ${e.message}`);
          });
          this.report(d);
        },
        (e: unknown) => {
          this.starting = false;
          if (!this.destroyed) this.fail(`fulcrum resolver: cannot discover ${this.service}: ${String(e)}`);
        },
      );
    }

    destroy(): void {
      this.destroyed = true;
      this.discovery?.close();
      this.discovery = undefined;
    }

    private report(d: Discovery): void {
      if (this.destroyed) return;
      const endpoints = d.instances.flatMap((i) => toGrpcEndpoint(i) ?? []);
      if (endpoints.length === 0) return this.fail(`fulcrum resolver: no live instances of ${this.service}`);
      this.listener(grpc.experimental.statusOrFromValue(endpoints), {}, grpc.experimental.statusOrFromValue(SERVICE_CONFIG), '');
    }

    private fail(details: string): void {
      if (this.destroyed) return;
      this.listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details }), {}, grpc.experimental.statusOrFromValue(SERVICE_CONFIG), details);
    }
  }

  grpc.experimental.registerResolver(scheme, FulcrumResolver);
}
