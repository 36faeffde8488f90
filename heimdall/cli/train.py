"""``heimdall train``: simulate, train, calibrate and export a model (needs the ``train`` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from heimdall.config import get_settings


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="simulate, train, calibrate and export a model (needs torch)")
    p.add_argument("--version", default="v1", help="version name of the model written")
    p.add_argument("--seed", type=int, default=20261127, help="simulator and training seed")
    p.add_argument("--jobs", type=int, default=50_000, help="simulated training jobs")
    p.add_argument("--epochs", type=int, default=40, help="training epochs")
    p.add_argument("--models-dir", default=None, help="default: HEIMDALL_MODELS_DIR (models/)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from heimdall.training.train import TrainConfig, train
    except ImportError as exc:
        print(
            f"heimdall train needs the 'train' extra (pip install -e '.[train]'): {exc}",
            file=sys.stderr,
        )
        return 2
    config = TrainConfig(
        version=args.version, seed=args.seed, train_jobs=args.jobs, epochs=args.epochs
    )
    train(config, Path(args.models_dir) if args.models_dir else get_settings().models_dir)
    return 0
