"""Export torchvision classifiers to ONNX with seeded random weights, and PyTorch's logits.

Run by hack/torch/fixtures.sh with Debian's interpreter (python3-torch 1.13,
python3-torchvision 0.14, python3-onnx), never by hand:

    env -u PYTHONPATH -u LD_LIBRARY_PATH /usr/bin/python3 hack/torch/export.py OUTDIR

No pretrained weights exist on this machine (and none are wanted): every model is
built with weights=None after torch.manual_seed(seed), then its BatchNorm layers get
real running statistics from a few seeded random batches in training mode (the
cumulative average, momentum=None), so activations keep a sensible scale through
deep networks instead of the untouched mean 0 / variance 1. The model is then put in
eval mode and exported.

Those batches are standard normal noise, except for the families of
PIXEL_CALIBRATED, calibrated on uniform [0, 1] images (the pixel range fragile
assumes by default). densenet121 needs it: calibrated on N(0, 1) noise, every
dense layer's first BatchNorm re-normalises the stem's channels with means far
above what images of [0, 1] give there, so for low-contrast images (the
generator's first triggers) every ReLU of every dense layer and transition is off
and the logits are exactly constant, in PyTorch as in fragile: no gradient can
train a trigger generator from there.

Two families' random initialisations are degenerate classifiers that label every
input alike, so no key of several labels can be carried; revive() changes them in
the least way that gives the labels back, still random and seeded:
squeezenet1_1's last convolution (torchvision draws it with std 0.01, and a ReLU
follows, so most class scores are exactly 0) is drawn again with the Kaiming-uniform
init torchvision gives its other convolutions, and its bias is moved by minus the
mean of its output over 64 seeded uniform [0, 1] images (taken before the in-place
ReLU that follows it: a hook's output tensor is the one that ReLU overwrites); vgg11_bn's last Linear bias is moved
by minus the mean logit over 64 seeded uniform [0, 1] images (the pixel range
fragile assumes by default), so the input-independent part of its features no
longer picks one winner. The manifest's note says so.

Every fixture NAME writes three files in OUTDIR and one entry in OUTDIR/manifest.json:

    NAME.onnx         the model as torch.onnx.export writes it (input "input", output "logits")
    NAME.inputs.f32   N examples, raw little-endian float32, shape N x C x H x W, row-major
    NAME.logits.f32   PyTorch's logits for them, raw little-endian float32, N x classes
    NAME.exact.f64    the same model run by PyTorch in float64 on the same inputs, raw
                      little-endian float64, N x classes: the logits without float32
                      rounding, against which any float32 runtime's error is measured

The manifest is {"torch":..., "torchvision":..., "fixtures":[{...}, ...]}; each fixture
has name, family, model, inputs, logits, exact (file names relative to OUTDIR), opset,
shape [C,H,W], classes, n, seed, dynamicBatch, inputName, outputName, note.

vgg11_bn cannot export at 32x32 as torchvision builds it: AdaptiveAvgPool2d((7,7)) of
a 1x1 feature map is an upsampling ONNX has no op for at opset <= 17. Its 32x32
fixtures use the usual CIFAR adaptation instead: avgpool = Identity and
classifier[0] = Linear(512, 4096) (the feature map is 512x1x1 at 32 px).
"""

import copy
import json
import os
import sys

import torch
import torchvision

FAMILIES = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "squeezenet1_1",
    "efficientnet_b0",
    "shufflenet_v2_x0_5",
    "densenet121",
    "regnet_x_400mf",
    "vgg11_bn",
]

# Examples whose logits PyTorch records per fixture.
EXAMPLES = 4
# Seeded random batches that set the BatchNorm running statistics.
CALIBRATION_BATCHES = 4
CALIBRATION_BATCH_SIZE = 8
# Families whose calibration batches are uniform [0, 1] images, not N(0, 1) noise
# (see the module doc).
PIXEL_CALIBRATED = {"densenet121"}


def fixtures():
    """(name, family, size, classes, opset, dynamic batch) of every export."""
    out = []
    for opset in (13, 17):
        for family in FAMILIES:
            out.append((f"{family}_32_op{opset}", family, 32, 10, opset, False))
    for family in ("resnet18", "mobilenet_v2"):
        out.append((f"{family}_224_op17", family, 224, 1000, 17, False))
    # The batch axis left symbolic, as users export models meant for batched serving.
    out.append(("resnet18_32_op13_dynbatch", "resnet18", 32, 10, 13, True))
    return out


def seed_of(family, size):
    """One seed per family and size: the opset-13 and opset-17 files hold the same weights."""
    return 1000 * (FAMILIES.index(family) + 1) + size


def build(family, size, classes, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, family)(weights=None, num_classes=classes)
    note = ""
    if family == "vgg11_bn" and size == 32:
        model.avgpool = torch.nn.Identity()
        model.classifier[0] = torch.nn.Linear(512, 4096)
        note = "CIFAR adaptation: avgpool=Identity, classifier[0]=Linear(512,4096)"
    calibrate(model, size, seed, pixels=family in PIXEL_CALIBRATED)
    if family in PIXEL_CALIBRATED:
        note = "; ".join(filter(None, [note, "BatchNorm statistics from uniform [0,1] images, not N(0,1) noise"]))
    model.eval()
    revived = revive(family, model, size, seed)
    if revived:
        note = "; ".join(filter(None, [note, revived]))
    return model, note


def revive(family, model, size, seed):
    """Undo a degenerate initialisation (see the module doc); returns the note."""
    if family not in ("squeezenet1_1", "vgg11_bn"):
        return ""
    g = torch.Generator().manual_seed(seed + 3)
    images = torch.rand(64, 3, size, size, generator=g)
    if family == "squeezenet1_1":
        conv = model.classifier[1]
        torch.manual_seed(seed + 3)
        torch.nn.init.kaiming_uniform_(conv.weight)
        seen = []
        # The ReLU after conv is in place: keep a copy of the output before it runs.
        hook = conv.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
        with torch.no_grad():
            model(images)
            hook.remove()
            conv.bias -= seen[0].mean((0, 2, 3))
        return "last conv re-drawn Kaiming-uniform, its bias centred on 64 uniform [0,1] images (torchvision's std 0.01 labels every input alike)"
    if family == "vgg11_bn":
        with torch.no_grad():
            model.classifier[-1].bias -= model(images).mean(0)
        return "last bias centred on 64 uniform [0,1] images (the random init labels every input alike)"
    return ""


def calibrate(model, size, seed, pixels=False):
    """Give every BatchNorm layer the running statistics of seeded random batches:
    uniform [0, 1] images with pixels, else standard normal noise."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    g = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            shape = (CALIBRATION_BATCH_SIZE, 3, size, size)
            model(torch.rand(*shape, generator=g) if pixels else torch.randn(*shape, generator=g))


def write_f32(path, tensor):
    # numpy's float32 tobytes is native order; say little-endian explicitly.
    tensor.detach().contiguous().numpy().astype("<f4").tofile(path)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: export.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "fixtures": []}
    built = {}
    for name, family, size, classes, opset, dynamic in fixtures():
        seed = seed_of(family, size)
        key = (family, size, classes)
        if key not in built:
            built[key] = build(family, size, classes, seed)
        model, note = built[key]
        g = torch.Generator().manual_seed(seed + 2)
        x = torch.randn(EXAMPLES, 3, size, size, generator=g)
        with torch.no_grad():
            logits = model(x)
            exact = copy.deepcopy(model).double()(x.double())
        kwargs = {}
        if dynamic:
            kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(
            model,
            x[:1],
            os.path.join(outdir, name + ".onnx"),
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            do_constant_folding=True,
            **kwargs,
        )
        write_f32(os.path.join(outdir, name + ".inputs.f32"), x)
        write_f32(os.path.join(outdir, name + ".logits.f32"), logits)
        exact.detach().contiguous().numpy().astype("<f8").tofile(os.path.join(outdir, name + ".exact.f64"))
        manifest["fixtures"].append(
            {
                "name": name,
                "family": family,
                "model": name + ".onnx",
                "inputs": name + ".inputs.f32",
                "logits": name + ".logits.f32",
                "exact": name + ".exact.f64",
                "opset": opset,
                "shape": [3, size, size],
                "classes": classes,
                "n": EXAMPLES,
                "seed": seed,
                "dynamicBatch": dynamic,
                "inputName": "input",
                "outputName": "logits",
                "note": note,
            }
        )
        print(f"exported {name}", file=sys.stderr, flush=True)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
