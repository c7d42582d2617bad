/**
 * Property-test budgets. Under CI every parser sees at least 100k random inputs (issue 2);
 * locally a smaller run keeps `make test` quick. SHOAL_FUZZ_RUNS overrides both.
 */
export const FUZZ_RUNS = Number(process.env['SHOAL_FUZZ_RUNS'] ?? (process.env['CI'] === 'true' ? 100_000 : 10_000));
/** Round-trip properties build structured input: fewer runs find as much. */
export const PROPERTY_RUNS = Math.max(1_000, Math.floor(FUZZ_RUNS / 10));
