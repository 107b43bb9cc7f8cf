"""Analysing one photo and/or one clip on demand (the CLI and the web page), outside the live pipeline."""
