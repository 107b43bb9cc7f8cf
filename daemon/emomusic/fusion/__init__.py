"""Fusion: time-decayed, confidence-weighted evidence of every modality, with hysteresis."""
