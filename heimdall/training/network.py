"""The localization network (PyTorch; needs the ``train`` extra).

Per receiver: time-pooled statistics of its normalized mel spectrogram and its ENU position are
embedded; masked self-attention lets receivers compare levels; the position is an
attention-weighted centroid of the receivers plus a learned offset, and the head predicts the
lower Cholesky factor (l11, l21, l22) of a full 2×2 covariance. Shapes follow DESIGN §6.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

STD_EPS = 1e-6
MASK_NEG = 1e4
MIN_SCALE = 1e-3  # in position_scale_m units: 100 m at 100 km


def pool(spectra: torch.Tensor) -> torch.Tensor:
    """``[B, R, rows, T]`` → ``[B, R, 3·rows]``: time mean, max and std (numpy twin in dataset)."""
    mean = spectra.mean(-1)
    var = ((spectra - mean.unsqueeze(-1)) ** 2).mean(-1)
    return torch.cat([mean, spectra.amax(-1), torch.sqrt(var + STD_EPS)], dim=-1)


class MaskedSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, r, d = h.shape
        q, k, v = self.qkv(h).reshape(b, r, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
        scores = scores + (mask[:, None, None, :] - 1.0) * MASK_NEG
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, r, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MaskedSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), mask)
        return h + self.ffn(self.norm2(h))


class LocalizerNet(nn.Module):
    def __init__(self, rows: int = 64, dim: int = 128, heads: int = 4, layers: int = 3) -> None:
        super().__init__()
        self.spectrum = nn.Sequential(
            nn.Linear(3 * rows, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU()
        )
        self.position = nn.Linear(3, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.weight = nn.Linear(dim, 1)
        self.head = nn.Sequential(nn.Linear(2 * dim, dim), nn.SiLU(), nn.Linear(dim, 5))
        self.register_buffer("chol_scale", torch.ones(()))

    def forward(
        self, spectra: torch.Tensor, rx_enu: torch.Tensor, rx_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """DESIGN §6 signature: spectra [B,R,rows,T], rx_enu [B,R,3], rx_mask [B,R]."""
        return self.from_pooled(pool(spectra), rx_enu, rx_mask)

    def from_pooled(
        self, stats: torch.Tensor, rx_enu: torch.Tensor, rx_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network after time pooling; training runs this on precomputed statistics."""
        m = rx_mask.unsqueeze(-1)
        h = (self.spectrum(stats) + self.position(rx_enu)) * m
        for block in self.blocks:
            h = block(h, rx_mask) * m
        h = self.norm(h)
        logits = self.weight(h).squeeze(-1) + (rx_mask - 1.0) * MASK_NEG
        alpha = torch.softmax(logits, dim=-1).unsqueeze(-1)
        centroid = (alpha * rx_enu[..., :2]).sum(1)
        count = m.sum(1).clamp(min=1.0)
        pooled = torch.cat([(h * m).sum(1) / count, (h + (m - 1.0) * MASK_NEG).amax(1)], dim=-1)
        out = self.head(pooled)
        mean_en = centroid + out[:, :2]
        l11 = F.softplus(out[:, 2]) + MIN_SCALE
        l22 = F.softplus(out[:, 4]) + MIN_SCALE
        cov_chol = torch.stack([l11, out[:, 3], l22], dim=-1) * self.chol_scale
        return mean_en, cov_chol


def gaussian_nll(
    mean_en: torch.Tensor, cov_chol: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-likelihood of ``target`` under N(mean, L·Lᵀ), constants dropped."""
    l11, l21, l22 = cov_chol.unbind(-1)
    r = target - mean_en
    z1 = r[:, 0] / l11
    z2 = (r[:, 1] - l21 * z1) / l22
    return (0.5 * (z1**2 + z2**2) + torch.log(l11) + torch.log(l22)).mean()
