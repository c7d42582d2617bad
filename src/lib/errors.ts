/**
 * The error catalogue (CONVENTIONS.md §3, after undici): one class per failure, each with a
 * stable `code` that callers and the API switch on, a `name`, and an optional `cause`.
 * Codecs do not throw; these are for the layers above them. Add new failures here, never
 * ad-hoc `new Error()` in src/.
 */
export class ShoalError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration value or argument that cannot be used. */
export class InvalidArgumentError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARGUMENT', message, options);
  }
}

/** A bounded table, queue or buffer is full and refused the new entry. */
export class CapacityError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CAPACITY', message, options);
  }
}

/** An operation on something already closed or destroyed. */
export class ClosedError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CLOSED', message, options);
  }
}

/** The VTEP could not open or use its UDP socket. */
export class VtepSocketError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_VTEP_SOCKET', message, options);
  }
}

/** No neighbour answered ARP for an address within the retry budget. */
export class HostUnreachableError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_HOST_UNREACHABLE', message, options);
  }
}

/** A request (ping, probe, connect) got no answer in time. */
export class TimeoutError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TIMEOUT', message, options);
  }
}

/** A gossip peer's stream was malformed, spoke incompatible protocol versions, or answered with an error. */
export class GossipProtocolError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GOSSIP_PROTOCOL', message, options);
  }
}

/** Joining a gossip cluster failed: no seed answered a push/pull. */
export class GossipJoinError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GOSSIP_JOIN', message, options);
  }
}

/**
 * TCP connection failures carry Node's own codes (not ERR_*), so code written for net.Socket,
 * http and stream.pipeline treats a userspace connection's errors exactly like a kernel one's.
 */
export class ConnectionRefusedError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ECONNREFUSED', message, options);
  }
}

/** The peer reset the connection (RST), RFC 9293 §3.10.7.4. */
export class ConnectionResetError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ECONNRESET', message, options);
  }
}

/** Retransmissions (or keepalive probes) went unanswered until the connection gave up. */
export class ConnectionTimedOutError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ETIMEDOUT', message, options);
  }
}

/** The gossip transport could not bind or use its UDP/TCP port. */
export class GossipSocketError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GOSSIP_SOCKET', message, options);
  }
}

/** The routing mesh found no healthy endpoint for a service (Envoy's `upstream_cx_none_healthy`). */
export class MeshNoHealthyUpstreamError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MESH_NO_HEALTHY_UPSTREAM', message, options);
  }
}

/** A catalog file (compose/*.yaml) that cannot be used: the message names the field and the fix. */
export class CatalogError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CATALOG_INVALID', message, options);
  }
}

/**
 * Cluster control-plane failures (issue 7). Each maps to the HTTP status dockerd gives the
 * swarmkit gRPC code of the same name (spec docker-api-swarm.md §2.3).
 */
/** The object (node, service, task…) does not exist: NotFound, 404. */
export class NotFoundError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NOT_FOUND', message, options);
  }
}

/** The request conflicts with the current state and cannot apply to it: FailedPrecondition, 400. */
export class FailedPreconditionError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FAILED_PRECONDITION', message, options);
  }
}

/** This node cannot serve the request in its current role (not a manager, not in a swarm): Unavailable, 503. */
export class UnavailableError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_UNAVAILABLE', message, options);
  }
}

/** The caller presented no valid node certificate or join token: Unauthenticated, 401. */
export class UnauthenticatedError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_UNAUTHENTICATED', message, options);
  }
}

/** The caller's certificate is valid but its role may not make this call: PermissionDenied, 403. */
export class PermissionDeniedError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PERMISSION_DENIED', message, options);
  }
}

/** A write carried a stale object version (`?version=`): swarmkit's "update out of sequence", 500 as dockerd answers it. */
export class OutOfSequenceError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OUT_OF_SEQUENCE', message, options);
  }
}

/** The name or port is taken by another object: AlreadyExists, 409 (`docker service create` with a used name). */
export class ConflictError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFLICT', message, options);
  }
}

/** The cluster store could not read or durably write its files. */
export class StoreError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE', message, options);
  }
}

/** The embedded DNS server could not bind or use its UDP or TCP socket (port 53 needs privilege, say). */
export class DnsSocketError extends ShoalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DNS_SOCKET', message, options);
  }
}

/**
 * The HTTP status for an error of the catalogue, as dockerd maps swarmkit's gRPC codes
 * (shared/specs/docker-api-swarm.md §2.3). Anything that is not a ShoalError is a 500.
 * One table for every HTTP surface: the Docker API and the managers' port 2377.
 */
export function httpStatusOf(error: unknown): number {
  switch (error instanceof ShoalError ? error.code : undefined) {
    case 'ERR_INVALID_ARGUMENT':
    case 'ERR_FAILED_PRECONDITION':
      return 400;
    case 'ERR_UNAUTHENTICATED':
      return 401;
    case 'ERR_PERMISSION_DENIED':
      return 403;
    case 'ERR_NOT_FOUND':
      return 404;
    case 'ERR_CONFLICT':
      return 409;
    case 'ERR_UNAVAILABLE':
    case 'ERR_CAPACITY':
      return 503;
    default:
      return 500;
  }
}
