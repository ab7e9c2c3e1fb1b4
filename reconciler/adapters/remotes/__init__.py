"""Reading image remotes: the HTTP reader and the pure index decoders."""
