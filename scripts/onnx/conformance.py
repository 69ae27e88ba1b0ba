#!/usr/bin/python3
"""ONNX's own operator conformance cases, one-op models for importONNX.

For every op importONNX reads, runs the generators of Debian's python3-onnx
(onnx.backend.test.case.node, the cases of ONNX's backend test suite) and
writes each case as a one-op model: the node's first input (the activation)
stays the graph's input, every other input (weights, shapes, axes, bounds:
the case gives each one's value) becomes an initializer. Next to the models,
cases.json holds each case's input and expected outputs and a hash of all of
it; the committed manifest (tests/fixtures/onnx-conformance.json) holds the
same hashes, so a changed generator (another onnx or numpy) is noticed.

A case made for an opset below 13 (importONNX reads 13 to 17) is moved to
opset 13 when the op's definition there is the same version (Conv-11 is still
Conv at opset 13); otherwise it keeps its opset (Dropout-10 with its 'ratio'
attribute) and importONNX refuses it for that. Cases that expand an op into
its function body (`*_expanded`) are not one-op models and are left out.

Every model written passes onnx.checker.check_model(full_check=True).

    /usr/bin/python3 scripts/onnx/conformance.py OUT_DIR [--write-manifest PATH]
"""
import base64
import hashlib
import importlib
import json
import os
import sys

import numpy as np
import onnx
import onnx.backend.test.case.node as node_cases
from onnx import helper, numpy_helper

# Each op importONNX reads and the generator module that holds its cases
# (onnx 1.12 names the files; importing them all fails under numpy >= 1.24).
OPS = {
    'Add': 'add',
    'AveragePool': 'averagepool',
    'BatchNormalization': 'batchnorm',
    'Clip': 'clip',
    'Concat': 'concat',
    'Constant': 'constant',
    'Conv': 'conv',
    'Dropout': 'dropout',
    'Flatten': 'flatten',
    'Gemm': 'gemm',
    'GlobalAveragePool': 'globalaveragepool',
    'GlobalMaxPool': 'globalmaxpool',
    'Identity': 'identity',
    'LogSoftmax': 'logsoftmax',
    'MatMul': 'matmul',
    'MaxPool': 'maxpool',
    'Pad': 'pad',
    'Relu': 'relu',
    'Reshape': 'reshape',
    'Sigmoid': 'sigmoid',
    'Softmax': 'softmax',
    'Squeeze': 'squeeze',
    'Sum': 'sum',
    'Tanh': 'tanh',
    'Transpose': 'transpose',
    'Unsqueeze': 'unsqueeze',
}
MIN_OPSET = 13


def collect():
    """Every non-expanded case of OPS, in the generators' order."""
    node_cases._TargetOpType = None  # keep every op's cases; filtered below
    for module in sorted(set(OPS.values())):
        importlib.import_module(f'onnx.backend.test.case.node.{module}')
    return [c for c in node_cases._NodeTestCases
            if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in OPS
            and not c.name.endswith('_expanded')]


def tensor_json(array):
    """{dtype, dims, data}: the raw little-endian bytes, base64 (exact, NaN and all)."""
    a = np.ascontiguousarray(array)
    data = a.astype(a.dtype.newbyteorder('<')).tobytes()
    return {'dtype': str(a.dtype), 'dims': list(a.shape), 'data': base64.b64encode(data).decode()}


def one_op_model(case):
    """The case's model with every input but the first made an initializer; its opset, moved up to 13 where the op is the same there."""
    src = case.model
    node = src.graph.node[0]
    inputs, outputs = case.data_sets[0]
    present = [name for name in node.input if name != '']
    # Scalars come as numpy scalars (Clip's bounds): 0-d tensors.
    values = {name: np.asarray(v) if isinstance(v, np.generic) else v for name, v in zip(present, inputs)}
    outputs = [np.asarray(o) if isinstance(o, np.generic) else o for o in outputs]
    opset = next(o.version for o in src.opset_import if o.domain in ('', 'ai.onnx'))
    moved_from = None
    if opset < MIN_OPSET:
        same = onnx.defs.get_schema(node.op_type, opset).since_version == onnx.defs.get_schema(node.op_type, MIN_OPSET).since_version
        if same:
            moved_from, opset = opset, MIN_OPSET
    activation = present[0] if present else None
    graph_inputs = [vi for vi in src.graph.input if vi.name == activation]
    initializers = []
    for name in present[1:]:
        v = values[name]
        if not isinstance(v, np.ndarray):
            raise ValueError(f'{case.name}: input {name} is not a tensor')
        initializers.append(numpy_helper.from_array(v, name))
    graph = helper.make_graph([node], case.name, graph_inputs, list(src.graph.output), initializer=initializers)
    model = helper.make_model_gen_version(graph, producer_name='bnwasm-conformance', opset_imports=[helper.make_opsetid('', opset)])
    onnx.checker.check_model(model, full_check=True)
    entry = {
        'name': case.name,
        'op': node.op_type,
        'opset': opset,
        'movedFromOpset': moved_from,
        'model': f'{case.name}.onnx',
        # A sequence or optional input (Identity's) has no tensor value to give.
        'input': tensor_json(values[activation]) if activation is not None and isinstance(values[activation], np.ndarray) else None,
        'outputs': [tensor_json(o) if isinstance(o, np.ndarray) else None for o in outputs],
    }
    return model.SerializeToString(), entry


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != '--write-manifest'):
        sys.exit(__doc__)
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    np.random.seed(0)  # each generator seeds itself too (np.random.seed(0) before every export)
    entries = []
    for case in collect():
        data, entry = one_op_model(case)
        with open(os.path.join(out, entry['model']), 'wb') as f:
            f.write(data)
        entry['sha256'] = hashlib.sha256(data + json.dumps(entry, sort_keys=True).encode()).hexdigest()
        entries.append(entry)
    generator = {'onnx': onnx.__version__, 'numpy': np.__version__}
    with open(os.path.join(out, 'cases.json'), 'w') as f:
        json.dump({'generator': generator, 'cases': entries}, f)
    if len(argv) == 4:
        manifest = {
            'about': 'ONNX conformance cases as one-op models (scripts/onnx/conformance.py); sha256 of each model and its data',
            'generator': generator,
            'cases': {e['name']: {'op': e['op'], 'sha256': e['sha256']} for e in entries},
        }
        with open(argv[3], 'w') as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write('\n')
    counts = {}
    for e in entries:
        counts[e['op']] = counts.get(e['op'], 0) + 1
    print(f'{len(entries)} cases of {len(counts)} ops written to {out}', file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv)
