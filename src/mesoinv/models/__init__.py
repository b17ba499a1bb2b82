"""Networks as plain ``torch.nn.Module``s: no training logic, no Kwant, no file I/O.

The training stage (:mod:`mesoinv.training`) wraps them in LightningModules; a model file
(:mod:`mesoinv.training.model_file`) stores their keyword arguments and weights.
"""

from .encoder_decoder import EncoderDecoder
from .fourier_cnn import FourierCNN
from .parameter_cnn import ConvBlock, ParameterCNN

__all__ = ["ConvBlock", "EncoderDecoder", "FourierCNN", "ParameterCNN"]
