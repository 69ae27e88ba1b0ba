// Injected by the harness's proxy (proxy.mjs) as the first script of every HTML page, in every
// engine: classic WebDriver (WebKit) reports no console or page errors, so the page records its
// own. window.__bnwasmHarness: errors (uncaught errors, unhandled rejections, console.error,
// resources that failed to load, Content-Security-Policy violations), env() and resources().
(() => {
  const errors = [];
  const text = (value) => {
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    if (typeof value === 'string') return value;
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  };
  // Capture phase: a <script> or <link> that fails to load fires a non-bubbling error event.
  addEventListener(
    'error',
    (event) => {
      const element = event.target;
      if (element && element !== window && (element.src || element.href)) errors.push(`failed to load <${element.localName}> ${element.src || element.href}`);
      else errors.push(`uncaught: ${event.message} (${event.filename}:${event.lineno})`);
    },
    true,
  );
  addEventListener('unhandledrejection', (event) => errors.push(`unhandled rejection: ${text(event.reason)}`));
  addEventListener('securitypolicyviolation', (event) => errors.push(`Content-Security-Policy blocked ${event.blockedURI} (${event.violatedDirective})`));
  const consoleError = console.error;
  console.error = function (...args) {
    errors.push(`console.error: ${args.map(text).join(' ')}`);
    return consoleError.apply(this, args);
  };
  performance.setResourceTimingBufferSize?.(100000);
  window.__bnwasmHarness = {
    errors,
    // crossOriginIsolated alone is not enough: WebKitGTK reports true under COOP/COEP yet has no
    // SharedArrayBuffer (unless JSC_useSharedArrayBuffer=1), so the feature is tested itself.
    env: () => ({ crossOriginIsolated: globalThis.crossOriginIsolated === true, sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined' }),
    resources: () => performance.getEntriesByType('resource').map((entry) => entry.name),
  };
})();
