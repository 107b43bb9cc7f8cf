"""The music sink: library index, tags and moods, audio analysis, the policy that picks tracks, the player."""
