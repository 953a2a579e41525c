"""What the Meta platforms (Instagram, Facebook Pages, Threads) share: Graph's error
envelope (``graph``), the HTTP caller with its token handling and scrubbing (``graph``), and
the usage headers (``usage``). Each platform classifies the answers itself."""
