"""Voice perception: WebRTC VAD with the self-hearing guard, the speaker encoder, the adapted speech-emotion head."""
