/**
 * Built-in task images: names a catalog may give as `image:` and the command that runs each.
 * A built-in image runs this very installation's code with the current Node: from the
 * TypeScript sources through tsx when the agent itself runs from sources (tests, dev), from
 * dist/ when it runs built.
 */
import { fileURLToPath } from 'node:url';

const IMAGES: Readonly<Record<string, string>> = {
  'shoal/whoami': 'whoami',
};

export function builtinImages(): string[] {
  return Object.keys(IMAGES);
}

/** The argv that runs built-in `image`, or undefined when there is no such image. */
export function builtinImageCommand(image: string): string[] | undefined {
  const name = IMAGES[image];
  if (!name) return undefined;
  const fromSources = import.meta.url.endsWith('.ts');
  const file = fileURLToPath(new URL(`./${name}.${fromSources ? 'ts' : 'js'}`, import.meta.url));
  // tsx resolved from here, so the task runs whatever its working directory.
  return fromSources ? [process.execPath, '--import', import.meta.resolve('tsx'), file] : [process.execPath, file];
}
