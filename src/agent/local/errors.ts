/**
 * Why the agent's local state refused a request. Each class has a fixed `name`; the HTTP edge maps
 * them to Consul's status codes (`UnknownServiceError` and `UnknownCheckError` → 404, the others
 * → 400) and answers with the message as is.
 */

/** A service or check definition Consul would refuse (the message is Consul's wording). */
export class DefinitionError extends Error {
  override readonly name = 'DefinitionError';
}

/** No local service has this ID. */
export class UnknownServiceError extends Error {
  override readonly name = 'UnknownServiceError';
  readonly serviceId: string;
  constructor(serviceId: string) {
    super(
      `Unknown service ID ${JSON.stringify(serviceId)}. Ensure that the service ID is passed, not the service name.`,
    );
    this.serviceId = serviceId;
  }
}

/** No local check has this ID. */
export class UnknownCheckError extends Error {
  override readonly name = 'UnknownCheckError';
  readonly checkId: string;
  constructor(checkId: string) {
    super(
      `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`,
    );
    this.checkId = checkId;
  }
}

/** `pass`/`warn`/`fail`/`update` on a check that is not a TTL check. */
export class NotTtlCheckError extends Error {
  override readonly name = 'NotTtlCheckError';
  readonly checkId: string;
  constructor(checkId: string) {
    super(`CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    this.checkId = checkId;
  }
}
