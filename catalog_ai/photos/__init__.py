"""Photos: safe decoding, the one list of photo types, the content-addressed media store."""
