/**
 * Built-in task images: names a service (or a catalog) may give as its image, and the command
 * that runs each. A built-in image runs this very installation's code with the current Node:
 * from the TypeScript sources through tsx when the agent itself runs from sources (tests, dev),
 * from dist/ when it runs built.
 *
 * - `shoal/whoami`: the tiny HTTP app of the demos (whoami.ts);
 * - `shoal/ping`: `ping HOST` like the seed's `alpine ping`, over TCP instead of ICMP (ping.ts).
 *
 * A reference may carry a tag or a digest, as a Docker image reference does
 * (`shoal/whoami:latest`, `shoal/ping@sha256:…`): there is one version of each, so both are
 * accepted and ignored.
 */
import { fileURLToPath } from 'node:url';

const IMAGES: Readonly<Record<string, string>> = {
  'shoal/whoami': 'whoami',
  'shoal/ping': 'ping',
};

export function builtinImages(): string[] {
  return Object.keys(IMAGES);
}

/** The repository part of an image reference: `@digest` and `:tag` stripped (a `:` before the last `/` is a registry port). */
export function imageName(reference: string): string {
  const at = reference.indexOf('@');
  const noDigest = at === -1 ? reference : reference.slice(0, at);
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/** The argv that runs built-in `image` (tag and digest ignored), or undefined when there is no such image. */
export function builtinImageCommand(image: string): string[] | undefined {
  const name = IMAGES[imageName(image)];
  if (!name) return undefined;
  const fromSources = import.meta.url.endsWith('.ts');
  const file = fileURLToPath(new URL(`./${name}.${fromSources ? 'ts' : 'js'}`, import.meta.url));
  // tsx resolved from here, so the task runs whatever its working directory.
  return fromSources ? [process.execPath, '--import', import.meta.resolve('tsx'), file] : [process.execPath, file];
}
