// The trainer's worker thread in Node.js: the Node platform first, then the protocol.
import './platform.node.js';
import './worker.js';
