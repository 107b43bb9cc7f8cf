"""emomusic: an emotion-aware ambient music daemon for a Raspberry Pi."""

__version__ = "0.1.0"
