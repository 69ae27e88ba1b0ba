#!/usr/bin/env node
// npm start: the main job on an embedded default. Trains the default network
// on Fashion-MNIST in Node and reports single-example test accuracy.
await import('./train.mjs');
