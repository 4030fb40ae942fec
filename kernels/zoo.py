"""The model zoo: standard published inference architectures with random weights.

Everything is written in this repository (kernels/zoo_nets.py); nothing is downloaded.
Weights come from a fixed seed, so a (name, seed) pair always gives the same model.
Importing this module does not start torch; build() and repvgg_deploy() do.

    build(name, seed=0) -> torch.nn.Module in eval mode
    input_shape(name, batch=1) -> (batch, 3, 224, 224)
    repvgg_deploy(model) -> the fused deploy form of a training-form RepVGG
    is_known(name) -> a zoo model or a calibration network's name

Besides MODELS (the real architectures, which validation benchmarks iterate), build() takes
the random calibration networks of kernels/zoo_random.py by name: calib-cnn-<seed>[-<focus>]
and calib-vit-<seed>[-<focus>]. They have no published counts; their own input size is
input_shape()'s, and like the CNNs they run at any other.

torch and the networks (kernels/zoo_nets.py, kernels/zoo_random_nets.py) are imported inside
functions (deferred on purpose).
"""
from __future__ import annotations

from kernels import zoo_random

MODELS: dict[str, str] = {
    "resnet18": "ResNet-18 (He et al. 2016), torchvision layout; 11,689,512 params",
    "resnet50": "ResNet-50 v1.5 (stride on the 3x3), torchvision layout; 25,557,032 params",
    "mobilenet_v2": "MobileNetV2 width 1.0 (Sandler et al. 2018), torchvision layout; 3,504,872 params",
    "shufflenet_v2_x1_0": "ShuffleNetV2 x1.0 (Ma et al. 2018), torchvision layout; 2,278,604 params",
    "vgg16": "VGG-16 config D without BN (Simonyan & Zisserman 2015), torchvision layout; 138,357,544 params",
    "repvgg_a0": "RepVGG-A0 training form: 3x3+BN, 1x1+BN and identity-BN branches (Ding et al. 2021); "
                 "9,108,968 params",
    "repvgg_a0_deploy": "RepVGG-A0 deploy form: one 3x3 conv with bias per block, fused from "
                        "repvgg_a0 with the same seed; 8,309,384 params",
    "vit_tiny": "ViT-Ti/16 = DeiT-Tiny (Touvron et al. 2021), timm deit_tiny_patch16_224 layout, "
                "explicit qkv/matmul/softmax attention; 5,717,416 params",
}

# Parameters of each model (the published counts, checked by tests/kernels/test_zoo.py).
PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
          "shufflenet_v2_x1_0": 2_278_604, "vgg16": 138_357_544, "repvgg_a0": 9_108_968,
          "repvgg_a0_deploy": 8_309_384, "vit_tiny": 5_717_416}
# The live activations of these networks peak below this many bytes per input pixel of a
# batch (VGG-16's first convs: two 64-channel fp32 maps, about 512 B per pixel, the largest).
ACTIVATION_BYTES_PER_PIXEL = 1024
# A Python process with torch (or ONNX Runtime) loaded, before any model.
RUNTIME_BYTES = 0.5e9


def memory_estimate(name: str, batch: int = 1, image: int = 224, copies: int = 2) -> float:
    """Bytes a process running `name` at (batch, image) needs at its peak, on the safe side:
    the runtime, `copies` of the weights (a model and its export or session), three times the
    activation high-water (torch's allocator keeps what it freed; a reference output).
    A calibration network's weights and widest point come from its recipe."""
    if zoo_random.is_calib(name):
        net = zoo_random.spec(name)
        return (RUNTIME_BYTES + copies * 4 * zoo_random.weights(net)
                + 3 * batch * zoo_random.activation_bytes(net, image))
    return RUNTIME_BYTES + copies * 4 * PARAMS[name] + 3 * batch * image * image * ACTIVATION_BYTES_PER_PIXEL


# Every model is defined for the published 224x224 ImageNet input. The CNNs also accept
# other sizes (adaptive pooling); vit_tiny's position embedding fixes it at 224.
_IMAGE = 224


def name_error(name: str) -> str | None:
    """What is wrong with a model name, or None for a zoo model or a calibration network."""
    if name in MODELS or zoo_random.is_calib(name):
        return None
    if name.startswith("calib-"):
        try:
            zoo_random.parse_name(name)
        except ValueError as exc:
            return str(exc)
    return (f"unknown zoo model {name!r} (known: {', '.join(MODELS)}; or a calibration network "
            "calib-cnn-<seed>[-<focus>], calib-vit-<seed>[-<focus>])")


def is_known(name: str) -> bool:
    return name_error(name) is None


def _check(name: str) -> None:
    why = name_error(name)
    if why:
        raise KeyError(why)


def input_shape(name: str, batch: int = 1) -> tuple[int, int, int, int]:
    """The model's own input: 224x224 for the zoo, the image drawn with a calibration network."""
    _check(name)
    image = zoo_random.spec(name)["image"] if zoo_random.is_calib(name) else _IMAGE
    return (batch, 3, image, image)


def build(name: str, seed: int = 0):
    """The model `name` in eval mode, its weights drawn after torch.manual_seed(seed).

    The caller's global torch RNG state is left as it was.
    """
    _check(name)
    import torch

    from kernels import zoo_nets

    if name == "repvgg_a0_deploy":
        return zoo_nets.repvgg_deploy(build("repvgg_a0", seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if zoo_random.is_calib(name):
            from kernels import zoo_random_nets

            model = zoo_random_nets.build(zoo_random.spec(name), zoo_random.CLASSES)
        else:
            model = getattr(zoo_nets, name)()
        zoo_nets.init_weights(model)
        # Statistics measured on a batch of 2 at the model's own input size.
        zoo_nets.calibrate_bn(model, input_shape(name, batch=2))
    return model.eval()


def repvgg_deploy(model):
    """A new deploy-form RepVGG (one 3x3 conv + bias per block) equal to `model` in eval mode,
    by the re-parameterisation of Ding et al. 2021, Sec. 3.3. `model` is left unchanged."""
    from kernels import zoo_nets

    return zoo_nets.repvgg_deploy(model)
