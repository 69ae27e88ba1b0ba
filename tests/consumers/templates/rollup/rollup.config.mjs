// The Rollup config the README documents for bnwasm: resolve node_modules, and build the
// trainer's worker as a second entry named worker.js beside the page's bundle.
import { nodeResolve } from '@rollup/plugin-node-resolve';

export default {
  input: { main: 'src/main.js', worker: 'bnwasm/worker' },
  output: { dir: 'dist', format: 'es' },
  plugins: [nodeResolve()],
};
