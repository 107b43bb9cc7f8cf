"""The house: the other rooms' daemons on the same broker, and the one house mood."""
