// The Figure 1 experiment and its presets live with the demo, which runs it live
// in a Web Worker: web/demo/experiments/figure1.js (no Node imports).
export * from '../../web/demo/experiments/figure1.js';
