// bnwasm/interop: models in from and out to ONNX, PyTorch (safetensors) and
// TF.js layers. Importing this entry also registers net.toONNX(),
// net.toSafetensors() and net.toTfjsLayers() on every Network.
import { registerExporter } from '../exporters.js';
import { importONNX, toONNX } from './onnx.js';
import { loadSafetensors, toSafetensors } from './safetensors.js';
import { importTfjsLayers, toTfjsLayers } from './tfjs.js';

registerExporter('toONNX', toONNX);
registerExporter('toSafetensors', toSafetensors);
registerExporter('toTfjsLayers', toTfjsLayers);

export { importONNX, toONNX, loadSafetensors, toSafetensors, importTfjsLayers, toTfjsLayers };
