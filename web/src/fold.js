// Folding a batch norm into the dense layer before it, for inference:
// W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta,
// computed in float64. One definition for toInference() and the ONNX exporter.

/**
 * @param {Float32Array} weight (units, inputs) row-major
 * @param {Float32Array|undefined} bias (units), absent when the dense layer has none
 * @param {{gamma: Float32Array, beta: Float32Array, runningMean: Float32Array, runningVariance: Float32Array}} bn
 * @param {number} epsilon
 * @returns {{weight: Float32Array, bias: Float32Array}}
 */
export function foldDenseBatchNorm(weight, bias, bn, epsilon) {
  const units = bn.gamma.length;
  const inputs = weight.length / units;
  const folded = new Float32Array(weight.length);
  const foldedBias = new Float32Array(units);
  for (let u = 0; u < units; u++) {
    const scale = bn.gamma[u] / Math.sqrt(bn.runningVariance[u] + epsilon);
    for (let k = 0; k < inputs; k++) folded[u * inputs + k] = weight[u * inputs + k] * scale;
    foldedBias[u] = ((bias ? bias[u] : 0) - bn.runningMean[u]) * scale + bn.beta[u];
  }
  return { weight: folded, bias: foldedBias };
}
