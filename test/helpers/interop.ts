/**
 * Interop tests need root and real peer tools. Locally a missing prerequisite skips the suite
 * with its reason; under CI (CI=true) it fails instead, so a CI run can never pass by skipping.
 */
import { execFileSync } from 'node:child_process';
import { describe, it } from 'vitest';

export function missingPrerequisite(tools: readonly string[], options: { root?: boolean } = {}): string | undefined {
  if ((options.root ?? true) && process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool} on PATH`;
    }
  }
  return undefined;
}

/** describe() that runs only when `tools` (and root) are present; see the module comment. */
export function describeInterop(name: string, tools: readonly string[], body: () => void, options: { root?: boolean } = {}): void {
  const missing = missingPrerequisite(tools, options);
  if (missing && process.env['CI'] === 'true') {
    describe(name, () => {
      it('has its prerequisites under CI', () => {
        throw new Error(`Interop prerequisite missing under CI: ${missing}`);
      });
    });
    return;
  }
  describe.skipIf(missing !== undefined)(missing ? `${name} (skipped: ${missing})` : name, body);
}
