"""The model zoo: exact parameter counts against published figures, output shapes,
RepVGG re-parameterisation, determinism."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from kernels import zoo  # noqa: E402

# (name, params as built, source of the figure). torchvision's counts are the num_params
# in each weights enum's meta (torchvision.models.*_Weights.IMAGENET1K_V1), which these
# definitions reproduce module for module.
PARAM_COUNTS = [
    ("resnet18", 11_689_512, "torchvision ResNet18_Weights.IMAGENET1K_V1"),
    ("resnet50", 25_557_032, "torchvision ResNet50_Weights.IMAGENET1K_V1"),
    ("mobilenet_v2", 3_504_872, "torchvision MobileNet_V2_Weights.IMAGENET1K_V1"),
    ("shufflenet_v2_x1_0", 2_278_604, "torchvision ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1"),
    ("vgg16", 138_357_544, "torchvision VGG16_Weights.IMAGENET1K_V1"),
    # The paper (Ding et al. 2021, ImageNet results table) gives 8.30M for the deploy form;
    # 8,309,384 is the reference implementation (DingXiaoH/RepVGG) after its convert step.
    ("repvgg_a0_deploy", 8_309_384, "RepVGG paper 8.30M; DingXiaoH/RepVGG deploy form"),
    # Training form: deploy's 3x3 kernels without bias, plus 1x1 kernels and BN gamma/beta on
    # 3x3, 1x1 and identity branches. The paper publishes no train-form count; 9.11M is the
    # figure commonly cited. The exact value is derived by hand: deploy count - 3x3 biases
    # + 1x1 kernels + 2 BN params per channel per branch.
    ("repvgg_a0", 9_108_968, "RepVGG-A0 train form, commonly cited 9.11M"),
    ("vit_tiny", 5_717_416, "timm deit_tiny_patch16_224; DeiT paper 5M (Touvron et al. 2021 Table 1)"),
]


def _nparams(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _small_input(name: str, batch: int = 2, seed: int = 1):
    # The CNNs all end in adaptive/global pooling (VGG16 pools to 7x7 as torchvision does),
    # so 64x64 exercises every layer at ~1/12 of the cost; the ViT's position embedding
    # fixes it at 224.
    size = 224 if name == "vit_tiny" else 64
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g)


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = zoo.build(name)
        return cache[name]

    return get


def test_every_model_has_a_count():
    assert {n for n, _, _ in PARAM_COUNTS} == set(zoo.MODELS)


@pytest.mark.parametrize("name,expected,source", PARAM_COUNTS, ids=[f"{n}-{s}" for n, _, s in PARAM_COUNTS])
def test_param_count(models, name, expected, source):
    assert _nparams(models(name)) == expected


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_output_shape_and_eval_mode(models, name):
    model = models(name)
    assert not model.training
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        out = model(_small_input(name))
    assert out.shape == (2, 1000)
    # Calibrated BN and scaled init keep outputs at an ordinary scale: not inf, not tiny.
    assert torch.isfinite(out).all()
    assert 1e-3 < out.std().item() < 1e3


def test_vgg16_at_published_resolution(models):
    with torch.no_grad():
        out = models("vgg16")(torch.randn(zoo.input_shape("vgg16", batch=1)))
    assert out.shape == (1, 1000)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "repvgg_a0"])
def test_bn_statistics_are_nontrivial(models, name):
    # Zero mean / unit variance / gamma 1 / beta 0 would let a broken BN fold pass unnoticed.
    bns = [m for m in models(name).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert bn.running_mean.abs().max() > 1e-3
        assert (bn.running_var - 1).abs().max() > 1e-3
        assert (bn.weight - 1).abs().max() > 1e-3
        assert bn.bias.abs().max() > 1e-3


def test_repvgg_deploy_form_structure(models):
    deploy = models("repvgg_a0_deploy")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules())
    convs = [m for m in deploy.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 + 4 + 14 + 1  # one per block, layers [1, 2, 4, 14, 1]
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    widths = [48] * 3 + [96] * 4 + [192] * 14 + [1280]  # a=0.75, b=2.5
    assert [c.out_channels for c in convs] == widths


@pytest.mark.parametrize("size", [64, 224])
def test_repvgg_fused_matches_train_float32(models, size):
    train = models("repvgg_a0")
    deploy = zoo.repvgg_deploy(train)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = train(x), deploy(x)
    # Fusion is exact algebra; in float32 the branches are summed in a different order over
    # 22 blocks, so differences are a few float32 ulps (eps 1.2e-7) per layer, compounding:
    # observed ~2e-6 of the output's scale. 1e-4 leaves ~50x margin yet is far below what
    # a wrong fold produces (a dropped branch or a mis-scaled BN changes outputs by O(1)).
    assert (a - b).abs().max().item() < 1e-4 * a.abs().max().item()


def test_repvgg_fused_matches_train_float64(models):
    # In float64 the rounding noise vanishes, so this checks the algebra itself.
    train = zoo.build("repvgg_a0").double()
    deploy = zoo.repvgg_deploy(train)
    x = _small_input("repvgg_a0").double()
    with torch.no_grad():
        a, b = train(x), deploy(x)
    assert (a - b).abs().max().item() < 1e-10 * a.abs().max().item()


def test_repvgg_deploy_by_name_equals_conversion(models):
    x = _small_input("repvgg_a0")
    with torch.no_grad():
        by_name = models("repvgg_a0_deploy")(x)
        converted = zoo.repvgg_deploy(models("repvgg_a0"))(x)
    assert torch.equal(by_name, converted)


def test_repvgg_deploy_leaves_train_model_unchanged(models):
    train = models("repvgg_a0")
    before = {k: v.clone() for k, v in train.state_dict().items()}
    zoo.repvgg_deploy(train)
    after = train.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", [n for n in zoo.MODELS if n != "vgg16"])
def test_same_seed_same_output(models, name):
    x = _small_input(name)
    with torch.no_grad():
        assert torch.equal(models(name)(x), zoo.build(name, seed=0)(x))


def test_weights_do_not_depend_on_thread_count():
    # Workers may build the same model under different thread settings and compare results.
    before = torch.get_num_threads()
    try:
        states = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            states.append(zoo.build("resnet18").state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_seed_changes_weights():
    a, b = zoo.build("resnet18", seed=0), zoo.build("resnet18", seed=1)
    assert not torch.equal(a.conv1.weight, b.conv1.weight)


def test_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    expect = torch.rand(3)
    torch.manual_seed(123)
    zoo.build("shufflenet_v2_x1_0")
    assert torch.equal(torch.rand(3), expect)


def test_unknown_name_lists_known():
    with pytest.raises(KeyError, match="resnet18"):
        zoo.build("resnet19")
    with pytest.raises(KeyError, match="vit_tiny"):
        zoo.input_shape("nope")


def test_input_shape():
    assert zoo.input_shape("resnet50") == (1, 3, 224, 224)
    assert zoo.input_shape("vit_tiny", batch=8) == (8, 3, 224, 224)


def test_vit_attention_is_explicit(models):
    # A module walk should see the attention's Linear layers, not a fused MultiheadAttention.
    vit = models("vit_tiny")
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in vit.modules())
    linears = [m for m in vit.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 12 * 4 + 1  # qkv, proj, fc1, fc2 per block, plus the head


def test_import_does_not_start_torch():
    code = "import sys, kernels.zoo; assert 'torch' not in sys.modules"
    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
