// bnwasm/interop's declarations: the docs/interop.md usage compiles, misuse does not.
import { createNetwork, ModelFormatError, type Network } from 'bnwasm';
import { importONNX, importTfjsLayers, loadSafetensors, toONNX } from 'bnwasm/interop';

export async function interopTour(bytes: Uint8Array): Promise<number> {
  const net: Network = await importONNX(bytes, { optimizer: { type: 'sgd', learningRate: 0.01 }, runningVariance: 'unbiased' });
  const onnx: Uint8Array = net.toONNX({ opset: 17, fold: true });
  const same: Uint8Array = toONNX(net);
  const st: Uint8Array = net.toSafetensors();
  const back = await loadSafetensors(st, net.config);
  const { modelJson, weightData } = net.toTfjsLayers();
  const tfjs = await importTfjsLayers(modelJson, weightData, { loss: 'softmaxCrossEntropy' });
  // @ts-expect-error: opset is a number
  net.toONNX({ opset: '15' });
  // @ts-expect-error: 'crossEntropy' is not a loss
  await importONNX(bytes, { loss: 'crossEntropy' });
  const other = await createNetwork({ inputSize: 2, layers: [{ type: 'relu' }] });
  for (const n of [net, back, tfjs, other]) n.dispose();
  return onnx.length + same.length;
}

// An ONNX refusal's reason, op and node (docs/interop.md lists the reasons per op).
export async function whyRefused(bytes: Uint8Array): Promise<string | undefined> {
  try {
    (await importONNX(bytes)).dispose();
    return undefined;
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw e;
    const where: string | undefined = e.op === undefined ? undefined : `${e.op} node '${e.node}'`;
    // @ts-expect-error: reason is read-only
    e.reason = 'other';
    return `${e.reason} ${where ?? ''}`;
  }
}
