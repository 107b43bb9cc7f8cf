"""What the daemon learns from and keeps for its listener: feedback, calibration, track likes."""
