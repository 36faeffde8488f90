"""``heimdall picture``: a simulated TDoA fix drawn as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from heimdall.cli.options import SIGNALS, TDOA_NETWORKS, model_dir


def add_parser(sub) -> None:
    p = sub.add_parser("picture", help="a simulated TDoA fix drawn as a PNG")
    p.add_argument("--out", default="tdoa.png", help="PNG file to write")
    p.add_argument("--seed", type=int, default=2, help="simulator seed")
    p.add_argument("--network", default="reference", choices=TDOA_NETWORKS,
                   help="simulated GNSS-timed receivers")
    p.add_argument("--signal", default="nfm", choices=SIGNALS, help="simulated signal family")
    p.add_argument("--model", default=None, help="model version (default: HEIMDALL_DEFAULT_MODEL)")
    p.set_defaults(func=cmd_picture)


def cmd_picture(args: argparse.Namespace) -> int:
    """A simulated TDoA fix drawn as a PNG: receivers, hyperbolae, ellipse, truth."""
    from heimdall.measure.picture import picture

    result = picture(model_dir(args.model), Path(args.out), args.seed, args.network, args.signal)
    major, minor = result.ellipse.semi_major_m, result.ellipse.semi_minor_m
    print(f"wrote {args.out}: {len(result.tdoa.pairs)} pairs, 95 % ellipse "
          f"{major / 1000:.1f} × {minor / 1000:.1f} km")  # fmt: skip
    return 0
