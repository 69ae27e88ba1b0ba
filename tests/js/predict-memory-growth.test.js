// predict() on the single-thread module when its first call grows the wasm memory: a 3x3
// convolution's Winograd weights (16 x filters x channels floats) are made on the first
// inference, and growing the memory detaches every view of the old buffer, so predict must take
// its output view again after the call (it threw "Cannot perform %TypedArray%.prototype.set on a
// detached ArrayBuffer" on torchvision's resnet18 imported from ONNX). The threaded module's
// memory is a SharedArrayBuffer, which growing never detaches.
import { configure, createNetwork, memoryUsage, threadCount } from 'bnwasm';

configure({ threads: 1 });

test('the first predict grows the memory and still returns the batch predict', async () => {
  expect(await threadCount()).toBe(1);
  // 512 -> 512 channels: 16 MiB of Winograd weights, more than the heap has spare.
  const config = { inputShape: [512, 2, 2], layers: [{ type: 'conv2d', filters: 512, kernelSize: 3, padding: 1 }, { type: 'flatten' }, { type: 'dense', units: 3 }], seed: 3 };
  const net = await createNetwork(config);
  try {
    const x = Float32Array.from({ length: net.inputSize }, (_, i) => Math.sin(i));
    const before = (await memoryUsage()).wasmMemoryBytes;
    const out = net.predict(x, new Float32Array(3));
    expect((await memoryUsage()).wasmMemoryBytes).toBeGreaterThan(before); // the case this test is about
    expect(Array.from(out)).toEqual(Array.from(net.predictBatch(x)));
    expect(Array.from(net.predict(x))).toEqual(Array.from(out));
  } finally {
    net.dispose();
  }
});
