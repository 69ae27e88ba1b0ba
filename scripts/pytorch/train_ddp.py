#!/usr/bin/python3
"""Train bnwasm's default Fashion-MNIST network on PyTorch's distributed engine, then
export it for bnwasm (ONNX and safetensors).

    torchrun --nproc_per_node=2 scripts/pytorch/train_ddp.py --out build/ddp
    node scripts/pytorch/import_ddp.mjs build/ddp

DistributedDataParallel with the gloo backend (CPU); every rank reads its shard of the
training set through a DistributedSampler and gradients are averaged across ranks at
each step. Batch norm: on GPUs the script converts BatchNorm1d to SyncBatchNorm, so the
batch statistics are those of the global batch; PyTorch 1.13's SyncBatchNorm works only
on CUDA ("SyncBatchNorm layers only work with GPU modules"), so on CPU each rank
normalizes with the statistics of its own batch (--batch-size rows) and DDP broadcasts
rank 0's running averages to the others at every forward pass. The exported running
statistics are therefore rank 0's.

The network is fashionMnistConfig (scripts/fashion-mnist.mjs): 784-256-BN-ReLU-256-BN-
ReLU-10, the dense layers before batch norm without bias, Adam 1e-3. nn.Sequential
indices are the config's layer indices, so the state_dict names are the ones
loadSafetensors expects. PyTorch's momentum 0.1 is bnwasm's (and ONNX's) 0.9.

Rank 0 writes to --out: model.onnx (opset 15), model.safetensors, config.json (the
bnwasm config), reference.json (PyTorch's eval accuracy on the test set) and
test-probabilities.f64 (float64 softmax outputs on the test set, computed from the
float32 weights, for the output comparison).

The data are Debian's dataset-fashion-mnist IDX files (gzip), read with the standard
library; FASHION_MNIST_DIR overrides /usr/share/datasets/fashion-mnist.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_roundtrip import write_safetensors  # noqa: E402

DATA_DIR = os.environ.get('FASHION_MNIST_DIR', '/usr/share/datasets/fashion-mnist')


def read_idx(name):
    with gzip.open(os.path.join(DATA_DIR, name), 'rb') as f:
        data = f.read()
    magic = struct.unpack('>I', data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack('>' + 'I' * dims, data[4:4 + 4 * dims])
    t = torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8)
    return t.reshape(shape)


def load(split, limit):
    prefix = 'train' if split == 'train' else 't10k'
    x = read_idx(f'{prefix}-images-idx3-ubyte.gz')[:limit].reshape(-1, 784).float() / 255
    y = read_idx(f'{prefix}-labels-idx1-ubyte.gz')[:limit].long()
    return x, y


def fashion_mnist_network():
    """fashionMnistConfig as an nn.Sequential, one module per config layer."""
    return nn.Sequential(
        nn.Linear(784, 256, bias=False), nn.BatchNorm1d(256, momentum=0.1, eps=1e-5), nn.ReLU(),
        nn.Linear(256, 256, bias=False), nn.BatchNorm1d(256, momentum=0.1, eps=1e-5), nn.ReLU(),
        nn.Linear(256, 10))


BNWASM_CONFIG = {
    'inputSize': 784,
    'layers': [
        {'type': 'dense', 'units': 256, 'useBias': False},
        {'type': 'batchNorm', 'momentum': 0.9, 'epsilon': 1e-5},
        {'type': 'relu'},
        {'type': 'dense', 'units': 256, 'useBias': False},
        {'type': 'batchNorm', 'momentum': 0.9, 'epsilon': 1e-5},
        {'type': 'relu'},
        {'type': 'dense', 'units': 10},
    ],
    'loss': 'softmaxCrossEntropy',
    'optimizer': {'type': 'adam', 'learningRate': 1e-3},
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--steps', type=int, default=2000, help='optimizer steps (each rank one batch per step)')
    p.add_argument('--batch-size', type=int, default=32, help='rows per rank per step')
    p.add_argument('--train-limit', type=int, default=60000)
    p.add_argument('--test-limit', type=int, default=10000)
    p.add_argument('--seed', type=int, default=1)
    args = p.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group('nccl' if cuda else 'gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = fashion_mnist_network()
    if cuda:
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device.index])
    else:
        device = torch.device('cpu')
        ddp = DistributedDataParallel(model)
    if rank == 0:
        print(f'ddp: {world} processes, backend {dist.get_backend()}, batch norm: '
              + ('SyncBatchNorm (global batch statistics)' if cuda else
                 'per-rank batch statistics (SyncBatchNorm needs CUDA in PyTorch 1.13), running averages from rank 0'),
              flush=True)

    x, y = load('train', args.train_limit)
    dataset = torch.utils.data.TensorDataset(x, y)
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                                              seed=args.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    step, epoch, start = 0, 0, time.time()
    ddp.train()
    while step < args.steps:
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(ddp(xb.to(device)), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if rank == 0 and (step % 100 == 0 or step == args.steps):
                print(f'step {step}/{args.steps} epoch {epoch} loss {loss.item():.4f}', flush=True)
            if step == args.steps:
                break
        epoch += 1

    if rank == 0:
        model = model.cpu()
        if cuda:  # back to plain BatchNorm1d for the export
            model = revert_sync_batchnorm(model)
        model.eval()
        xt, yt = load('test', args.test_limit)
        with torch.no_grad():
            accuracy = (model(xt).argmax(1) == yt).double().mean().item()
            probabilities = torch.softmax(model.double()(xt.double()), dim=1)
        model.float()
        os.makedirs(args.out, exist_ok=True)
        torch.onnx.export(model, xt[:2], os.path.join(args.out, 'model.onnx'), opset_version=15,
                          input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
        write_safetensors(os.path.join(args.out, 'model.safetensors'), model.state_dict())
        with open(os.path.join(args.out, 'config.json'), 'w') as f:
            json.dump(BNWASM_CONFIG, f, indent=1)
        probabilities.numpy().astype('<f8').tofile(os.path.join(args.out, 'test-probabilities.f64'))
        with open(os.path.join(args.out, 'reference.json'), 'w') as f:
            json.dump({'accuracy': accuracy, 'testCount': len(yt), 'steps': step, 'processes': world,
                       'batchSizePerProcess': args.batch_size, 'trainLimit': len(x), 'torch': torch.__version__,
                       'seconds': time.time() - start}, f, indent=1)
        print(f'PyTorch eval accuracy {100 * accuracy:.2f}% on {len(yt)} test examples; wrote {args.out}', flush=True)
    dist.barrier()
    dist.destroy_process_group()


def revert_sync_batchnorm(module):
    """SyncBatchNorm -> BatchNorm1d with the same parameters and buffers (for export)."""
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = nn.BatchNorm1d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.load_state_dict(module.state_dict())
    for name, child in module.named_children():
        out.add_module(name, revert_sync_batchnorm(child))
    return out


if __name__ == '__main__':
    main()
