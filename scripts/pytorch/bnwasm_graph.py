"""A PyTorch nn.Module as a bnwasm network config, by tracing it with torch.fx.

    config, tensors = to_bnwasm(module, input_shape)

Each traced call becomes a bnwasm layer wired to its inputs by name. A module with parameters
or buffers (nn.Conv2d, nn.BatchNorm2d, nn.Linear) keeps its dotted path as the layer's name
('layer1.0.conv1'), so the network's safetensors carry the module's own state_dict keys; other
calls (a ReLU module called twice, an addition) take the traced node's name. `tensors` lists,
per layer, its tensors as (bnwasm name, state_dict key).

Read: nn.Conv2d (groups, dilation, zeros padding: numbers, 'same', 'valid'), nn.BatchNorm1d/2d,
nn.Linear, nn.ReLU (module, F.relu, torch.relu), nn.ReLU6 (and F.relu6), nn.Hardtanh (and
F.hardtanh) as clip, nn.Sigmoid, nn.Tanh, nn.Dropout as dropout (its rate p), nn.MaxPool2d /
nn.AvgPool2d (padding, ceil_mode, count_include_pad; no dilation or divisor_override),
nn.AdaptiveAvgPool2d(1) / F.adaptive_avg_pool2d(x, 1) and nn.AdaptiveMaxPool2d(1) /
F.adaptive_max_pool2d(x, 1) as global pooling, torch.flatten / nn.Flatten, nn.Identity, and + of
two activations. That covers torchvision's resnet18 and mobilenet_v2. Anything else raises with
the node named.
"""

import operator

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

BN_TENSORS = [('gamma', 'weight'), ('beta', 'bias'), ('runningMean', 'running_mean'), ('runningVariance', 'running_var')]


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def to_bnwasm(module, input_shape, loss='softmaxCrossEntropy', optimizer=None, seed=1):
    traced = torch.fx.symbolic_trace(module)
    modules = dict(traced.named_modules())
    layers, tensors = [], []
    value = {}  # fx node -> the bnwasm layer name that computes it ('input' for the input)
    flat = {}  # fx node -> whether bnwasm holds it as flat features
    used_modules = set()

    def add(node, layer, name, inputs, node_tensors=(), is_flat=False):
        layer = dict(layer, name=name, inputs=inputs)
        layers.append(layer)
        tensors.append(list(node_tensors))
        value[node] = name
        flat[node] = is_flat

    def alias(node, source):
        value[node] = value[source]
        flat[node] = flat[source]

    for node in traced.graph.nodes:
        if node.op == 'placeholder':
            value[node] = 'input'
            flat[node] = len(input_shape) != 3
            continue
        if node.op == 'output':
            out = node.args[0]
            if value[out] != layers[-1]['name']:
                raise ValueError(f"the output '{out.name}' is not computed by the last layer")
            continue
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        inputs = [value[a] for a in args]
        x = args[0] if args else None
        if node.op == 'call_module':
            m = modules[node.target]
            has_state = any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
            if has_state and node.target in used_modules:
                raise ValueError(f"module '{node.target}' is called twice: bnwasm shares no weights between layers")
            used_modules.add(node.target)
            name = node.target if has_state else node.name
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != 'zeros':
                    raise ValueError(f"conv '{node.target}': padding_mode {m.padding_mode}")
                padding = m.padding if m.padding == 'same' else [0, 0] if m.padding == 'valid' else pair(m.padding)
                layer = {'type': 'conv2d', 'filters': m.out_channels, 'kernelSize': pair(m.kernel_size),
                         'stride': pair(m.stride), 'padding': padding, 'useBias': m.bias is not None}
                if pair(m.dilation) != [1, 1]:
                    layer['dilation'] = pair(m.dilation)
                if m.groups != 1:
                    layer['groups'] = m.groups
                names = [('weight', 'weight')] + ([('bias', 'bias')] if m.bias is not None else [])
                add(node, layer, name, inputs, [(b, f'{name}.{t}') for b, t in names])
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if not m.affine or not m.track_running_stats:
                    raise ValueError(f"batch norm '{node.target}' without affine or running statistics")
                layer = {'type': 'batchNorm', 'epsilon': m.eps, 'runningVariance': 'unbiased'}
                if m.momentum is None:
                    layer['statistics'] = 'cumulative'
                else:
                    layer['momentum'] = 1 - m.momentum  # bnwasm's momentum is the weight of the past
                add(node, layer, name, inputs, [(b, f'{name}.{t}') for b, t in BN_TENSORS], flat[x])
            elif isinstance(m, nn.Linear):
                layer = {'type': 'dense', 'units': m.out_features, 'useBias': m.bias is not None}
                names = [('weight', 'weight')] + ([('bias', 'bias')] if m.bias is not None else [])
                add(node, layer, name, inputs, [(b, f'{name}.{t}') for b, t in names], True)
            elif isinstance(m, (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh)):
                kind = {nn.ReLU: 'relu', nn.ReLU6: 'relu6', nn.Sigmoid: 'sigmoid', nn.Tanh: 'tanh'}[type(m)]
                add(node, {'type': kind}, name, inputs, (), flat[x])
            elif isinstance(m, nn.Hardtanh):  # after ReLU6, which is a Hardtanh(0, 6)
                add(node, {'type': 'clip', 'min': m.min_val, 'max': m.max_val}, name, inputs, (), flat[x])
            elif type(m) is nn.Dropout:
                add(node, {'type': 'dropout', 'rate': m.p}, name, inputs, (), flat[x])
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                add(node, pool_layer(node.target, m), name, inputs)
            elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                if pair(m.output_size) != [1, 1]:
                    raise ValueError(f"'{node.target}': only {type(m).__name__}(1) is read")
                kind = 'globalAvgPool' if isinstance(m, nn.AdaptiveAvgPool2d) else 'globalMaxPool'
                add(node, {'type': kind}, name, inputs, (), True)
            elif isinstance(m, nn.Flatten):
                flatten(node, x, name, inputs, add, alias, flat)
            elif isinstance(m, nn.Identity):
                alias(node, x)
            else:
                raise ValueError(f"module '{node.target}' ({type(m).__name__}) has no bnwasm layer")
        elif node.op == 'call_function' or node.op == 'call_method':
            fn = node.target
            if fn in (operator.add, torch.add, 'add', operator.iadd, 'add_'):
                if len(args) != 2 or len(node.args) != 2:
                    raise ValueError(f"'{node.name}': only the sum of two activations is read")
                add(node, {'type': 'add'}, node.name, inputs, (), flat[x])
            elif fn in (F.relu, torch.relu, 'relu'):
                add(node, {'type': 'relu'}, node.name, inputs, (), flat[x])
            elif fn is F.relu6:
                add(node, {'type': 'relu6'}, node.name, inputs, (), flat[x])
            elif fn is F.hardtanh:
                bounds = call_arguments(node, ['min_val', 'max_val'], [-1.0, 1.0])
                add(node, {'type': 'clip', 'min': bounds[0], 'max': bounds[1]}, node.name, inputs, (), flat[x])
            elif fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
                (size,) = call_arguments(node, ['output_size'], [None])
                if pair(size) != [1, 1]:
                    raise ValueError(f"'{node.name}': only {fn.__name__}(x, 1) is read")
                kind = 'globalAvgPool' if fn is F.adaptive_avg_pool2d else 'globalMaxPool'
                add(node, {'type': kind}, node.name, inputs, (), True)
            elif fn in (torch.flatten, 'flatten'):
                if tuple(node.args[1:]) != (1,):
                    raise ValueError(f"'{node.name}': only flatten(x, 1) is read")
                flatten(node, x, node.name, inputs, add, alias, flat)
            else:
                raise ValueError(f"'{node.name}' ({fn}) has no bnwasm layer")
        else:
            raise ValueError(f"'{node.name}': {node.op} is not read")
    config = {'inputShape': list(input_shape)} if len(input_shape) == 3 else {'inputSize': input_shape[0]}
    config.update(layers=tidy(layers), loss=loss, seed=seed)
    if optimizer is not None:
        config['optimizer'] = optimizer
    return config, tensors


def call_arguments(node, names, defaults):
    """The values of a traced call's arguments after the first (the activation), by position or keyword."""
    given = list(node.args[1:]) + [None] * len(names)
    return [node.kwargs.get(n, given[k] if given[k] is not None else d) for k, (n, d) in enumerate(zip(names, defaults))]


def pool_layer(target, m):
    """nn.MaxPool2d / nn.AvgPool2d as maxPool2d / avgPool2d, options only where they differ from the defaults."""
    if isinstance(m, nn.MaxPool2d) and (pair(m.dilation) != [1, 1] or m.return_indices):
        raise ValueError(f"pool '{target}' with dilation {m.dilation} or return_indices")
    if isinstance(m, nn.AvgPool2d) and m.divisor_override is not None:
        raise ValueError(f"pool '{target}' with divisor_override {m.divisor_override}")
    stride = m.kernel_size if m.stride is None else m.stride
    layer = {'type': 'maxPool2d' if isinstance(m, nn.MaxPool2d) else 'avgPool2d', 'poolSize': pair(m.kernel_size), 'stride': pair(stride)}
    if pair(m.padding) != [0, 0]:
        layer['padding'] = pair(m.padding)
    if m.ceil_mode:
        layer['ceilMode'] = True
    if isinstance(m, nn.AvgPool2d) and not m.count_include_pad:
        layer['countIncludePad'] = False
    return layer


def flatten(node, x, name, inputs, add, alias, flat):
    """A flatten of an image is a bnwasm flatten layer; of flat features (after globalAvgPool), nothing."""
    if flat[x]:
        alias(node, x)
    else:
        add(node, {'type': 'flatten'}, name, inputs, (), True)


def tidy(layers):
    """inputs only where a layer reads other than the one before it; names only where a later
    layer names them or where they are a module's (its state_dict keys)."""
    named = set()
    for i, layer in enumerate(layers):
        previous = 'input' if i == 0 else layers[i - 1]['name']
        if layer['inputs'] == [previous]:
            del layer['inputs']
        else:
            named.update(layer['inputs'])
    for layer in layers:
        keep = layer['name'] in named or layer['type'] in ('conv2d', 'batchNorm', 'dense')
        if not keep:
            del layer['name']
    return layers
