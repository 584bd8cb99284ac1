"""What the dialect modules share: codecs (CBOR, COSE, JWT), claim checks, config readers."""
