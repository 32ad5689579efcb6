"""Safe symbolic checking of math reasoning steps and final answers."""
