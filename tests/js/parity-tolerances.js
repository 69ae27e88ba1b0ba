// The tolerances of the PyTorch parity fixtures: an element passes when
// |actual - expected| <= atolRel * scale + rtol * |expected|. pytorch-parity.test.js explains the
// numbers; torchvision.test.js holds resnet18 and mobilenet_v2 to the same ones (and says where
// it needs more); scripts/make_fixtures.py and scripts/pytorch/make_*fixture*.py keep copies.
export const TOLERANCES = {
  loss: { rtol: 1e-5, atolRel: 1e-6 },
  weights: { rtol: 1e-4, atolRel: 1e-5 },
  outputs: { rtol: 1e-4, atolRel: 1e-5 },
  reloadedOutputs: { rtol: 1e-4, atolRel: 1e-5 },
};
