"""A tiny conv model exported to ONNX, shared by the model and layer tests."""
import pytest


def tiny_conv_model():
    import torch
    from torch import nn

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    return Conv().eval()


@pytest.fixture(scope="session")
def dynamic_onnx(tmp_path_factory):
    """The tiny conv model as ONNX with a dynamic batch dimension N."""
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("byo") / "conv.onnx"
    torch.onnx.export(tiny_conv_model(), (torch.randn(1, 3, 16, 16),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}}, dynamo=False)
    return path
