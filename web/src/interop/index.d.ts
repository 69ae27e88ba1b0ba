// Type declarations for bnwasm/interop. Importing the module also enables
// Network.toONNX(), toSafetensors() and toTfjsLayers().
import type { AdamConfig, Network, NetworkConfig, SgdConfig, TfjsModelJson } from '../index.js';

export interface ImportOptions {
  /** @default 'softmaxCrossEntropy' when the graph ends in a softmax, 'meanSquaredError' otherwise */
  loss?: 'softmaxCrossEntropy' | 'meanSquaredError';
  /** For fine-tuning the imported network. @default { type: 'adam', learningRate: 1e-3 } */
  optimizer?: SgdConfig | AdamConfig;
  /** The estimator batch norm feeds into the running variance while fine-tuning. */
  runningVariance?: 'unbiased' | 'biased';
}

/** Same as net.toONNX(options). */
export declare function toONNX(net: Network, options?: { opset?: number; fold?: boolean }): Uint8Array;
/**
 * A trainable Network from ONNX written by torch.onnx.export (or toONNX): a graph of Gemm or
 * MatMul(+Add), Conv (grouped, dilated, any padding), BatchNormalization (per feature, or per
 * channel of an image), MaxPool, AveragePool (pads, ceil_mode, count_include_pad; a Pad of zeros
 * before it), GlobalAveragePool, GlobalMaxPool, Relu/Clip (relu6, clip)/Sigmoid/Tanh, Add/Sum of
 * activations, Concat, Softmax/LogSoftmax (last), Flatten/Reshape, Dropout, Identity; opsets 13 to
 * 17; a float, double or float16 input (computed in float32). A [N, C, H, W] input becomes the
 * network's inputShape. runningVariance defaults to 'unbiased' (PyTorch). A refusal is a
 * ModelFormatError whose `reason` docs/interop.md lists per op.
 */
export declare function importONNX(bytes: Uint8Array | ArrayBuffer, options?: ImportOptions): Promise<Network>;
/** Same as net.toSafetensors(). */
export declare function toSafetensors(net: Network): Uint8Array;
/**
 * A Network with the config and the state_dict tensors of a safetensors file (N.weight,
 * N.running_mean, ...), N the module index in the nn.Sequential built from the config (one
 * more nn.Flatten where bnwasm flattens an image implicitly before a dense layer).
 */
export declare function loadSafetensors(bytes: Uint8Array | ArrayBuffer, config: NetworkConfig): Promise<Network>;
/** Same as net.toTfjsLayers(). */
export declare function toTfjsLayers(net: Network): { modelJson: TfjsModelJson; weightData: ArrayBuffer };
/**
 * A trainable Network from a tfjs-layers Sequential of Dense, BatchNormalization, activations,
 * Conv2D (ZeroPadding2D before it), MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
 * Flatten and Permute; weights matched by name. A channels_last image model becomes a network
 * whose inputShape is [C, H, W]: give it NCHW examples. runningVariance defaults to 'biased' (Keras).
 */
export declare function importTfjsLayers(
  modelJson: TfjsModelJson | string,
  weightData: ArrayBuffer | Uint8Array,
  options?: ImportOptions,
): Promise<Network>;
