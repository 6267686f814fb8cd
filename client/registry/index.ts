// The service registry on the Fulcrum client: self-registration, discovery, a grpc-js resolver and the
// registrar sidecar (docs/registry.md).
export {
  decodeInstance,
  Discovery,
  DISCOVERY_CHANGES_QUEUED_MAX,
  encodeInstance,
  Registration,
  REGISTRATION_TTL_SECONDS_DEFAULT,
  Registry,
  REGISTRY_PREFIX_DEFAULT,
  type Instance,
  type RegisterOptions,
  type RegistryOptions,
  type ServiceChange,
} from './registry.js';
export { registerFulcrumResolver, RESOLVER_SCHEME_DEFAULT, type ResolverOptions } from './resolver.js';
export { checkHealth, parseRegistrarArgs, REGISTRAR_INTERVAL_MS_DEFAULT, runRegistrar, runRegistrarCommand, type Registrar, type RegistrarOptions } from './registrar.js';
