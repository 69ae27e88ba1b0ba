// bnwasm for Node.js (the "node" export condition): the Node platform first, then the API.
import './platform.node.js';

export * from './index.js';
