// Node module hooks for the tests: every `orchestrator:stage/...` import
// resolves to the test host (testing/host.js).
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('orchestrator:stage/')) {
    return { url: new URL('./host.js', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
