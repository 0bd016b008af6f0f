"""Local training throughput of fedsoc's autoencoder architecture in PyTorch.

The reference point for `fedsoc bench train`: the same architecture
(d -> 64 -> 32 -> 8 -> 32 -> 64 -> d, ReLU between layers, linear output),
MSE loss, Adam (lr 1e-3), batch 256, shuffled each epoch, on CPU with one
thread unless told otherwise. Prints one JSON line:
{"framework": "pytorch", "version": ..., "rows": ..., "dim": ...,
 "batch": ..., "threads": ..., "samples_per_s": ...}

The data is the rows of a raw little-endian float32 file written by
`fedsoc bench train --dump FILE` (the encoded training set), or, without
--data, standard-normal rows of the same shape: throughput does not
depend on the values.

    python3 experiments/pytorch/autoencoder_throughput.py --rows 125973 --dim 125
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch


def build(dim: int) -> torch.nn.Module:
    widths = [dim, 64, 32, 8, 32, 64, dim]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=125_973)
    parser.add_argument("--dim", type=int, default=125)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", help="raw float32 rows (rows x dim), e.g. from fedsoc bench train --dump")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.data:
        x = np.fromfile(args.data, dtype="<f4").reshape(-1, args.dim)
        args.rows = x.shape[0]
        data = torch.from_numpy(x.copy())
    else:
        data = torch.randn(args.rows, args.dim)
    model = build(args.dim)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()

    def epoch() -> float:
        start = time.perf_counter()
        order = torch.randperm(args.rows)
        for i in range(0, args.rows, args.batch):
            batch = data[order[i : i + args.batch]]
            optim.zero_grad()
            loss = loss_fn(model(batch), batch)
            loss.backward()
            optim.step()
        return time.perf_counter() - start

    epoch()  # warm-up
    times = [epoch() for _ in range(args.epochs)]
    print(
        json.dumps(
            {
                "framework": "pytorch",
                "version": torch.__version__,
                "rows": args.rows,
                "dim": args.dim,
                "batch": args.batch,
                "threads": args.threads,
                "epoch_s_median": statistics.median(times),
                "samples_per_s": args.rows / statistics.median(times),
            }
        )
    )


if __name__ == "__main__":
    main()
