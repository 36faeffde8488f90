"""Signal processing: IQ decoding, resampling and feature extraction (no services)."""

from heimdall.dsp.features import FeatureExtractor, num_frames
from heimdall.dsp.iq import decode_iq, encode_iq
from heimdall.dsp.resample import rational_ratio, resample_to

__all__ = [
    "FeatureExtractor",
    "decode_iq",
    "encode_iq",
    "num_frames",
    "rational_ratio",
    "resample_to",
]
