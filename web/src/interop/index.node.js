// bnwasm/interop for Node.js (the "node" export condition): the Node platform first, as
// bnwasm's own Node entry installs it, then the converters.
import '../platform.node.js';

export * from './index.js';
