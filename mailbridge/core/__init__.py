"""The pure core: bytes, text and values in, values out; time is passed in."""
