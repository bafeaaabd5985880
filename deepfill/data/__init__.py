"""Training and evaluation data: image sources, the 256×256 loader and the random rectangular holes."""
