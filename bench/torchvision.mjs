// torchvision's resnet18 and mobilenet_v2 (weights=None, num_classes=10, 3x32x32) in the
// benchmark (scripts/bench.mjs --model torchvision): what every engine of that table shares.
// The models come from the parity test's generator (scripts/pytorch/torchvision-fixtures.mjs:
// make_torchvision_fixtures.py, deterministic, cached under build/torchvision/): the config torch.fx
// traced with its state (M.json, M-initial.safetensors) for training, and the torch.onnx.export file
// ONNX_FILE for single-image predict in bnwasm (importONNX) and onnxruntime-web alike.

export const TORCHVISION_MODELS = ['resnet18', 'mobilenet_v2'];
export const TRAIN_BATCH = 32;
// The same optimizer in bnwasm and PyTorch (bench_torchvision.py): SGD with momentum 0.9, a
// learning rate small enough that random labels do not diverge.
export const OPTIMIZER = { type: 'sgd', learningRate: 1e-3, momentum: 0.9 };
// The inference export: opset 17, batch norm folded into the convolutions (torch.onnx.export's default).
export const ONNX_FILE = (model) => `${model}-opset17-folded.onnx`;

/** n images of 3x32x32 of standard normal values, the same for a seed (xorshift32 + Box-Muller). */
export function randomImages(n, seed) {
  const out = new Float32Array(n * 3 * 32 * 32);
  let s = (seed * 2654435761) >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}
