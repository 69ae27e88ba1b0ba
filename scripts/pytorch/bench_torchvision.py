#!/usr/bin/python3
"""PyTorch's side of the torchvision benchmark (scripts/bench.mjs --model torchvision): training
images per second of torchvision's MODEL (weights=None, num_classes=10) at 3x32x32, one thread,
float32, from the state bench/torchvision.mjs loads into bnwasm (build/torchvision/M-initial.safetensors,
make_torchvision_fixtures.py), the same job bnwasm runs: softmax cross-entropy, SGD with momentum
(bench/torchvision.mjs OPTIMIZER), batch norm in training mode, random images and labels.

    /usr/bin/python3 scripts/pytorch/bench_torchvision.py INITIAL.safetensors MODEL BATCH SECONDS LR MOMENTUM

Prints one JSON line: {"trainImagesPerSecond", "cpuImagesPerSecond", "steps", "threads", "torch", "mkldnn"}.
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_roundtrip import read_safetensors  # noqa: E402


def main():
    initial, name, batch, seconds, lr, momentum = sys.argv[1:7]
    batch, seconds, lr, momentum = int(batch), float(seconds), float(lr), float(momentum)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    model.load_state_dict(read_safetensors(initial))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    batches = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))) for _ in range(4)]

    def step(s):
        x, y = batches[s % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for s in range(3):  # warm-up: mkldnn's first calls pick and cache their kernels
        step(s)
    steps, c0, t0 = 0, time.process_time(), time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        step(steps)
        steps += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({'trainImagesPerSecond': steps * batch / wall, 'cpuImagesPerSecond': steps * batch / cpu, 'steps': steps,
                      'threads': torch.get_num_threads(), 'torch': torch.__version__, 'mkldnn': torch.backends.mkldnn.is_available()}))


if __name__ == '__main__':
    main()
