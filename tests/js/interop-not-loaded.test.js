// Without `import 'bnwasm/interop'` the converter methods exist but say which
// import brings them: the core entry carries none of the converters.
import { createNetwork } from 'bnwasm';

test('toONNX, toSafetensors and toTfjsLayers name the import they need', async () => {
  const net = await createNetwork({ inputSize: 2, layers: [{ type: 'dense', units: 2 }] });
  for (const method of ['toONNX', 'toSafetensors', 'toTfjsLayers']) {
    expect(() => net[method]()).toThrow(
      expect.objectContaining({
        name: 'BnwasmError',
        code: 'BNWASM_INTEROP_NOT_LOADED',
        message: expect.stringContaining(`${method}(): the interop converters are not loaded; add \`import 'bnwasm/interop'\``),
      }),
    );
  }
  net.dispose();
});
