"""Voice perception: WebRTC VAD with the self-hearing guard, MFCC features, speech-emotion classifier."""
