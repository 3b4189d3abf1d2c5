"""Models: the tutorial's five-function MLP, kept faithful, and the modern Keras models."""
