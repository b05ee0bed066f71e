"""ONNX and safetensors ratio networks for the NSBI network-ensemble tests.

Run from the repository root with torch, onnx and safetensors installed:

    python scripts/make_onnx_fixture.py

It writes tests/data/nsbi/onnx/:

- x1.npy, x2.npy: 64 events of two features (numpy PCG64, fixed seed);
- net_a.onnx / net_a.safetensors: a float64 MLP 2-16-16-1 with tanh between
  layers (seeded torch initialisation, last layer's weights times 6), exported to ONNX with the output
  [batch, 1], and the same weights as an nn.Sequential state_dict
  ("0.weight", "2.weight", "4.weight", ...), the layout gradfit reads;
- net_b.onnx / net_b.safetensors: another float64 MLP of that shape, exported
  with its output squeezed to [batch];
- net_c_f32.onnx: a float32 MLP 2-8-1 (tanh), output [batch, 1];
- bad_width.onnx (three inputs), bad_two_out.onnx (two output columns),
  bad_nan.onnx (ln x1: NaN for x1 < 0): models gradfit must refuse;
- ref.json: r = exp(network output) per event for net_a, net_b (torch in
  float64) and net_c_f32 (torch in float32, exp in float64).

The ONNX files use the TorchScript exporter (dynamo=False) with a dynamic
batch axis, opset 17.
"""

import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join("tests", "data", "nsbi", "onnx")


def mlp(widths, dtype, seed):
    torch.manual_seed(seed)
    layers = []
    for k in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            layers.append(torch.nn.Tanh())
    with torch.no_grad():
        # larger output weights than torch's default, so ln r varies by O(1) over the events
        layers[-1].weight.mul_(6.0)
    return torch.nn.Sequential(*layers).to(dtype)


class Squeezed(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(-1)


class LogFirst(torch.nn.Module):
    def forward(self, x):
        return torch.log(x[:, :1])


def export(module, n_in, dtype, name):
    x = torch.zeros((3, n_in), dtype=dtype)
    torch.onnx.export(
        module,
        (x,),
        os.path.join(OUT, name),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def save_safetensors(net, name):
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261129)
    n = 64
    x1 = rng.normal(0.3, 1.0, n)
    x2 = rng.uniform(-1.0, 1.0, n)
    np.save(os.path.join(OUT, "x1.npy"), x1)
    np.save(os.path.join(OUT, "x2.npy"), x2)
    x = torch.tensor(np.stack([x1, x2], axis=1), dtype=torch.float64)

    net_a = mlp([2, 16, 16, 1], torch.float64, 1)
    net_b = mlp([2, 16, 16, 1], torch.float64, 2)
    net_c = mlp([2, 8, 1], torch.float32, 3)
    export(net_a, 2, torch.float64, "net_a.onnx")
    export(Squeezed(net_b), 2, torch.float64, "net_b.onnx")
    export(net_c, 2, torch.float32, "net_c_f32.onnx")
    save_safetensors(net_a, "net_a.safetensors")
    save_safetensors(net_b, "net_b.safetensors")

    export(mlp([3, 4, 1], torch.float64, 4), 3, torch.float64, "bad_width.onnx")
    export(mlp([2, 4, 2], torch.float64, 5), 2, torch.float64, "bad_two_out.onnx")
    export(LogFirst(), 2, torch.float64, "bad_nan.onnx")

    with torch.no_grad():
        r_a = torch.exp(net_a(x)).squeeze(-1).tolist()
        r_b = torch.exp(net_b(x)).squeeze(-1).tolist()
        y_c = net_c(x.to(torch.float32)).squeeze(-1).to(torch.float64)
        r_c = torch.exp(y_c).tolist()
    ref = {
        "about": "r = exp(output) of each network on x1.npy, x2.npy, by scripts/make_onnx_fixture.py",
        "torch": torch.__version__,
        "r_a": r_a,
        "r_b": r_b,
        "r_c_f32": r_c,
    }
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
