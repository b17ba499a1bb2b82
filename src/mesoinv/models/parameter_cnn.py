"""P1's two-parameter CNN (Percebois & Weinmann 2021, App. A 1, Fig. 9).

Three blocks of [conv, conv, max-pool] analyse the PLDOS image; a flatten layer and two dense
layers lead to one output per target. ReLU everywhere (P1 Eq. A3). The paper gives neither
the filter counts nor the dense widths: they are keyword arguments here, with defaults chosen
for a 64 × 48 demo image on a CPU (docs/models.md).

Layout: ``(batch, channels, nx, ny)`` → ``(batch, n_outputs)``; channels are the PLDOS at the
input fields. The network sees standardised inputs and predicts standardised targets (P1 Eq.
A1); the training module and the model file hold the statistics, not this module.
"""

import torch
from torch import nn

__all__ = ["ConvBlock", "ParameterCNN"]


class ConvBlock(nn.Sequential):
    """conv → ReLU → conv → ReLU → 2×2 max-pool ("same" padding: the pool alone halves the size).

    Odd sizes are floored by the pool (65 → 32), as in Keras' default ``MaxPooling2D``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        padding = kernel_size // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class ParameterCNN(nn.Module):
    """CNN regression of a few global parameters from an image (P1 Fig. 9).

    Parameters
    ----------
    image_shape : (int, int)
        (nx, ny) of the input image in sites; fixes the size of the first dense layer. Each
        must be at least 8 (three 2× poolings).
    in_channels : int
        Input channels (one per magnetic field of the PLDOS).
    n_outputs : int
        Number of predicted parameters (2 in P1: (s, N_d) or (rms, ξ)).
    conv_channels : sequence of 3 int
        Filters of both convolutions of block 1, 2, 3.
    kernel_size : int
        Square convolution kernel, odd.
    dense_units : sequence of int
        Widths of the dense layers between the flatten layer and the output layer.
    """

    def __init__(self, image_shape, in_channels: int = 1, n_outputs: int = 2, *,
                 conv_channels=(16, 32, 64), kernel_size: int = 3, dense_units=(128, 64)):
        super().__init__()
        nx, ny = (int(v) for v in image_shape)
        if min(nx, ny) < 8:
            raise ValueError(f"image {nx} × {ny} is too small for three 2× poolings (≥ 8 × 8)")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        blocks, channels = [], in_channels
        for out in conv_channels:
            blocks.append(ConvBlock(channels, out, kernel_size))
            channels = out
        self.features = nn.Sequential(*blocks)
        flat = channels * (nx // 8) * (ny // 8)
        layers, width = [nn.Flatten()], flat
        for units in dense_units:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            width = units
        layers.append(nn.Linear(width, n_outputs))
        self.head = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, nx, ny) standardised image → (batch, n_outputs) standardised."""
        return self.head(self.features(image))
