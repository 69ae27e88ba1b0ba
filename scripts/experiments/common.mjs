// The experiments' shared helpers live with the demo, which runs the Figure 1
// experiment in the browser: web/demo/experiments/common.js (no Node imports).
export * from '../../web/demo/experiments/common.js';
