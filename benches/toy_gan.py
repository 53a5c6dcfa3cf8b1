#!/usr/bin/env python3
"""d2l's toy GAN (ch. 20.1) in PyTorch, as the book writes it, for several seeds: the twin of
`examples/gan.rs`. Prints, per seed, the generator's mean (its bias) and covariance (WᵀW) and
their relative errors against the data's (b, AᵀA) after the last epoch.

    /work/venv-torch/bin/python benches/toy_gan.py --seeds 0,1,2
    /work/venv-torch/bin/python benches/toy_gan.py --fixture tests/fixtures/toy_gan_steps.json
"""
import argparse
import json

import torch
from torch import nn


def update(net_G, net_D, trainer_G, trainer_D, loss, x, z):
    """d2l's update_D then update_G on the batch `x` with noise `z`; returns both losses."""
    ones, zeros = torch.ones(len(x), 1), torch.zeros(len(x), 1)
    trainer_D.zero_grad()
    loss_D = (loss(net_D(x), ones) + loss(net_D(net_G(z).detach()), zeros)) / 2
    loss_D.backward()
    trainer_D.step()
    trainer_G.zero_grad()
    loss_G = loss(net_D(net_G(z)), ones)
    loss_G.backward()
    trainer_G.step()
    return [loss_D.item(), loss_G.item()]


def run(seed, epochs=20, batch_size=8, lr_d=0.05, lr_g=0.005):
    torch.manual_seed(seed)
    X = torch.normal(0.0, 1, (1000, 2))
    A = torch.tensor([[1, 2], [-0.1, 0.5]])
    b = torch.tensor([1, 2])
    data = torch.matmul(X, A) + b
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size, shuffle=True)
    net_G = nn.Sequential(nn.Linear(2, 2))
    net_D = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    for w in net_D.parameters():
        nn.init.normal_(w, 0, 0.02)
    for w in net_G.parameters():
        nn.init.normal_(w, 0, 0.02)
    trainer_D = torch.optim.Adam(net_D.parameters(), lr=lr_d)
    trainer_G = torch.optim.Adam(net_G.parameters(), lr=lr_g)
    for _ in range(epochs):
        for (x,) in loader:
            z = torch.normal(0, 1, size=(batch_size, 2))
            update(net_G, net_D, trainer_G, trainer_D, loss, x, z)
    W = net_G[0].weight.detach().T.double()  # x·W form
    c = net_G[0].bias.detach().double()
    cov = W.T @ W
    want = A.double().T @ A.double()
    return {
        "seed": seed,
        "mean": c.tolist(),
        "cov": cov.tolist(),
        "mean_err": float((c - b.double()).norm() / b.double().norm()),
        "cov_err": float((cov - want).norm() / want.norm()),
    }


def fixture(path, steps=3):
    """One batch of 8 points and noise, fixed initial weights, and the parameters of G and D
    after `steps` D and G updates: `tests/gan.rs` replays them in wgnn."""
    torch.manual_seed(123)
    x = torch.randn(8, 2) @ torch.tensor([[1, 2], [-0.1, 0.5]]) + torch.tensor([1.0, 2.0])
    z = torch.randn(8, 2)
    net_G = nn.Sequential(nn.Linear(2, 2))
    net_D = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
    for w in list(net_D.parameters()) + list(net_G.parameters()):
        nn.init.normal_(w, 0, 0.5)
    # wgnn's Linear holds W as [in, out]: export weights transposed.
    def params(net):
        return {k: (v.detach().T if k.endswith("weight") else v.detach()).reshape(-1).tolist()
                for k, v in net.state_dict().items()}
    init = {"G": params(net_G), "D": params(net_D)}
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    trainer_D = torch.optim.Adam(net_D.parameters(), lr=0.05)
    trainer_G = torch.optim.Adam(net_G.parameters(), lr=0.005)
    losses = [update(net_G, net_D, trainer_G, trainer_D, loss, x, z) for _ in range(steps)]
    with open(path, "w") as f:
        json.dump({"x": x.reshape(-1).tolist(), "z": z.reshape(-1).tolist(), "init": init,
                   "after": {"G": params(net_G), "D": params(net_D)}, "losses": losses}, f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--fixture", help="write tests/gan.rs's fixture (three updates) here and stop")
    args = p.parse_args()
    if args.fixture:
        fixture(args.fixture)
        return
    torch.set_num_threads(1)
    runs = [run(int(s), args.epochs) for s in args.seeds.split(",")]
    for r in runs:
        print(f"seed {r['seed']}: mean error {100 * r['mean_err']:.1f} %, covariance error {100 * r['cov_err']:.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"framework": "pytorch", "epochs": args.epochs, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
