// The Figure 1 experiment and its presets live with the demo, which runs it live
// in a Web Worker: web/demo/experiments/figure1.js (no Node imports).
// Node: install the Node platform before the demo's code imports the browser entry.
import '../../web/src/platform.node.js';

export * from '../../web/demo/experiments/figure1.js';
