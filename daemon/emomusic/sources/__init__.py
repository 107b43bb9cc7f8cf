"""Sources: one thread per input (camera, microphone, sample media) feeding a bounded queue."""
