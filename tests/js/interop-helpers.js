// Shared by the interop suites: the real engines' side of each check (onnx.checker from Debian's
// python3-onnx, tfjs-layers' loader and saver), written once.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** The largest |a[i] - b[i]|: the worst output difference the suites log. */
export const worstOf = (a, b) => a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i])), 0);

/**
 * Runs onnx.checker.check_model(full_check=True) on every file ({ name, bytes }); returns what
 * the script printed, "<count> checked", or throws with the checker's message.
 */
export function onnxCheckAll(files) {
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-onnx-'));
  try {
    for (const f of files) writeFileSync(join(dir, `${f.name}.onnx`), f.bytes);
    const script = [
      'import glob, sys, onnx',
      'paths = sorted(glob.glob(sys.argv[1] + "/*.onnx"))',
      'for p in paths:',
      '    onnx.checker.check_model(onnx.load(p), full_check=True)',
      'print(len(paths), "checked")',
    ].join('\n');
    return execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** tf.loadLayersModel of toTfjsLayers()'s { modelJson, weightData }, from memory. */
export const loadInTfjs = ({ modelJson, weightData }) =>
  tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest.flatMap((g) => g.weights), weightData }));

/** A tfjs-layers model saved as model.json's object and its weights.bin bytes. */
export async function artifactsOf(model) {
  let artifacts;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return {
    modelJson: { format: artifacts.format, modelTopology: artifacts.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }] },
    weightData: artifacts.weightData,
  };
}
