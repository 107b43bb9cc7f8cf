"""The local web page: the live state, the music controls, the library map and the analyze form."""
